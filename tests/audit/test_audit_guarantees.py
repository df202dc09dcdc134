"""The audit leaves the model bit-identical, removes its hooks, works under no_grad and on
every supported architecture, and rejects bad input with a clear InitlabError (issue 5, sec. 3 and 6)."""

from __future__ import annotations

import gc
import random
import traceback
import weakref

import numpy as np
import pytest
import torch
from models_for_audit import (
    IN_FEATURES,
    Conv1dNet,
    ConvNet,
    DictOutput,
    Recurrent,
    ResNet,
    Transformer,
    batch,
    mlp,
    normal_init,
)
from torch import nn
from torch.overrides import TorchFunctionMode

from initlab import _compat
from initlab.auditing import Thresholds, audit
from initlab.errors import InitlabError


def snapshot(model: nn.Module) -> dict:
    """Everything the audit promises to keep: tensors (as raw bits), modes, flags, grads."""
    tensors = {name: t.detach().clone() for name, t in model.state_dict(keep_vars=True).items()}
    return {
        "tensors": tensors,
        "training": {name: m.training for name, m in model.named_modules()},
        "requires_grad": {name: p.requires_grad for name, p in model.named_parameters()},
        "grad": {name: None if p.grad is None else p.grad.clone() for name, p in model.named_parameters()},
    }


def assert_identical(before: dict, model: nn.Module) -> None:
    after = snapshot(model)
    assert before["tensors"].keys() == after["tensors"].keys()
    for name, tensor in before["tensors"].items():
        other = after["tensors"][name]
        assert tensor.dtype == other.dtype and tensor.shape == other.shape, name
        if tensor.is_floating_point():
            bits = {2: torch.int16, 4: torch.int32, 8: torch.int64}[tensor.element_size()]
            assert torch.equal(tensor.view(bits), other.view(bits)), name
        else:
            assert torch.equal(tensor, other), name
    assert before["training"] == after["training"]
    assert before["requires_grad"] == after["requires_grad"]
    for name, grad in before["grad"].items():
        assert (grad is None) == (after["grad"][name] is None), name
        if grad is not None:
            assert torch.equal(grad, after["grad"][name]), name


def assert_no_hooks(model: nn.Module) -> None:
    global_hooks = nn.modules.module
    assert not global_hooks._global_forward_hooks and not global_hooks._global_forward_pre_hooks
    for name, module in model.named_modules():
        assert not module._forward_hooks and not module._forward_pre_hooks, name
        assert not module._backward_hooks, name
    for name, parameter in model.named_parameters():
        assert parameter._backward_hooks is None, name  # no (empty) hook dict left for torch to call


ARCHITECTURES = {
    "mlp": (lambda: mlp(4, 32, nn.ReLU, normal_init(0.2)), lambda: batch(16)),
    "conv2d_bn": (ConvNet, lambda: torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))),
    "conv1d_bn": (Conv1dNet, lambda: torch.randn(8, 4, 16, generator=torch.Generator().manual_seed(0))),
    "resnet": (ResNet, lambda: torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))),
    "transformer": (Transformer, lambda: torch.randn(4, 7, 16, generator=torch.Generator().manual_seed(0))),
    "gru_lstm_tuple": (Recurrent, lambda: torch.randn(4, 5, 6, generator=torch.Generator().manual_seed(0))),
}

EXPECTED_KINDS = {
    "mlp": {"Linear → ReLU", "Linear"},
    "conv2d_bn": {"Conv2d", "BatchNorm2d → ReLU", "MaxPool2d", "Linear"},
    "conv1d_bn": {"Conv1d", "BatchNorm1d → GELU"},
    "resnet": {"Conv2d", "BatchNorm2d → ReLU", "ReLU"},  # the second ReLU follows the addition
    "transformer": {"MultiheadAttention", "Linear → F.relu", "LayerNorm"},
    "gru_lstm_tuple": {"GRU", "LSTM", "Linear"},
}


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_model_is_bit_identical_after_the_audit(architecture, mode):
    build, make_batch = ARCHITECTURES[architecture]
    torch.manual_seed(0)
    model = build().train(mode == "train")
    x = make_batch()
    before = snapshot(model)
    rng_before = torch.get_rng_state()
    report = audit(model, x)
    assert_identical(before, model)
    assert torch.equal(rng_before, torch.get_rng_state())
    assert_no_hooks(model)
    kinds = {layer.kind for layer in report.layers}
    assert EXPECTED_KINDS[architecture] <= kinds, kinds
    assert all(layer.grad_output_norm is not None for layer in report.layers)


