"""use_initlab_init(): PyTorch's own layers draw through initlab.nn.init, and everything comes back."""

from __future__ import annotations

import math
import threading

import pytest
import torch
import torch.nn.init as torch_init
from torch import nn

import initlab.nn
from initlab.lab.reference import gpt2_small, resnet18
from initlab.nn import init, switch, use_initlab_init

TORCH_ORIGINALS = dict(init.TORCH_FUNCTIONS)
IMPORTED_NAMES = [  # torch 2.13 modules that did `from torch.nn.init import ...`
    (nn.modules.activation, "constant_"),
    (nn.modules.activation, "xavier_normal_"),
    (nn.modules.activation, "xavier_uniform_"),
    (nn.modules.transformer, "xavier_uniform_"),
]


def assert_torch_originals() -> None:
    for name, original in TORCH_ORIGINALS.items():
        assert getattr(torch_init, name) is original, name
    for module, name in IMPORTED_NAMES:
        assert getattr(module, name) is TORCH_ORIGINALS[name], (module.__name__, name)
    assert not switch.is_active() and switch.patched_attributes() == []


def assert_initlab_functions() -> None:
    for name in TORCH_ORIGINALS:
        assert getattr(torch_init, name) is getattr(init, name), name
    for module, name in IMPORTED_NAMES:
        assert getattr(module, name) is getattr(init, name), (module.__name__, name)
    assert switch.is_active()


@pytest.fixture(autouse=True)
def torch_functions_restored():
    assert_torch_originals()
    yield
    assert_torch_originals()


def test_exported_from_initlab_nn():
    assert initlab.nn.use_initlab_init is use_initlab_init
    assert initlab.nn.init is init


def test_context_manager_replaces_and_restores_identities():
    with use_initlab_init() as handle:
        assert handle.active
        assert_initlab_functions()
        patched = set(switch.patched_attributes())
        assert {f"torch.nn.init.{name}" for name in TORCH_ORIGINALS} <= patched
        assert {f"{module.__name__}.{name}" for module, name in IMPORTED_NAMES} <= patched
        # torch's private helpers used by reset_parameters are left alone
        assert "torch.nn.init._calculate_fan_in_and_fan_out" not in patched
    assert not handle.active
    assert_torch_originals()


def test_restored_after_an_exception_inside_the_block():
    with pytest.raises(ZeroDivisionError):
        with use_initlab_init():
            nn.Linear(4, 3)
            _ = 1 / 0
    assert_torch_originals()


def test_plain_call_and_idempotent_restore():
    handle = use_initlab_init()
    try:
        assert_initlab_functions()
        nn.Conv2d(3, 8, 3)
    finally:
        handle.restore()
    assert_torch_originals()
    handle.restore()  # a second restore is a no-op
    assert_torch_originals()
    assert "restored" in repr(handle)


def test_nesting_and_restoring_out_of_order():
    with use_initlab_init():
        with use_initlab_init():
            assert_initlab_functions()
        assert_initlab_functions()  # the inner exit does not switch the outer block off
    first, second = use_initlab_init(), use_initlab_init()
    first.restore()
    assert_initlab_functions()  # `second` still holds it
    second.restore()
    assert_torch_originals()


def test_a_handle_can_be_reused_as_a_context_manager():
    handle = use_initlab_init()
    handle.restore()
    with handle:
        assert_initlab_functions()
    assert_torch_originals()


def test_concurrent_threads_entering_and_leaving():
    errors = []

    def worker():
        try:
            for _ in range(200):
                with use_initlab_init():
                    assert switch.is_active()
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert_torch_originals()


def test_an_attribute_replaced_by_other_code_is_left_alone_with_a_warning():
    stranger = lambda *args, **kwargs: None  # noqa: E731
    with pytest.warns(RuntimeWarning, match="torch.nn.init.normal_ was replaced by other code"):
        with use_initlab_init():
            torch_init.normal_ = stranger
    try:
        assert torch_init.normal_ is stranger
        assert torch_init.uniform_ is TORCH_ORIGINALS["uniform_"]
    finally:
        torch_init.normal_ = TORCH_ORIGINALS["normal_"]


# --------------------------------------------------------------------------- every layer routes through initlab


LAYERS = {
    "Linear": lambda: nn.Linear(20, 30),
    "Bilinear": lambda: nn.Bilinear(5, 6, 7),
    "Conv1d": lambda: nn.Conv1d(4, 8, 3),
    "Conv2d grouped": lambda: nn.Conv2d(8, 16, 3, groups=4),
    "Conv3d": lambda: nn.Conv3d(2, 4, 3),
    "ConvTranspose2d": lambda: nn.ConvTranspose2d(6, 4, 3),
    "Embedding": lambda: nn.Embedding(50, 16),
    "EmbeddingBag": lambda: nn.EmbeddingBag(50, 16),
    "MultiheadAttention": lambda: nn.MultiheadAttention(16, 4),
    "MultiheadAttention kdim": lambda: nn.MultiheadAttention(16, 4, kdim=8, vdim=12, add_bias_kv=True),
    "RNN": lambda: nn.RNN(10, 20, num_layers=2),
    "LSTM": lambda: nn.LSTM(10, 20, bidirectional=True),
    "GRU": lambda: nn.GRU(10, 20),
    "LSTMCell": lambda: nn.LSTMCell(10, 20),
    "TransformerEncoderLayer": lambda: nn.TransformerEncoderLayer(16, 4, 32),
    "Transformer": lambda: nn.Transformer(16, 2, 1, 1, 32, batch_first=True),
    "LazyLinear": lambda: nn.LazyLinear(5),
}


