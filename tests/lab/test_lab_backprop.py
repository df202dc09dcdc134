"""The hand-written MLP backward pass equals autograd, and the fused SGD step equals SGD."""

import pytest
import torch

from initlab.lab.backprop import MlpBackprop
from initlab.lab.config import RunConfig
from initlab.lab.models import ModelSpec, StackedModel
from initlab.lab.trainer import StackedOptimizer, loss_per_run

RUNS, BATCH = 3, 7


def _model(activation, *, params=(), bias=True, outputs=4, kind="mlp", norm="none"):
    spec = ModelSpec(kind=kind, depth=3, width=6, activation=activation, activation_params=params,
                     input_shape=(1, 5), num_outputs=outputs, bias=bias, norm=norm)
    model = StackedModel.empty(spec, RUNS, torch.float64)
    generator = torch.Generator().manual_seed(0)
    for tensor in model.params.values():
        tensor.copy_(torch.randn(tensor.shape, generator=generator, dtype=torch.float64))
        tensor.requires_grad_(True)
    return model


def _batch(task, outputs=4, seed=1):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(RUNS, BATCH, 1, 5, generator=generator, dtype=torch.float64)
    if task == "classification":
        return x, torch.randint(0, outputs, (RUNS, BATCH), generator=generator)
    return x, torch.randn(RUNS, BATCH, outputs, generator=generator, dtype=torch.float64)


def _autograd(model, x, y, task):
    losses = loss_per_run(model.forward(x, train=True), y, task)
    grads = torch.autograd.grad(losses.sum(), list(model.params.values()))
    return losses.detach(), dict(zip(model.params, grads))


@pytest.mark.parametrize("activation,params", [
    ("tanh", ()), ("sigmoid", ()), ("softsign", ()), ("relu", ()), ("leaky_relu", (("negative_slope", 0.2),)),
    ("linear", ()),
])
@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("bias", [True, False])
def test_gradients_equal_autograd(activation, params, task, bias):
    model = _model(activation, params=params, bias=bias)
    x, y = _batch(task)
    expected_losses, expected = _autograd(model, x, y, task)
    backprop = MlpBackprop.for_model(model)
    losses = backprop.loss(x, y, task)
    torch.testing.assert_close(losses, expected_losses, rtol=1e-12, atol=1e-12)
    grads = backprop.gradients(torch.isfinite(losses))
    assert list(grads) == list(expected)
    for name in expected:
        torch.testing.assert_close(grads[name], expected[name], rtol=1e-10, atol=1e-12)


def test_a_second_step_reuses_buffers_without_stale_values():
    model = _model("tanh")
    backprop = MlpBackprop.for_model(model)
    for seed in (3, 4):
        generator = torch.Generator().manual_seed(seed)
        x = torch.randn(RUNS, BATCH, 1, 5, generator=generator, dtype=torch.float64)
        y = torch.randint(0, 4, (RUNS, BATCH), generator=generator)
        _, expected = _autograd(model, x, y, "classification")
        grads = backprop.gradients(torch.isfinite(backprop.loss(x, y, "classification")))
        for name in expected:
            torch.testing.assert_close(grads[name], expected[name], rtol=1e-10, atol=1e-12)


def _configs(**training):
    base = {"dataset": {"name": "mnist1d"}, "model": {"depth": 3, "width": 6},
            "training": {"optimizer": "sgd", "lr": 0.1, **training}}
    return [RunConfig.model_validate(base) for _ in range(RUNS)]