def test_batchnorm_running_statistics_would_change_without_the_guarantee():
    # the check above can fail: a train-mode forward does move the running statistics
    model = ConvNet().train()
    x = ARCHITECTURES["conv2d_bn"][1]()
    before = model.features[1].running_mean.clone()
    audit(model, x, jacobian=False)
    assert torch.equal(before, model.features[1].running_mean)
    model(x)
    assert not torch.equal(before, model.features[1].running_mean)


def test_frozen_parameters_stay_frozen_and_grads_stay_untouched():
    model = mlp(3, 16, nn.Tanh, normal_init(0.3))
    model[0].weight.requires_grad_(False)
    model[2].weight.grad = torch.full_like(model[2].weight, 7.0)
    before = snapshot(model)
    report = audit(model, batch(8), jacobian=False)
    assert_identical(before, model)
    assert report.layers[0].weight_grad_norm is not None  # measured although frozen


def test_hooks_are_removed_and_state_restored_when_the_model_raises():
    class Exploder(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom inside the model")

    model = nn.Sequential(nn.Linear(IN_FEATURES, 8), nn.BatchNorm1d(8), nn.ReLU(), Exploder())
    before = snapshot(model)
    with pytest.raises(InitlabError, match=r"boom inside the model") as error:
        audit(model, batch(8))
    assert "'3'" in str(error.value) and "(8, 40)" in str(error.value)
    assert_no_hooks(model)
    assert_identical(before, model)  # BatchNorm ran before the failure: its statistics are restored


@pytest.mark.parametrize("collector, threads", [(True, 1), (False, 2)])
def test_the_audit_changes_no_process_wide_setting(monkeypatch, collector, threads):
    # seen from inside the model and the loss, and any call that would change them fails
    seen = []

    class Probe(nn.Module):
        def forward(self, x):
            seen.append((gc.isenabled(), torch.get_num_threads()))
            return x

    def loss_fn(output, target):
        seen.append((gc.isenabled(), torch.get_num_threads()))
        return nn.functional.mse_loss(output, target)

    previous_threads = torch.get_num_threads()
    (gc.enable if collector else gc.disable)()
    torch.set_num_threads(threads)
    for name, module in (("disable", gc), ("enable", gc), ("freeze", gc), ("set_num_threads", torch),
                         ("set_num_interop_threads", torch)):
        monkeypatch.setattr(module, name, lambda *args, name=name: pytest.fail(f"the audit called {name}"))
    try:
        model = nn.Sequential(nn.Linear(IN_FEATURES, 8), nn.Tanh(), Probe(), nn.Linear(8, 3))
        audit(model, batch(8), target=torch.zeros(8, 3), loss_fn=loss_fn, jacobian=False)
        assert (gc.isenabled(), torch.get_num_threads()) == (collector, threads)
    finally:
        monkeypatch.undo()
        gc.enable()
        torch.set_num_threads(previous_threads)
    assert seen == [(collector, threads)] * 2


def test_python_and_numpy_random_states_are_restored_when_the_model_draws_from_them():
    class DrawsNoise(nn.Module):
        def forward(self, x):
            return x * (1.0 + random.random() + float(np.random.rand()))

    model = nn.Sequential(nn.Linear(IN_FEATURES, 8), DrawsNoise(), nn.Linear(8, 3))
    random.seed(5)
    np.random.seed(5)
    expected = (random.random(), float(np.random.rand()))
    random.seed(5)
    np.random.seed(5)
    audit(model, batch(8))
    assert (random.random(), float(np.random.rand())) == expected


def test_the_audit_leaves_no_reference_cycles_behind():
    model = nn.Sequential(nn.Linear(IN_FEATURES, 8), nn.ReLU(), nn.Linear(8, 3))
    audit(model, batch(8), jacobian=False)
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        report = audit(model, batch(8), jacobian=False)
        assert report.layers
        gc.collect()
        left = sorted({type(item).__name__ for item in gc.garbage
                       if type(item).__module__.startswith("initlab")})  # other tests' garbage may show
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert left == []  # the capture and its records were freed by reference counting


def test_an_output_no_one_reads_is_freed_during_the_forward_pass_as_without_the_audit():
    # A Linear's output is read only by its ReLU (which saves its own result for the backward
    # pass): a plain forward pass frees it right after the ReLU, and the audit must not keep it.
    alive_after_relu = []
    linear_outputs = []

    class Probe(nn.Module):
        def forward(self, x):
            alive_after_relu.append(linear_outputs[-1]() is not None)
            return x

    model = nn.Sequential(nn.Linear(IN_FEATURES, 8), nn.ReLU(), Probe(), nn.Linear(8, 3))
    model[0].register_forward_hook(lambda module, inputs, output: linear_outputs.append(weakref.ref(output)))
    model(batch(8))
    audit(model, batch(8), jacobian=False)
    assert alive_after_relu == [False, False]


def test_works_inside_no_grad_and_inference_mode():
    model = mlp(3, 16, nn.Tanh, normal_init(0.3))
    with torch.no_grad():
        report = audit(model, batch(8), jacobian=False)
    assert all(layer.grad_output_norm is not None and layer.grad_output_norm > 0 for layer in report.layers)
    with torch.inference_mode():
        x = batch(8)
        inference_report = audit(model, x, jacobian=False)
    assert inference_report.layers[0].weight_grad_norm == pytest.approx(report.layers[0].weight_grad_norm)


def test_nan_in_the_batch_is_an_error_naming_the_batch():
    x = batch(8)
    x[3, 5] = float("nan")
    with pytest.raises(InitlabError, match=r"batch \(shape \(8, 40\)\) holds 1 NaN/inf"):
        audit(mlp(2, 8, nn.ReLU, normal_init(0.3)), x)


def test_batch_of_the_wrong_shape_repeats_the_shape():
    with pytest.raises(InitlabError, match=r"batch shape \(8, 41\)"):
        audit(mlp(2, 8, nn.ReLU, normal_init(0.3)), torch.randn(8, 41))


def test_dict_outputs_need_output_fn_and_tuples_default_to_the_first_tensor():
    model = DictOutput()
    with pytest.raises(InitlabError, match=r"dict with keys \['hidden', 'logits'\].*output_fn"):
        audit(model, batch(8))
    report = audit(model, batch(8), output_fn=lambda out: out["logits"])
    assert report.jacobian.output_dim == 5
    tuple_report = audit(Recurrent(), torch.randn(4, 5, 6))
    assert tuple_report.jacobian.output_dim == 4  # the logits, first element of the tuple


def test_loss_backward_uses_the_target():
    model = mlp(2, 16, nn.ReLU, normal_init(0.3))
    x, target = batch(16), torch.arange(16) % 10
    report = audit(model, x, target=target, loss_fn=nn.functional.cross_entropy, jacobian=False)
    assert report.backward == "loss"
    logits = model(x)
    logits.retain_grad()
    nn.functional.cross_entropy(logits, target).backward()
    assert report.layers[-1].grad_output_norm == pytest.approx(float(logits.grad.norm()), rel=1e-5)


class ScalesInPlace(nn.Module):
    """Doubles its first layer's output in place, outside any recorded module."""

    def __init__(self):
        super().__init__()
        self.first, self.head = nn.Linear(IN_FEATURES, 6), nn.Linear(6, 3)

    def forward(self, x):
        hidden = self.first(x)
        hidden.mul_(2.0)
        return self.head(hidden)


def test_a_gradient_is_read_for_the_value_the_module_returned_even_after_an_in_place_change():
    model = ScalesInPlace()
    x, target = batch(8), torch.randn(8, 3, generator=torch.Generator().manual_seed(3))
    report = audit(model, x, target=target, loss_fn=nn.functional.mse_loss, jacobian=False)
    returned = model.first(x)
    loss = nn.functional.mse_loss(model.head(returned * 2.0), target)
    (expected,) = torch.autograd.grad(loss, returned)  # twice the gradient w.r.t. the doubled value
    assert report.layers[0].name == "first"
    assert report.layers[0].grad_output_norm == pytest.approx(float(expected.norm()), rel=1e-5)


class CallsAnOutsider(nn.Module):
    """Calls a module that is not one of its submodules (kept out of ``_modules``)."""

    def __init__(self, outsider: nn.Module):
        super().__init__()
        self.linear = nn.Linear(4, 4)
        object.__setattr__(self, "outsider", outsider)

    def forward(self, x):
        return self.linear(self.outsider(x))


def test_modules_outside_the_model_are_not_recorded():
    # the capture's hooks are global: they must leave other modules (and a loss module) alone
    outsider = nn.Sequential(nn.Linear(4, 4), nn.Tanh())
    model = CallsAnOutsider(outsider)
    report = audit(model, torch.randn(8, 4), target=torch.arange(8) % 4, loss_fn=nn.CrossEntropyLoss(),
                   jacobian=False)
    # the outsider's modules are not recorded as modules; its tanh is a function the model applied
    assert [layer.name for layer in report.layers] == ["<model>.<tanh>", "linear"]
    assert report.backward == "loss"
    assert_no_hooks(model)
    assert_no_hooks(outsider)


@pytest.mark.parametrize("kwargs, message", [
    ({"target": torch.zeros(8)}, r"target was given without loss_fn"),
    ({"loss_fn": nn.functional.mse_loss}, r"loss_fn was given without target"),
    ({"jacobian": "yes"}, r"jacobian='yes' is invalid"),
    ({"progress": "bar"}, r"audit: progress='bar' is invalid; expected a callable step -> None\."),
    ({"seed": 1.5}, r"seed=1.5 is invalid"),
    ({"output_fn": 3}, r"output_fn=3 is invalid"),
])
def test_bad_arguments_name_the_argument(kwargs, message):
    with pytest.raises(InitlabError, match=message):
        audit(mlp(2, 8, nn.ReLU, normal_init(0.3)), batch(8), **kwargs)


def test_bad_model_batch_and_thresholds():
    with pytest.raises(InitlabError, match=r"model='not a model' is invalid; expected a torch.nn.Module"):
        audit("not a model", batch(8))
    with pytest.raises(InitlabError, match=r"batch=\[1, 2\] is invalid"):
        audit(mlp(2, 8, nn.ReLU, normal_init(0.3)), [1, 2])
    with pytest.raises(InitlabError, match=r"vanishing_ratio=2 .* expected vanishing_ratio < 1 < exploding_ratio"):
        Thresholds(vanishing_ratio=2)
    with pytest.raises(InitlabError, match=r"dead_fraction_max=-1 is invalid"):
        Thresholds(dead_fraction_max=-1)


class WritesItsState(nn.Module):
    """Writes its weight through ``.data`` (no version-counter bump) and a buffer in place
    during forward, then optionally raises: the restore must not trust version counters."""

    def __init__(self, width: int, fail: bool = False):
        super().__init__()
        self.linear = nn.Linear(IN_FEATURES, width)
        self.register_buffer("calls", torch.zeros(()))
        self.fail = fail

    def forward(self, x):
        self.linear.weight.data.mul_(0.5)
        self.calls += 1
        if self.fail:
            raise RuntimeError("fails after writing its weight")
        return self.linear(x)


@pytest.mark.parametrize("width", [8, 8192])  # a small weight and a 1.3 MB one
def test_state_written_through_data_in_forward_is_restored(width):
    model = WritesItsState(width)
    version = model.linear.weight._version
    model(batch(2))
    assert model.linear.weight._version == version  # .data writes are invisible to the version counter
    before = snapshot(model)
    audit(model, batch(8))
    assert_identical(before, model)
    failing = WritesItsState(width, fail=True)
    before = snapshot(failing)
    with pytest.raises(InitlabError, match=r"fails after writing its weight"):
        audit(failing, batch(8))
    assert_identical(before, failing)
    assert_no_hooks(failing)


class PassThrough(TorchFunctionMode):
    """A mode of the caller's, around the audit."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


def test_torch_function_mode_stack_is_restored_even_when_a_recorded_module_raises():
    class RaisesInside(nn.Module):
        def forward(self, x):
            torch.relu(x)
            raise RuntimeError("boom in a leaf module")

    with PassThrough() as outer:
        audit(ARCHITECTURES["transformer"][0](), ARCHITECTURES["transformer"][1](), jacobian=False)
        assert _compat.current_function_modes() == [outer]
        with pytest.raises(InitlabError, match=r"in module '1' .*: boom in a leaf module"):
            audit(nn.Sequential(nn.Linear(IN_FEATURES, 8), RaisesInside()), batch(8))
        assert _compat.current_function_modes() == [outer]
    assert _compat.current_function_modes() == []


def test_activation_modules_with_different_parameters_keep_their_own_activation():
    model = nn.Sequential(nn.Linear(IN_FEATURES, 16), nn.LeakyReLU(0.1), nn.Linear(16, 16), nn.LeakyReLU(0.3),
                          nn.Linear(16, 16), nn.LeakyReLU(0.1), nn.Linear(16, 4))
    report = audit(model, batch(8), jacobian=False)
    slopes = [layer.activation_params.get("negative_slope") for layer in report.layers[:3]]
    assert slopes == pytest.approx([0.1, 0.3, 0.1])


class WritesMixedState(nn.Module):
    """Parameters and buffers of several dtypes and layouts, all written in forward."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(IN_FEATURES, 5)
        self.low = nn.Parameter(torch.randn(3, 7).half())
        self.register_buffer("count", torch.tensor([3], dtype=torch.int64))
        self.register_buffer("mask", torch.tensor([True, False, True]))
        self.register_buffer("precise", torch.randn(5, dtype=torch.float64))
        self.register_buffer("transposed", torch.randn(4, 6).t())  # not contiguous

    def forward(self, x):
        self.low.data.add_(1.0)
        self.count += 1
        self.mask.logical_not_()
        self.precise.mul_(3.0)
        self.transposed.add_(2.0)
        return self.linear(x) * self.precise.float()


def test_state_of_every_dtype_and_layout_is_restored_bit_for_bit():
    model = WritesMixedState()
    assert not model.transposed.is_contiguous()
    before = snapshot(model)
    audit(model, batch(8))
    assert_identical(before, model)
    assert not model.transposed.is_contiguous()


def assert_left_clean(model: nn.Module, before: dict, rng_before: torch.Tensor) -> None:
    """After an audit that raised: the model bit-identical, no hook and no torch-function mode left."""
    assert_identical(before, model)
    assert torch.equal(rng_before, torch.get_rng_state())
    assert_no_hooks(model)
    assert _compat.current_function_modes() == []


def frames_of(error: BaseException) -> list[str]:
    return [frame.name for frame in traceback.extract_tb(error.__traceback__)]


class FailsInBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, gradient):
        raise ArithmeticError("boom in the backward pass")


