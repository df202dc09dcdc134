"""initlab._trainer: the compiled training step (SGD, momentum, Adam) and forward pass of stacked float32 MLPs.

References are float64: autograd's gradients and the trainer's own
optimiser, so a float32 result within float32 tolerance of them is right.
"""

import json
import os
import platform
import subprocess
import sys

import numpy as np
import pytest
import torch

from initlab import _trainer
from initlab.lab.backprop import COMPILED_STEP, MlpBackprop
from initlab.lab.config import RunConfig
from initlab.lab.models import ModelSpec, StackedModel
from initlab.lab.trainer import StackedOptimizer, loss_per_run

RUNS, BATCH, INPUTS = 5, 9, 7
ACTIVATIONS = [("tanh", ()), ("sigmoid", ()), ("relu", ()), ("leaky_relu", (("negative_slope", 0.2),)),
               ("linear", ())]

pytestmark = pytest.mark.skipif(not COMPILED_STEP, reason="torch here ships no MKL sgemm to bind")


def test_the_step_is_bound_wherever_torch_ships_mkl():
    if platform.system() == "Linux" and platform.machine() == "x86_64" and torch.backends.mkl.is_available():
        assert COMPILED_STEP


def _spec(activation, params=(), *, bias=True, outputs=4, depth=3, width=6, inputs=INPUTS):
    return ModelSpec(kind="mlp", depth=depth, width=width, activation=activation, activation_params=params,
                     input_shape=(1, inputs), num_outputs=outputs, bias=bias, norm="none")


def _models(spec, runs=RUNS, seed=0):
    """The same random parameters (fan-in scaled) in float32 and float64."""
    single, double = StackedModel.empty(spec, runs, torch.float32), StackedModel.empty(spec, runs, torch.float64)
    generator = torch.Generator().manual_seed(seed)
    for name, tensor in double.params.items():
        values = torch.randn(tensor.shape, generator=generator, dtype=torch.float64)
        tensor.copy_(values / (tensor.shape[-1] ** 0.5 if name.endswith("weight") else 4.0))
        single.params[name].copy_(tensor)
        tensor.requires_grad_(True)
    return single, double


def _batch(task, outputs=4, runs=RUNS, seed=1):
    """Examples, their labels or targets, and each run's batch of rows (R, BATCH) into them."""
    generator = torch.Generator().manual_seed(seed)
    count = 3 * BATCH
    x = torch.randn(count, 1, INPUTS, generator=generator)
    rows = torch.randint(0, count, (runs, BATCH), generator=generator)
    if task == "classification":
        return x, torch.randint(0, outputs, (count,), generator=generator), rows
    return x, torch.randn(count, outputs, generator=generator), rows


def _configs(runs=RUNS, optimizer="sgd", **per_run):
    """Configs of one optimiser; per_run maps a training field to one value per run."""
    configs = []
    for run in range(runs):
        training = {"optimizer": optimizer, "lr": 0.1, **{field: values[run] for field, values in per_run.items()}}
        configs.append(RunConfig.model_validate({"dataset": {"name": "mnist1d"}, "model": {"depth": 3, "width": 6},
                                                 "training": training}))
    return configs


def _optimizers(single, double, configs):
    """The stacked optimiser of the configs over the float32 model and over the float64 one."""
    kind = configs[0].training.optimizer
    return (StackedOptimizer(kind, single.params, configs, torch.float32),
            StackedOptimizer(kind, double.params, configs, torch.float64))


OPTIMIZERS = {  # per-run hyper-parameters of each optimiser's test
    "sgd": {"lr": [0.1, 0.05, 0.2, 0.1, 0.3]},
    "momentum": {"lr": [0.1, 0.05, 0.2, 0.1, 0.3], "momentum": [0.9, 0.5, 0.0, 0.99, 0.9]},
    "adam": {"lr": [0.01, 0.005, 0.02, 0.01, 0.03], "betas": [(0.9, 0.999), (0.5, 0.9), (0.0, 0.99), (0.9, 0.999),
                                                              (0.8, 0.95)], "eps": [1e-8, 1e-6, 1e-8, 1e-3, 1e-8]},
}


