"""Checkpoint-aware partial init (issue 16, point 4): only the missing and shape-mismatched parameters."""

from __future__ import annotations

import math

import pytest
import torch
from initlab_nn_models import SmallCNN, TiedLM
from torch import nn

from initlab import InitlabError
from initlab.nn import InitRecord, init_, load_matching, preview, verify


class Backbone(nn.Module):
    """A CNN trunk (conv/BN/ReLU twice) with a linear head of ``classes`` outputs."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                                      nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(32, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _trained(model: nn.Module) -> dict[str, torch.Tensor]:
    """A 'checkpoint': the model's state after arbitrary changes (so it differs from any init)."""
    with torch.no_grad():
        for index, tensor in enumerate(model.state_dict().values()):
            if tensor.is_floating_point():
                tensor.copy_(torch.linspace(-1, 1, tensor.numel()).reshape(tensor.shape) * (index + 1))
    return {name: value.clone() for name, value in model.state_dict().items()}


def test_half_a_model_loaded_the_rest_initialised_and_the_loaded_half_bit_identical():
    checkpoint = _trained(Backbone())
    half = {name: value for name, value in checkpoint.items() if name.startswith(("features.0.", "features.1."))}  # the first conv and its BN only
    model = Backbone()
    result = model.load_state_dict(half, strict=False)
    record = init_(model, seed=4, only=result)
    # torch fills a missing num_batches_tracked itself and does not report it
    expected_missing = sorted(name for name in set(checkpoint) - set(half) if not name.endswith("num_batches_tracked"))
    assert sorted(record.partial["missing"]) == expected_missing
    assert record.partial["mismatched"] == [] and record.partial["unexpected"] == []
    for name, value in half.items():  # loaded: bit for bit
        assert torch.equal(model.state_dict()[name], value), name
    written = {row.name for row in record.rows if row.status == "initialised"}
    assert written == {name for name, _ in model.named_parameters() if name not in half}
    assert {row.name for row in record.rows if row.status == "loaded"} == {"features.0.weight", "features.0.bias",
                                                                           "features.1.weight", "features.1.bias"}
    assert record.partial["left_as_loaded"] == 4
    # the missing BN's running statistics are reset, the loaded BN's kept
    assert record.buffers_reset == ["features.4.running_mean", "features.4.running_var", "features.4.num_batches_tracked"]
    assert torch.equal(model.features[1].running_var, half["features.1.running_var"])
    # the missing parameters got the auto plan's choice, as a full init would give them
    full = init_(Backbone(), seed=4)
    for name in written:
        assert record.row(name).scheme == full.row(name).scheme, name
    reference = Backbone()
    init_(reference, seed=4)
    for name in written:  # same values: they depend only on (seed, name, index)
        assert torch.equal(model.get_parameter(name), reference.get_parameter(name)), name
    assert verify(model, record).ok
    assert InitRecord.from_dict(record.to_dict()).partial == record.partial
    assert "4 left as loaded" in str(record)


def test_a_new_head_of_another_size_is_initialised_as_a_readout():
    checkpoint = _trained(Backbone(classes=10))
    model = Backbone(classes=5)  # fine-tuning on 5 classes
    with pytest.raises(RuntimeError, match="size mismatch"):  # torch refuses it, even with strict=False
        model.load_state_dict(checkpoint, strict=False)
    loaded = load_matching(model, {**checkpoint, "extra.weight": torch.zeros(2)})
    assert loaded.missing == ()
    assert loaded.mismatched == {"head.weight": ((10, 32), (5, 32)), "head.bias": ((10,), (5,))}
    assert loaded.unexpected == ("extra.weight",)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    record = init_(model, seed=0, only=loaded)
    assert record.partial == {"missing": [], "mismatched": ["head.weight", "head.bias"],
                              "unexpected": ["extra.weight"], "left_as_loaded": 8}
    head = record.row("head.weight")
    assert head.status == "initialised" and head.scheme_name == "readout_normal"
    assert head.target_std == pytest.approx(0.5 / math.sqrt(32))
    for name, value in model.state_dict().items():
        if not name.startswith("head."):
            assert torch.equal(value, checkpoint[name]), name
        else:
            assert not torch.equal(value, before[name])
    assert record.buffers_reset == []


def test_only_accepts_a_list_of_names_and_tied_aliases():
    model = TiedLM()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    record = init_(model, seed=1, only=["head.weight", "fc_in.bias"])  # the alias of embed.weight
    changed = {name for name, value in model.state_dict().items() if not torch.equal(value, before[name])}
    assert changed == {"embed.weight", "head.weight", "fc_in.bias"}  # fc_in.bias: torch's uniform -> zeros
    assert record.row("embed.weight").status == "initialised"
    assert record.row("fc_out.weight").status == "loaded"
    assert record.partial["missing"] == ["head.weight", "fc_in.bias"]


def test_preview_with_only_changes_nothing_and_bad_names_are_errors():
    model = SmallCNN()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    record = preview(model, only=["fc.weight"])
    assert [row.name for row in record.rows if row.status == "planned"] == ["fc.weight"]
    assert all(torch.equal(value, before[name]) for name, value in model.state_dict().items())
    with pytest.raises(InitlabError, match=r"init_: only=\['fc.wieght'\] is invalid; expected names of parameters "
                                           r"or buffers of SmallCNN"):
        init_(model, only=["fc.wieght"])
    with pytest.raises(InitlabError, match=r"init_: only='fc.weight' is invalid"):
        init_(model, only="fc.weight")