def test_an_error_of_the_model_is_chained_with_its_traceback_and_names_what_the_audit_did():
    class Exploder(nn.Module):
        def forward(self, x):
            raise KeyError("boom inside the model")

    model = nn.Sequential(nn.Linear(IN_FEATURES, 8), nn.BatchNorm1d(8), Exploder())
    before, rng_before = snapshot(model), torch.get_rng_state()
    with pytest.raises(InitlabError, match=r"model raised KeyError in module '2' during the audit's forward pass "
                                           r"on the batch \(batch shape \(8, 40\)\)") as error:
        audit(model, batch(8))
    cause = error.value.__cause__
    assert isinstance(cause, KeyError) and "forward" in frames_of(cause)  # the model's own frame is kept
    assert_left_clean(model, before, rng_before)


@pytest.mark.parametrize("where, message, cause_type", [
    ("loss", r"audit: loss_fn raised ZeroDivisionError on the model's output \(shape \(8, 3\)\)", ZeroDivisionError),
    ("output_fn", r"audit: output_fn raised IndexError on the model's output \(a Tensor\)", IndexError),
    ("backward", r"audit: the backward pass raised ArithmeticError: boom in the backward pass", ArithmeticError),
])
def test_an_error_of_the_users_loss_output_fn_or_backward_is_chained_and_leaves_nothing_behind(
        where, message, cause_type):
    def loss_fn(output, target):
        raise ZeroDivisionError("boom in the loss")

    def output_fn(output):
        return output[99]

    layers = [nn.Linear(IN_FEATURES, 8), nn.Dropout(0.5), nn.ReLU(), nn.Linear(8, 3)]
    model = nn.Sequential(*layers[:3], *([FailsInBackwardModule()] if where == "backward" else []), layers[3]).train()
    options = {"loss": {"target": torch.zeros(8, 3), "loss_fn": loss_fn}, "output_fn": {"output_fn": output_fn},
               "backward": {}}[where]
    before, rng_before = snapshot(model), torch.get_rng_state()
    with pytest.raises(InitlabError, match=message) as error:
        audit(model, batch(8), **options)
    assert isinstance(error.value.__cause__, cause_type)
    assert_left_clean(model, before, rng_before)