def _one_step(backprop, x, y, rows, task, optimizer):
    """One compiled step of every run on its batch ``rows`` (R, B); the losses before it (R,)."""
    return backprop.compiled_steps(x, y, rows.unsqueeze(1), task, optimizer)[:, 0]


def _reference_step(model, optimizer, x, y, rows, task):
    """The float64 step on batches x[rows]: autograd's gradients, then the trainer's optimiser; returns the losses."""
    x, y = x[rows], y[rows]
    losses = loss_per_run(model.forward(x.double(), train=True), y if task == "classification" else y.double(), task)
    grads = torch.autograd.grad(losses.sum(), list(model.params.values()))
    optimizer.step(dict(zip(model.params, grads)))
    return losses.detach()


@pytest.mark.parametrize("activation,params", ACTIVATIONS)
@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_three_steps_equal_the_float64_optimiser_with_per_run_settings_l2_and_decay(activation, params, task, bias,
                                                                                   optimizer):
    spec = _spec(activation, params, bias=bias)
    single, double = _models(spec)
    configs = _configs(optimizer=optimizer, l2=[0.0, 0.05, 0.0, 0.01, 0.0], weight_decay=[0.0, 0.0, 0.2, 0.1, 0.0],
                       regularize_biases=[True] * RUNS, **OPTIMIZERS[optimizer])
    compiled_optimizer, reference_optimizer = _optimizers(single, double, configs)
    backprop = MlpBackprop.for_model(single)
    assert backprop.compiled
    for seed in (1, 2, 3):
        x, y, rows = _batch(task, seed=seed)
        losses = _one_step(backprop, x, y, rows, task, compiled_optimizer)
        expected = _reference_step(double, reference_optimizer, x, y, rows, task)
        torch.testing.assert_close(losses.double(), expected, rtol=2e-6, atol=2e-6)
    for name, param in double.params.items():
        torch.testing.assert_close(single.params[name].double(), param.detach(), rtol=1e-5, atol=2e-6)


def test_a_network_deeper_than_64_layers_steps_like_float64_sgd():
    # the tour's edge-of-chaos study trains depth 90
    single, double = _models(_spec("tanh", depth=100, width=8), runs=2)
    backprop = MlpBackprop.for_model(single)
    assert backprop.compiled
    x, y, rows = _batch("classification", runs=2)
    compiled_optimizer, reference_optimizer = _optimizers(single, double, _configs(runs=2))
    losses = _one_step(backprop, x, y, rows, "classification", compiled_optimizer)
    expected = _reference_step(double, reference_optimizer, x, y, rows, "classification")
    torch.testing.assert_close(losses.double(), expected, rtol=2e-6, atol=2e-6)
    for name, param in double.params.items():
        torch.testing.assert_close(single.params[name].double(), param.detach(), rtol=1e-5, atol=2e-6)
    with torch.no_grad():
        torch.testing.assert_close(backprop.outputs(x[rows]).double(), double.forward(x[rows].double(), train=False),
                                   rtol=1e-5, atol=1e-6)