@pytest.mark.parametrize("training", [{}, {"l2": 0.05}, {"weight_decay": 0.2}, {"l2": 0.01, "regularize_biases": True}])
def test_fused_sgd_step_equals_gradient_step(training):
    fused, reference = _model("tanh"), _model("tanh")
    x, y = _batch("classification")
    configs = _configs(**training)
    configs[2] = configs[2].model_copy(update={"training": configs[2].training.model_copy(
        update={"l2": 0.0, "weight_decay": 0.0})})
    optimizers = [StackedOptimizer("sgd", model.params, configs, torch.float64) for model in (fused, reference)]
    backprop = MlpBackprop.for_model(fused)
    backprop.loss(x, y, "classification")
    backprop.sgd_step_(optimizers[0].single_lr(), optimizers[0].shrink_)
    _, grads = _autograd(reference, x, y, "classification")
    optimizers[1].step(grads)
    for name, param in reference.params.items():
        torch.testing.assert_close(fused.params[name], param, rtol=1e-12, atol=1e-12)


def test_single_lr_only_for_plain_sgd_with_one_learning_rate():
    params = {"w": torch.zeros(RUNS, 2)}
    assert StackedOptimizer("sgd", params, _configs(), torch.float64).single_lr() == pytest.approx(0.1)
    assert StackedOptimizer("momentum", params, _configs(), torch.float64).single_lr() is None
    mixed = _configs()
    mixed[1] = mixed[1].model_copy(update={"training": mixed[1].training.model_copy(update={"lr": 0.2})})
    assert StackedOptimizer("sgd", params, mixed, torch.float64).single_lr() is None


@pytest.mark.parametrize("activation,params,kind,norm", [
    ("gelu", (), "mlp", "none"), ("leaky_relu", (("negative_slope", -0.5),), "mlp", "none"),
    ("tanh", (), "mlp", "batch"), ("tanh", (), "resmlp", "none"),
])
def test_models_that_need_autograd_have_no_fast_path(activation, params, kind, norm):
    assert MlpBackprop.for_model(_model(activation, params=params, kind=kind, norm=norm)) is None