class FailsInBackwardModule(nn.Module):
    def forward(self, x):
        return FailsInBackward.apply(x)


@pytest.mark.parametrize("step, frame", [("summarize", "record"), ("norm_and_std", "hook")])
def test_an_error_of_the_audit_itself_is_not_blamed_on_the_model(monkeypatch, step, frame):
    # in the forward hook (a summary), then in a gradient hook during the backward pass
    from initlab.auditing import statistics

    original = getattr(statistics, step)
    calls = []

    def fails_on_the_second_call(tensor):
        calls.append(1)
        if len(calls) == 2:
            raise OverflowError("a bug in the audit")
        return original(tensor)

    monkeypatch.setattr(statistics, step, fails_on_the_second_call)
    model = nn.Sequential(nn.Linear(IN_FEATURES, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 3))
    before, rng_before = snapshot(model), torch.get_rng_state()
    with pytest.raises(OverflowError, match="a bug in the audit") as error:
        audit(model, batch(8))
    assert not isinstance(error.value, InitlabError) and frame in frames_of(error.value)
    if hasattr(error.value, "__notes__"):  # Python >= 3.11
        assert any("an error of initlab, not of the model" in note for note in error.value.__notes__)
    assert_left_clean(model, before, rng_before)


def test_an_error_of_the_audit_that_the_model_swallows_is_still_raised(monkeypatch):
    from initlab.auditing import statistics

    class Forgiving(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = nn.Linear(IN_FEATURES, 8)

        def forward(self, x):
            try:
                return self.inner(x)
            except OverflowError:
                return x[:, :8]

    def fails(tensor):
        raise OverflowError("a bug in the audit")

    monkeypatch.setattr(statistics, "summarize", fails)
    model = Forgiving()
    with pytest.raises(OverflowError, match="a bug in the audit"):
        audit(model, batch(8))
    assert_no_hooks(model)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_verifying_the_fixes_on_a_copy_leaves_the_model_and_the_random_states_untouched(mode):
    import random

    import numpy as np

    torch.manual_seed(0)
    model = ConvNet().train(mode == "train")
    with torch.no_grad():
        model.features[1].bias.fill_(-5.0)  # dead channels: a finding, so the fix is verified on a copy
    x = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    before = snapshot(model)
    states = torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy()
    report = audit(model, x)
    assert report.verdict == "dead" and report.first("dead").fix_params  # verified, so given
    assert_identical(before, model)
    assert torch.equal(states[0], torch.get_rng_state()) and states[1] == random.getstate()
    assert np.array_equal(states[2], np.random.get_state()[1])
    assert_no_hooks(model)


def test_without_the_fix_check_the_model_is_never_copied_and_the_fixes_say_so(monkeypatch):
    import copy

    torch.manual_seed(0)
    model = ConvNet()
    with torch.no_grad():
        model.features[1].bias.fill_(-5.0)  # dead channels
    x = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    verified = audit(model, x, jacobian=False)

    deepcopy = copy.deepcopy

    def refuses(value, *args, **kwargs):
        if isinstance(value, nn.Module):
            raise AssertionError("the model was copied")
        return deepcopy(value, *args, **kwargs)

    monkeypatch.setattr(copy, "deepcopy", refuses)
    unverified = audit(model, x, jacobian=False, verify_fixes=False)
    assert unverified.verdict == verified.verdict == "dead"
    assert unverified.first("dead").fix_params == verified.first("dead").fix_params != []
    assert "fixes not verified (verify_fixes=False): no copy of the model was re-audited" in unverified.notes
    assert not any("not verified" in note for note in verified.notes)
    with pytest.raises(InitlabError, match=r"^audit: verify_fixes='no' is invalid; expected True or False\.$"):
        audit(model, x, verify_fixes="no")
