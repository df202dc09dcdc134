"""LSUV fitted in flight: unit output variance within tol, bounded forward passes, no side effects."""

from __future__ import annotations

import pytest
import torch
from initlab_nn_models import ResidualBlock, bn_cnn, deep_mlp
from torch import nn

from initlab import InitlabError
from initlab.nn import lsuv_
from initlab.nn.layers import layer_kind
from initlab.nn.lsuv import _FITTED


def output_variances(model: nn.Module, batch: torch.Tensor) -> dict[str, float]:
    """Variance of each fitted layer's (first) output, measured by independent hooks.

    Same conditions as lsuv_: train mode (BatchNorm on batch statistics), dropout off;
    buffers are restored afterwards.
    """
    variances: dict[str, float] = {}
    handles = []
    for name, module in model.named_modules():
        if layer_kind(module) in _FITTED and not name.endswith("out_proj"):
            def hook(module, args, output, name=name):
                output = output[0] if isinstance(output, tuple) else output
                variances.setdefault(name, float(output.float().var()))
            handles.append(module.register_forward_hook(hook))
    state = {key: value.clone() for key, value in model.state_dict().items()}
    model.train()
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.eval()
    with torch.no_grad():
        model(batch)
    model.load_state_dict(state)
    for handle in handles:
        handle.remove()
    return variances


def forward_counter(model: nn.Module) -> list[int]:
    count = [0]
    model.register_forward_pre_hook(lambda module, args: count.__setitem__(0, count[0] + 1))
    return count


def test_deep_mlp_is_fitted_in_two_passes():
    torch.manual_seed(0)
    model, batch = deep_mlp(depth=20, width=64), torch.randn(128, 64)
    count = forward_counter(model)
    record = lsuv_(model, batch, tol=0.05, seed=0)
    assert record.passes == count[0] == 2  # fit + verify, whatever the depth (bound: <= 3)
    assert len(record.layers) == 20 and all(layer.status == "fitted" for layer in record.layers)
    assert [layer.name for layer in record.layers] == [str(2 * i) for i in range(20)]  # execution order
    variances = output_variances(model, batch)
    assert len(variances) == 20
    assert all(abs(variance - 1) <= 0.05 for variance in variances.values()), variances
    assert record.max_variance_error <= 0.05


def test_orthogonal_pre_init_comes_from_initlab_streams():
    model = deep_mlp(depth=3, width=16)
    record = lsuv_(model, torch.randn(64, 16), seed=7)
    assert record.pre_init is not None and record.pre_init.seed == 7
    assert record.pre_init.row("0.weight").scheme_name == "orthogonal"
    weight = model[0].weight.detach() / record.layers[0].scale  # undo the fitted scale
    assert torch.allclose(weight @ weight.T, torch.eye(16), atol=1e-5)


def test_batchnorm_model_keeps_running_stats_and_modes():
    torch.manual_seed(1)
    model = bn_cnn()
    batch = torch.randn(32, 3, 8, 8)
    model(batch)  # running statistics away from their initial 0 / 1
    model.eval()
    buffers = {name: value.clone() for name, value in model.named_buffers()}
    rng = torch.get_rng_state()
    record = lsuv_(model, batch, center=True)
    assert record.passes == 2
    for name, value in model.named_buffers():
        assert torch.equal(value, buffers[name]), name
    assert torch.equal(torch.get_rng_state(), rng)
    assert not any(module.training for module in model.modules())
    variances = output_variances(model, batch)
    assert set(variances) == {"0", "3", "8"}
    assert all(abs(variance - 1) <= 0.05 for variance in variances.values()), variances
    assert all(abs(layer.mean) < 1e-4 for layer in record.layers)  # center=True: channel means 0


def test_residual_block_and_module_called_twice():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.shared = nn.Linear(16, 16)
            self.out = nn.Linear(16, 4)

        def forward(self, x):
            return self.out(torch.tanh(self.shared(torch.relu(self.shared(x)))))

    model = Twice()
    record = lsuv_(model, torch.randn(64, 16))
    shared = next(layer for layer in record.layers if layer.name == "shared")
    assert shared.calls == 2 and shared.status == "fitted"
    assert record.passes <= 1 + 10
    block = ResidualBlock()
    record = lsuv_(block, torch.randn(8, 8, 6, 6))
    assert record.passes == 2 and {layer.name for layer in record.layers} == {"conv1", "conv2", "proj.0"}


def test_multihead_attention_is_fitted_through_out_proj():
    class Attend(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(16, 4, batch_first=True)
            self.fc = nn.Linear(16, 16)

        def forward(self, x):
            return self.fc(self.attn(x, x, x)[0])

    model = Attend()
    batch = torch.randn(4, 10, 16)
    record = lsuv_(model, batch)
    assert [layer.name for layer in record.layers] == ["attn", "fc"]
    variances = output_variances(model, batch)
    assert abs(variances["attn"] - 1) <= 0.05 and abs(variances["fc"] - 1) <= 0.05


def test_low_precision_model_on_its_dtype():
    model = deep_mlp(depth=4, width=32).to(torch.bfloat16)
    record = lsuv_(model, torch.randn(64, 32))  # float32 batch is cast to the model's dtype
    assert record.passes == 2 and model[0].weight.dtype == torch.bfloat16
    assert record.max_variance_error <= 0.05


def test_record_table_and_dict():
    record = lsuv_(deep_mlp(depth=2, width=8), torch.randn(32, 8))
    text = str(record)
    assert "iterations" in text and "2 forward pass(es)" in text
    data = record.to_dict()
    assert data["passes"] == 2 and data["layers"][0]["iterations"] == 1 and data["pre_init"]["seed"] == 0


def test_bad_input():
    with pytest.raises(InitlabError, match=r"lsuv_: batch of shape \(4, 8\) contains 1 NaN or infinite value"):
        batch = torch.randn(4, 8)
        batch[1, 2] = float("nan")
        lsuv_(deep_mlp(depth=2, width=8), batch)
    with pytest.raises(InitlabError, match=r"lsuv_: model=ReLU has no parameters"):
        lsuv_(nn.ReLU(), torch.randn(2, 2))
    with pytest.raises(InitlabError, match=r"lsuv_: model=LayerNorm has no Linear, Conv"):
        lsuv_(nn.LayerNorm(4), torch.randn(2, 4))
    with pytest.raises(InitlabError, match=r"lsuv_: tol=0 is invalid; expected a number in \(0, 1\)"):
        lsuv_(deep_mlp(depth=1, width=4), torch.randn(2, 4), tol=0)
    with pytest.raises(InitlabError, match=r"lsuv_: batch of shape \(2, 5\) was rejected by the model"):
        lsuv_(deep_mlp(depth=1, width=4), torch.randn(2, 5))


def test_registered_in_out_linear_layers_are_fitted():
    from test_real_models import FusedQKV, TransposedLinear

    from initlab.nn import register_layer

    register_layer(TransposedLinear, "linear", "linear_in_out")
    model = FusedQKV()
    batch = torch.randn(8, 6, 32, generator=torch.Generator().manual_seed(0))
    record = lsuv_(model, batch, tol=0.05)
    fitted = {layer.name: layer for layer in record.layers}
    assert set(fitted) == {"qkv", "out", "fc"}
    assert all(layer.status == "fitted" for layer in fitted.values())
    for name, variance in output_variances(model, batch).items():
        assert abs(variance - 1.0) <= 0.05, name