def test_non_finite_run_gets_no_output_gradient_and_others_are_exact():
    model = _model("tanh")
    with torch.no_grad():
        model.params["layers.3.weight"][1] = float("inf")
    x, y = _batch("classification")
    backprop = MlpBackprop.for_model(model)
    losses = backprop.loss(x, y, "classification")
    finite = torch.isfinite(losses)
    assert finite.tolist() == [True, False, True]
    grads = backprop.gradients(finite)
    assert torch.count_nonzero(grads["layers.3.weight"][1]) == 0
    with torch.no_grad():
        model.params["layers.3.weight"][1] = 0.0
    _, expected = _autograd(model, x, y, "classification")
    for name in expected:
        torch.testing.assert_close(grads[name][[0, 2]], expected[name][[0, 2]], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("activation", ["tanh", "softsign", "relu"])
@pytest.mark.parametrize("bias", [True, False])
def test_evaluation_outputs_equal_the_models_forward(activation, bias):
    model = _model(activation, bias=bias)
    backprop = MlpBackprop.for_model(model)
    for count in (7, 11, 7):  # buffers per shape, reused
        x = torch.randn(count, 1, 5, dtype=torch.float64).unsqueeze(0).expand(RUNS, count, 1, 5)
        with torch.no_grad():
            expected = model.forward(x, train=False)
        torch.testing.assert_close(backprop.outputs(x), expected, rtol=1e-12, atol=1e-12)


def test_evaluation_outputs_for_per_run_inputs_and_a_nan_input():
    model = _model("tanh")
    backprop = MlpBackprop.for_model(model)
    x = torch.randn(RUNS, 5, 1, 5, dtype=torch.float64)
    with torch.no_grad():
        expected = model.forward(x, train=False)
    torch.testing.assert_close(backprop.outputs(x), expected, rtol=1e-12, atol=1e-12)
    x[1, 2, 0, 3] = float("nan")
    outputs = backprop.outputs(x)
    assert outputs[1, 2].isnan().all()  # the NaN spreads over its row through the products
    assert not outputs[1, [0, 1, 3, 4]].isnan().any() and not outputs[[0, 2]].isnan().any()


# ------------------------------------------- a float32 step of the trainer
PER_RUN = {  # per-run hyper-parameters of each optimiser (RUNS = 3 runs)
    "sgd": {"lr": [0.1, 0.05, 0.2]},
    "momentum": {"lr": [0.1, 0.05, 0.2], "momentum": [0.9, 0.5, 0.0]},
    "adam": {"lr": [0.01, 0.005, 0.02], "betas": [(0.9, 0.999), (0.5, 0.9), (0.0, 0.99)],
             "eps": [1e-8, 1e-6, 1e-3]},
}


def _per_run_configs(optimizer, regularize_biases):
    configs = []
    for run in range(RUNS):
        training = {"optimizer": optimizer, "l2": [0.0, 0.05, 0.01][run], "weight_decay": [0.0, 0.0, 0.2][run],
                    "regularize_biases": regularize_biases,
                    **{field: values[run] for field, values in PER_RUN[optimizer].items()}}
        configs.append(RunConfig.model_validate({"dataset": {"name": "mnist1d"}, "model": {"depth": 3, "width": 6},
                                                 "training": training}))
    return configs


def _float32_copy(model):
    single = StackedModel.empty(model.spec, RUNS, torch.float32)
    with torch.no_grad():
        for name, tensor in single.params.items():
            tensor.copy_(model.params[name] / (2.0 if name.endswith("weight") else 4.0))
            model.params[name].copy_(tensor)
            tensor.requires_grad_(True)
    return single


def _trainer_steps(model, configs, batches, fast):
    """The trainer's step on each batch; the losses before each step, (steps, RUNS)."""
    from initlab.lab.trainer import _step, _Training

    dtype = model.params["layers.0.weight"].dtype
    state = _Training(model, configs, "classification", [str(run) for run in range(RUNS)])
    optimizer = StackedOptimizer(configs[0].training.optimizer, model.params, configs, dtype)
    backprop = MlpBackprop.for_model(model) if fast else None
    losses = []
    for step, (x, y) in enumerate(batches):
        with torch.no_grad():
            losses.append(loss_per_run(model.forward(x.to(dtype), train=True), y, "classification"))
        _step(state, step, model, backprop, optimizer, x.to(dtype), y, "classification")
    return torch.stack(losses), state


@pytest.mark.parametrize("optimizer", list(PER_RUN))
@pytest.mark.parametrize("regularize_biases", [False, True])
def test_float32_steps_with_per_run_settings_follow_the_float64_autograd_steps(optimizer, regularize_biases):
    reference = _model("tanh")
    single = _float32_copy(reference)
    configs = _per_run_configs(optimizer, regularize_biases)
    batches = [_batch("classification", seed=seed) for seed in (1, 2, 3)]
    losses, _ = _trainer_steps(single, configs, batches, fast=True)
    expected, _ = _trainer_steps(reference, configs, batches, fast=False)
    torch.testing.assert_close(losses.double(), expected, rtol=2e-6, atol=2e-6)
    for name, param in reference.params.items():
        torch.testing.assert_close(single.params[name].detach().double(), param.detach(), rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("optimizer", list(PER_RUN))
def test_a_non_finite_run_is_stopped_and_the_others_step_as_without_it(optimizer):
    configs = _per_run_configs(optimizer, False)
    batches = [_batch("classification", seed=seed) for seed in (1, 2)]
    broken, healthy = _model("tanh"), _model("tanh")
    with torch.no_grad():
        broken.params["layers.3.weight"][1] = float("nan")
    _, state = _trainer_steps(broken, configs, batches, fast=True)
    _trainer_steps(healthy, configs, batches, fast=True)
    assert state.diverged_at == [None, 0, None] and state.stopped == [1]
    for name, param in broken.params.items():
        assert torch.count_nonzero(param[1]) == 0
        torch.testing.assert_close(param[[0, 2]], healthy.params[name][[0, 2]], rtol=1e-12, atol=1e-12)