def test_networks_beyond_the_layer_limit_take_the_torch_path():
    model = StackedModel.empty(_spec("tanh", depth=_trainer.max_layers, width=2), 1, torch.float32)
    assert not MlpBackprop.for_model(model).compiled


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_biases_are_regularised_only_when_asked(optimizer):
    spec = _spec("tanh")
    for regularize_biases in (False, True):
        single, double = _models(spec)
        configs = _configs(optimizer=optimizer, l2=[0.5] * RUNS, weight_decay=[0.3] * RUNS,
                           regularize_biases=[regularize_biases] * RUNS, **OPTIMIZERS[optimizer])
        compiled_optimizer, reference_optimizer = _optimizers(single, double, configs)
        x, y, rows = _batch("classification")
        _one_step(MlpBackprop.for_model(single), x, y, rows, "classification", compiled_optimizer)
        _reference_step(double, reference_optimizer, x, y, rows, "classification")
        for name, param in double.params.items():
            torch.testing.assert_close(single.params[name].double(), param.detach(), rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_stopped_and_non_finite_runs_are_left_unchanged_and_the_others_step(optimizer):
    spec = _spec("tanh")
    single, double = _models(spec)
    with torch.no_grad():
        single.params["layers.2.weight"][1] = float("nan")
        double.params["layers.2.weight"][1] = 0.0
    compiled, reference = _optimizers(single, double, _configs(optimizer=optimizer, **OPTIMIZERS[optimizer]))
    compiled.lr[3] = 0.0  # a stopped run
    for state in compiled.state.values():
        for tensor in state:
            tensor.fill_(0.25)  # state left by earlier steps
    before = {name: param.detach().clone() for name, param in single.params.items()}
    x, y, rows = _batch("classification")
    losses = _one_step(MlpBackprop.for_model(single), x, y, rows, "classification", compiled)
    assert torch.isfinite(losses).tolist() == [True, False, True, True, True]
    for state in reference.state.values():
        for tensor in state:
            tensor.fill_(0.25)
    _reference_step(double, reference, x, y, rows, "classification")
    for name, param in single.params.items():
        assert torch.equal(param[[1, 3]].isnan(), before[name][[1, 3]].isnan())
        assert torch.equal(param[[1, 3]].nan_to_num(), before[name][[1, 3]].nan_to_num())
        torch.testing.assert_close(param[[0, 2, 4]].double(), double.params[name][[0, 2, 4]].detach(),
                                   rtol=1e-5, atol=2e-6)
        for tensor, expected in zip(compiled.state.get(name, []), reference.state.get(name, [])):
            assert bool((tensor[[1, 3]] == 0.25).all())
            torch.testing.assert_close(tensor[[0, 2, 4]].double(), expected[[0, 2, 4]], rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_results_do_not_depend_on_the_thread_count(optimizer):
    spec = _spec("tanh", depth=4, width=40, inputs=INPUTS)
    results = []
    previous = torch.get_num_threads()
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            model, _ = _models(spec, runs=8)
            backprop = MlpBackprop.for_model(model)
            optimizer_ = StackedOptimizer(optimizer, model.params, _configs(runs=8, optimizer=optimizer), torch.float32)
            losses = [_one_step(backprop, *_batch("classification", runs=8, seed=seed), "classification",
                                             optimizer_).clone() for seed in (1, 2)]
            results.append((losses, {name: param.detach().clone() for name, param in model.params.items()}))
    finally:
        torch.set_num_threads(previous)
    for losses, params in results[1:]:
        assert all(torch.equal(a, b) for a, b in zip(losses, results[0][0]))
        assert all(torch.equal(params[name], results[0][1][name]) for name in params)


def _stacked_batches(count, runs=RUNS):
    """Examples, labels and (runs, count, BATCH) rows: the batches of ``count`` steps."""
    x, y, _ = _batch("classification", runs=runs)
    rows = torch.stack([_batch("classification", runs=runs, seed=seed)[2] for seed in range(count)], dim=1)
    return x, y, rows


def _train(spec, configs, steps):
    """Fresh models of ``spec``, trained by ``steps(backprop, optimizer)`` (which returns the
    losses); the losses and the parameters after."""
    model, _ = _models(spec)
    stacked = StackedOptimizer(configs[0].training.optimizer, model.params, configs, torch.float32)
    losses = steps(MlpBackprop.for_model(model), stacked).clone()
    assert stacked.steps == losses.shape[1]
    return losses, {name: param.detach().clone() for name, param in model.params.items()}


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_steps_in_one_call_equal_the_same_steps_one_call_each(optimizer):
    x, y, rows = _stacked_batches(4)
    configs = _configs(optimizer=optimizer, **OPTIMIZERS[optimizer])
    losses, params = _train(_spec("tanh"), configs,
                            lambda backprop, stacked: backprop.compiled_steps(x, y, rows, "classification", stacked))
    expected_losses, expected = _train(_spec("tanh"), configs, lambda backprop, stacked: torch.stack(
        [_one_step(backprop, x, y, rows[:, k], "classification", stacked).clone() for k in range(4)], dim=1))
    assert torch.equal(losses, expected_losses)
    assert all(torch.equal(params[name], expected[name]) for name in params)


def test_a_run_diverging_within_a_call_stops_at_that_step_and_the_others_go_on():
    x, y, rows = _stacked_batches(6)
    configs = _configs(lr=[0.1, 1e6, 0.1, 0.1, 0.1])  # run 1 overflows within a few steps

    def one_call_per_step(backprop, stacked):  # each run stopped by hand at its first non-finite loss
        losses = torch.empty(RUNS, 6)
        for k in range(6):
            losses[:, k] = _one_step(backprop, x, y, rows[:, k], "classification", stacked)
            stacked.lr[~torch.isfinite(losses[:, k])] = 0.0
        return losses

    losses, params = _train(_spec("relu"), configs,
                            lambda backprop, stacked: backprop.compiled_steps(x, y, rows, "classification", stacked))
    single_losses, expected = _train(_spec("relu"), configs, one_call_per_step)
    diverged = int((~torch.isfinite(losses[1])).int().argmax())
    assert 0 < diverged < 6 and torch.isfinite(losses[1, :diverged]).all() and losses[1, diverged + 1:].isnan().all()
    assert torch.equal(losses[:, :diverged + 1].nan_to_num(), single_losses[:, :diverged + 1].nan_to_num())
    assert torch.isfinite(losses[[0, 2, 3, 4]]).all()
    assert torch.equal(losses[[0, 2, 3, 4]], single_losses[[0, 2, 3, 4]])
    assert all(torch.equal(params[name].nan_to_num(), expected[name].nan_to_num()) for name in params)


def test_more_torch_threads_than_the_kernel_takes_still_train(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4 * _trainer.max_threads)
    single, double = _models(_spec("tanh"))
    compiled_optimizer, reference_optimizer = _optimizers(single, double, _configs())
    x, y, rows = _batch("classification")
    losses = _one_step(MlpBackprop.for_model(single), x, y, rows, "classification", compiled_optimizer)
    expected = _reference_step(double, reference_optimizer, x, y, rows, "classification")
    torch.testing.assert_close(losses.double(), expected, rtol=2e-6, atol=2e-6)


def _identity_network(activation, params=(), width=64):
    """phi(x) as a network: identity weights around one hidden layer, zero biases."""
    model = StackedModel.empty(_spec(activation, params, depth=1, width=width, outputs=width, inputs=width), 1,
                               torch.float32)
    with torch.no_grad():
        model.params["layers.0.weight"][0] = torch.eye(width)
        model.params["layers.1.weight"][0] = torch.eye(width)
    return MlpBackprop.for_model(model)


def _ulps(values: torch.Tensor, exact: torch.Tensor) -> float:
    """Largest error of float32 values in units of float32's spacing at the exact float64 values."""
    spacing = torch.from_numpy(np.spacing(np.abs(exact.float().numpy())).astype(np.float64))
    return float(((values.double() - exact).abs() / spacing).max())


@pytest.mark.parametrize("activation,bound", [("tanh", 1.5), ("sigmoid", 3.0)])
def test_tanh_and_sigmoid_are_within_a_few_ulp_of_float64(activation, bound):
    # torch's own float32 sigmoid is 2.47 ulp off on this grid; tanh here 1.24 (polynomial to 0.625, exp beyond)
    magnitudes = torch.logspace(-30, 1.5, 2 ** 16, dtype=torch.float64)
    points = torch.cat([torch.linspace(-20, 20, 2 ** 18, dtype=torch.float64), magnitudes, -magnitudes,
                        torch.tensor([0.0, 0.625, -0.625, 9.0, -9.0, 1e30, -1e30], dtype=torch.float64)])
    points = torch.cat([points, points.new_zeros(-len(points) % 64)]).float()
    out = _identity_network(activation).outputs(points.reshape(1, -1, 1, 64)).clone()
    assert _ulps(out.flatten(), getattr(torch, activation)(points.double())) <= bound


@pytest.mark.parametrize("activation,params", ACTIVATIONS)
def test_a_nan_input_stays_nan(activation, params):
    x = torch.full((1, 2, 1, 64), 0.5)
    x[0, 1, 0, 3] = float("nan")
    out = _identity_network(activation, params).outputs(x)
    assert not out[0, 0].isnan().any()
    assert out[0, 1].isnan().all()  # the NaN spreads over its row through the top product


def test_relu_and_leaky_relu_are_exact():
    x = torch.randn(1, 4, 1, 64) * 3
    torch.testing.assert_close(_identity_network("relu").outputs(x)[0], torch.relu(x[0, :, 0]), rtol=0, atol=0)
    leaky = _identity_network("leaky_relu", (("negative_slope", 0.2),)).outputs(x)[0]
    torch.testing.assert_close(leaky, torch.nn.functional.leaky_relu(x[0, :, 0], 0.2), rtol=0, atol=0)


@pytest.mark.parametrize("activation,params", ACTIVATIONS)
@pytest.mark.parametrize("bias", [True, False])
def test_forward_equals_the_float64_model_for_shared_and_per_run_inputs(activation, params, bias):
    single, double = _models(_spec(activation, params, bias=bias))
    backprop = MlpBackprop.for_model(single)
    shared = torch.randn(11, 1, INPUTS).unsqueeze(0).expand(RUNS, 11, 1, INPUTS)
    for x in (shared, torch.randn(RUNS, 11, 1, INPUTS), shared):
        with torch.no_grad():
            expected = double.forward(x.double(), train=False)
        torch.testing.assert_close(backprop.outputs(x).double(), expected, rtol=1e-5, atol=1e-6)


def _arguments(**changes):
    """Valid train_step arguments for 2 runs of a 3 -> 4 -> 2 tanh MLP on 5 of 6 examples, with changes."""
    arguments = {
        "x": np.zeros((6, 3), np.float32), "labels": np.zeros(6, np.int64),
        "rows": np.arange(10, dtype=np.int64).reshape(2, 1, 5) % 6,
        "weights": [np.zeros((2, 4, 3), np.float32), np.zeros((2, 2, 4), np.float32)],
        "biases": None, "optimizer": "sgd", "hyper": np.tile(np.array([0.1, 1, 1, 0, 0, 0, 0, 0], np.float32), (2, 1)),
        "step": 0, "states": [], "losses": np.zeros((2, 1), np.float32),
        "scratch": np.zeros((1, _trainer.scratch_floats(5, [3, 4, 2], True)), np.float32),
        "activation": "tanh", "slope": 0.0, "task": "classification", "threads": 1,
    }
    arguments.update(changes)
    return list(arguments.values())


def test_valid_arguments_run():
    arguments = _arguments()
    _trainer.train_step(*arguments)
    assert arguments[9].ravel().tolist() == pytest.approx([np.log(2.0)] * 2)


@pytest.mark.parametrize("changes,error,message", [
    ({"x": np.zeros((6, 3), np.float64)}, TypeError,
     "x must be a 2-dimensional float32 array, got format 'd' with 2 dimension(s)"),
    ({"x": np.zeros((6, 4), np.float32)}, ValueError, "x has size 4 in dimension 1; expected 3"),
    ({"rows": np.full((2, 1, 5), 6, np.int64)}, ValueError,
     "rows holds 6 at position 0; expected 0 to 5 (x has 6 rows)"),
    ({"rows": np.zeros((2, 1, 0), np.int64)}, ValueError,
     "rows has no columns; expected a batch of at least one example"),
    ({"step": -1}, ValueError, "step=-1 is invalid; expected the optimiser's step count (>= 0)"),
    ({"losses": np.zeros((2, 2), np.float32)}, ValueError, "losses has size 2 in dimension 1; expected 1"),
    ({"weights": [np.zeros((2, 4, 3), np.float32), np.zeros((2, 2, 5), np.float32)]}, ValueError,
     "weights[1] has shape (2, 2, 5); expected (2, outputs, the previous layer's outputs)"),
    ({"biases": [np.zeros((2, 4), np.float32)]}, TypeError, "biases must be None or a list of 2 arrays (one per weight)"),
    ({"labels": np.array([0, 0, 0, 2, 0, 0], np.int64)}, ValueError, "labels holds 2 at row 3; expected 0 to 1"),
    ({"task": "ranking"}, ValueError, "task='ranking' is not supported; expected 'classification' or 'regression'"),
    ({"activation": "gelu"}, ValueError,
     "activation='gelu' is not supported; expected 'linear', 'tanh', 'sigmoid', 'relu' or 'leaky_relu'"),
    ({"activation": "leaky_relu", "slope": -0.5}, ValueError,
     "slope=-0.5 is invalid for leaky_relu; expected a positive slope"),
    ({"threads": 0}, ValueError, "threads=0 is invalid; expected 1 to 64"),
    ({"weights": [np.zeros((2, 3, 3), np.float32)] * 1025}, TypeError, "weights must be a list of 1 to 1024 arrays"),
    ({"hyper": np.zeros((3, 8), np.float32)}, ValueError, "hyper has size 3 in dimension 0; expected 2"),
    ({"optimizer": "rmsprop"}, ValueError, "optimizer='rmsprop' is not supported; expected 'sgd', 'momentum' or 'adam'"),
    ({"optimizer": "momentum"}, TypeError, "states must be a list of 1 list(s) for this optimizer"),
    ({"optimizer": "adam", "states": [[], []]}, TypeError, "states[0] must be a list of 2 arrays (one per weight)"),
    ({"optimizer": "momentum", "states": [[np.zeros((2, 4, 3), np.float32), np.zeros((2, 2, 3), np.float32)]]},
     ValueError, "states[0][1] has size 3 in dimension 2; expected 4"),
    ({"losses": np.zeros((2, 1), np.float32)[::-1]}, TypeError,
     "losses must be a writable C-contiguous float32 array, got numpy.ndarray"),
    ({"scratch": np.zeros((1, 8), np.float32)}, ValueError,
     f"scratch has shape (1, 8); expected at least (1, {_trainer.scratch_floats(5, [3, 4, 2], True)})"),
])
def test_bad_arguments_raise_errors_that_name_them(changes, error, message):
    with pytest.raises(error) as raised:
        _trainer.train_step(*_arguments(**changes))
    assert str(raised.value) == message


_PORTABLE_SCRIPT = """
import json, torch
from initlab import _trainer
from initlab.lab.backprop import MlpBackprop
from initlab.lab.config import RunConfig
from initlab.lab.models import ModelSpec, StackedModel
from initlab.lab.trainer import StackedOptimizer
spec = ModelSpec(kind="mlp", depth=2, width=33, activation="{activation}", activation_params=(),
                 input_shape=(1, 7), num_outputs=3, bias=True, norm="none")
model = StackedModel.empty(spec, 3, torch.float32)
generator = torch.Generator().manual_seed(0)
with torch.no_grad():
    for tensor in model.params.values():
        tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.4)
x = torch.randn(30, 1, 7, generator=generator)
y = torch.randint(0, 3, (30,), generator=generator)
backprop = MlpBackprop.for_model(model)
config = RunConfig.model_validate({{"dataset": {{"name": "mnist1d"}}, "model": {{"depth": 2, "width": 33}},
                                   "training": {{"optimizer": "{optimizer}", "lr": 0.01, "l2": 0.01, "eps": 1e-4}}}})
optimizer = StackedOptimizer("{optimizer}", model.params, [config] * 3, torch.float32)
losses = backprop.compiled_steps(x, y, (torch.arange(60) % 30).reshape(3, 2, 10), "classification", optimizer)
print(json.dumps({{"implementation": _trainer.implementation, "losses": losses.tolist(),
                  "params": {{name: p.detach().flatten().tolist() for name, p in model.params.items()}}}}))
"""


@pytest.mark.parametrize("activation,optimizer", [("tanh", "adam"), ("sigmoid", "momentum"), ("leaky_relu", "sgd")])
def test_portable_loops_agree_with_the_dispatched_ones(activation, optimizer):
    # Adam's eps is 1e-4 here: with 1e-8, a gradient element of rounding size (|g| ~ eps) moves
    # by lr g / (|g| + eps), so the two builds' rounding (FMA or not) would decide the step.
    results = []
    for portable in (False, True):
        env = {key: value for key, value in os.environ.items() if key != "INITLAB_KERNELS_PORTABLE"}
        if portable:
            env["INITLAB_KERNELS_PORTABLE"] = "1"
        script = _PORTABLE_SCRIPT.format(activation=activation, optimizer=optimizer)
        completed = subprocess.run([sys.executable, "-c", script],
                                   env=env, capture_output=True, text=True, check=True)
        results.append(json.loads(completed.stdout))
    assert results[1]["implementation"] == "portable"
    np.testing.assert_allclose(results[1]["losses"], results[0]["losses"], rtol=1e-6)
    for name, values in results[0]["params"].items():
        np.testing.assert_allclose(results[1]["params"][name], values, rtol=1e-5, atol=1e-6)