@pytest.fixture()
def filled_by_initlab(monkeypatch):
    """Record the values of every tensor initlab's stream fill writes."""
    filled: list[torch.Tensor] = []
    original = init._stream_fill

    def spy(tensor, kernel, generator):
        result = original(tensor, kernel, generator)
        filled.append(tensor.detach().clone())
        return result

    monkeypatch.setattr(init, "_stream_fill", spy)
    return filled


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_every_random_parameter_of_torch_layers_is_drawn_by_initlab(layer, filled_by_initlab):
    with use_initlab_init():
        module = LAYERS[layer]()
        if isinstance(module, nn.LazyLinear):
            module(torch.empty(2, 7))
    random_parameters = [
        (name, parameter)
        for name, parameter in module.named_parameters()
        if parameter.numel() > 1 and parameter.min() < parameter.max()
    ]
    assert random_parameters
    for name, parameter in random_parameters:
        # the values initlab wrote (nn.Transformer deep-copies its initialised layers)
        assert any(
            written.shape == parameter.shape and torch.equal(written, parameter) for written in filled_by_initlab
        ), name


def test_norm_layers_keep_their_exact_constants():
    with use_initlab_init():
        layers = [nn.LayerNorm(8), nn.BatchNorm2d(8), nn.GroupNorm(2, 8), nn.PReLU(8, init=0.1)]
    assert torch.equal(layers[0].weight, torch.ones(8)) and torch.equal(layers[0].bias, torch.zeros(8))
    assert torch.equal(layers[1].weight, torch.ones(8)) and torch.equal(layers[1].bias, torch.zeros(8))
    assert torch.equal(layers[2].weight, torch.ones(8))
    assert torch.equal(layers[3].weight, torch.full((8,), 0.1))


def test_model_construction_is_reproducible_under_manual_seed():
    def build():
        torch.manual_seed(11)
        with use_initlab_init():
            return nn.Sequential(nn.Linear(30, 40), nn.ReLU(), nn.Linear(40, 5))

    first, second = build(), build()
    for a, b in zip(first.parameters(), second.parameters()):
        assert torch.equal(a, b)
    torch.manual_seed(11)
    plain = nn.Sequential(nn.Linear(30, 40), nn.ReLU(), nn.Linear(40, 5))
    assert not torch.equal(plain[0].weight, first[0].weight)  # other algorithm, same distribution


def test_the_switch_hands_torch_function_subclasses_torchs_own_functions():
    seen = []

    class Logging(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            seen.append(func)
            return super().__torch_function__(func, types, args, kwargs or {})

    with use_initlab_init():
        torch_init.kaiming_uniform_(torch.empty(3, 4).as_subclass(Logging), a=math.sqrt(5))
    assert TORCH_ORIGINALS["kaiming_uniform_"] in seen
    assert init.kaiming_uniform_ not in seen


# --------------------------------------------------------------------------- whole models: same distributions


def assert_same_distributions(plain: nn.Module, switched: nn.Module) -> None:
    """Per parameter: equal constants, or std and mean within 6 sigma of sampling error.

    For two independent samples of n values with std s and kurtosis k, the
    difference of their sample stds has sd s * sqrt((k - 1) / (2n)) and the
    difference of their means sd s * sqrt(2 / n); k <= 3 for the uniform
    and normal fills used by default (1.8 and 3).
    """
    plain_parameters = dict(plain.named_parameters())
    switched_parameters = dict(switched.named_parameters())
    assert plain_parameters.keys() == switched_parameters.keys()
    for name, reference in plain_parameters.items():
        values = switched_parameters[name].detach()
        reference = reference.detach()
        assert values.shape == reference.shape, name
        if reference.min() == reference.max():
            assert torch.equal(values, reference), name
            continue
        n = reference.numel()
        spread, centre = (x.item() for x in torch.std_mean(reference.double()))
        values_spread, values_centre = (x.item() for x in torch.std_mean(values.double()))
        assert abs(values_spread - spread) < 6 * spread * math.sqrt(2 / (2 * n)), name
        assert abs(values_centre - centre) < 6 * spread * math.sqrt(2 / n), name


@pytest.mark.parametrize("builder", [gpt2_small, resnet18], ids=["gpt2-small", "resnet18"])
def test_models_built_inside_have_the_same_per_parameter_statistics(builder):
    torch.manual_seed(0)
    plain = builder()
    with use_initlab_init():
        switched = builder()
    assert_same_distributions(plain, switched)
    del plain, switched
