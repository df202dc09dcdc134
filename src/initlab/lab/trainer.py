"""The batched trainer: runs that share an architecture are trained as one stacked model.

:func:`train_group` takes runs whose configs differ only in per-run fields
(seed, initialisation, learning rate, momentum, Adam's betas/eps, L2,
weight decay, targets — :data:`initlab.lab.config.PER_RUN_FIELDS`) and trains
them together: every parameter carries a leading run axis, layers use
batched matmuls (``baddbmm``) or grouped convolutions, each run draws its
own mini-batches from its own seeded sampler, and the optimisers update all
runs with per-run hyper-parameters in a handful of tensor operations. Runs
never interact, so each one's numbers equal those of training it alone up to
floating-point rounding (the tests check this against a plain PyTorch loop).
Plain MLPs whose activation's derivative follows from its output (tanh,
sigmoid, relu, leaky_relu, linear) skip autograd: :mod:`initlab.lab.backprop`
computes their backward pass by hand and, for plain SGD with one learning
rate, folds the update into the weight-gradient product. Every parameter is
its own tensor (one per layer), so the cost of a step is linear in depth.

Regularisation. ``l2`` adds the penalty lambda/2 * sum ||W||^2 to the loss:
its gradient lambda * W is added to each weight's gradient (biases only with
``regularize_biases``; normalisation parameters never), so with plain SGD it
equals torch's ``SGD(weight_decay=lambda)``. ``weight_decay`` is decoupled
(Loshchilov & Hutter 2019): W <- W * (1 - lr * weight_decay) before the
optimiser step, as in torch's ``AdamW``. The reported losses are data losses
(without the penalty).

Metrics at each logged step (steps 0, ``log_every``, 2 ``log_every``, ...,
and the last): full train (or ``eval_train_size`` first examples) and test
loss and accuracy (classification) or MSE (regression), in evaluation mode;
the total weight norm sqrt(sum ||W||^2); and, on a fixed probe batch (the
first ``probe_size`` training examples, training-mode normalisation without
updating running statistics), per layer: weight norm and weight-gradient
norm ``||dL/dW_l||`` (every weight layer, output layer last), and for hidden
layers the std of the pre-activations ``z_l`` and of the layer outputs
(``phi(z_l)``; the residual stream for ``resmlp``), the back-propagated
gradient norm ``||dL/dz_l||`` (Frobenius, L = mean loss over the probe
batch), the saturated fraction (bounded activations only, see
:data:`~initlab.lab.models.SATURATION_MARGIN`; None otherwise) and the
number of distinct units (a unit counts as new when its incoming weights and
bias differ from those of every earlier unit of its layer by more than
1e-6 relative). ``steps_to_target_accuracy`` is the first logged step whose
test accuracy reaches ``target_accuracy``; ``steps_to_target_loss`` the first
whose train loss falls to ``target_loss``.

A run whose training loss becomes NaN or infinite stops there and is
recorded as ``diverged`` (with ``diverged_at``); the other runs go on.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from initlab.errors import InitlabError
from initlab.lab.backprop import MlpBackprop
from initlab.lab.config import LAYER_METRICS, RunConfig, group_key, nn_entry
from initlab.lab.datasets import Dataset, load_dataset
from initlab.lab.models import (
    SATURATION_MARGIN,
    ModelSpec,
    StackedModel,
    TorchModel,
    activation_bounds,
    is_weight,
    module_to_stack,
    stack_to_module,
)

_DTYPES = {"float32": torch.float32, "float64": torch.float64}
_EVAL_CHUNK = 1000
_DISTINCT_TOLERANCE = 1e-6


@dataclass
class RunResult:
    """What one run produced (plain data; crosses process boundaries).

    Attributes:
        key: the run key.
        status: ``done``, ``diverged`` or ``failed``.
        history: ``{"step": [...], metric: [value per logged step]}``; a
            per-layer metric's value is a list over layers.
        summary: final value of each kept metric, ``steps_to_target_*``,
            ``train_test_gap``, ``diverged_at``, ``steps_done``.
        error: the error text of a failed run.
        duration: seconds spent on this run's group, shared equally.
    """

    key: str
    status: str
    history: dict[str, list] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    duration: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "status": self.status,
            "history": self.history,
            "summary": self.summary,
            "error": self.error,
            "duration": self.duration,
        }


# ------------------------------------------------------------------- data
@functools.lru_cache(maxsize=4)
def _cached_dataset(config_json: str) -> Dataset:
    options = json.loads(config_json)
    return load_dataset(options.pop("name"), **options)


def dataset_for(config: RunConfig) -> Dataset:
    """The run's dataset (cached per process by its config)."""
    return _cached_dataset(json.dumps(config.dataset.model_dump(mode="json"), sort_keys=True))


def model_spec(config: RunConfig, dataset: Dataset) -> ModelSpec:
    """The :class:`ModelSpec` of a run on ``dataset``."""
    model = config.model
    return ModelSpec(
        kind=model.kind,
        depth=model.depth,
        width=model.width,
        activation=model.activation,
        activation_params=tuple(sorted(model.activation_params.items())),
        bias=model.bias,
        norm=model.norm,
        input_shape=(dataset.input_shape[0], dataset.input_dim // dataset.input_shape[0]),
        num_outputs=dataset.num_outputs,
        kernel_size=model.kernel_size,
        residual_scale=model.residual_scale,
    )


class BatchSampler:
    """Mini-batch indices of one run: a fresh seeded permutation each epoch, last partial batch dropped.

    The generator is seeded from ``(seed, "batches")``, so batch order depends
    only on the run's seed.
    """

    def __init__(self, seed: int, size: int, batch_size: int) -> None:
        digest = hashlib.blake2b(f"initlab-batches|{seed}".encode(), digest_size=8).digest()
        self.generator = torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)
        self.size, self.batch_size = size, batch_size
        self.per_epoch = size // batch_size
        self.position, self.order = self.per_epoch, torch.empty(0, dtype=torch.long)

    def next(self) -> torch.Tensor:
        """Indices of the next batch."""
        if self.position == self.per_epoch:
            self.order = torch.randperm(self.size, generator=self.generator)
            self.position = 0
        start = self.position * self.batch_size
        self.position += 1
        return self.order[start : start + self.batch_size]


def as_tensors(dataset: Dataset, spec: ModelSpec, dtype: torch.dtype):
    """(x_train, y_train, x_test, y_test) as torch tensors, inputs shaped (n, channels, length)."""

    def inputs(x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(x, dtype=dtype).reshape(len(x), *spec.input_shape)

    def targets(y: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(y) if dataset.task == "classification" else torch.as_tensor(y, dtype=dtype)

    return inputs(dataset.x_train), targets(dataset.y_train), inputs(dataset.x_test), targets(dataset.y_test)


# ---------------------------------------------------------- initialisation
def initialise_run(model: StackedModel, run: int, config: RunConfig, probe: torch.Tensor) -> None:
    """Fill run ``run`` of ``model`` as ``config.model`` says, from the run's seed.

    Each parameter ``p`` is filled by its scheme with stream ``(seed, p)``;
    ``weight_init = "auto"`` lets ``initlab.init_`` choose per layer (then any
    explicit ``output_init`` and ``bias_init`` apply on top); ``lsuv`` then
    runs ``initlab.lsuv_`` on the probe batch, rescaling the weights chosen
    above (no orthogonal pre-init: choose ``weight_init = "orthogonal"`` for
    the paper's recipe).
    """
    from initlab.schemes import from_dict

    settings, seed = config.model, config.training.seed
    last = model.spec.num_layers - 1
    auto = settings.weight_init == "auto"
    if auto:
        module = stack_to_module(model, run, TorchModel(model.spec).to(probe.dtype))
        nn_entry("init_")(module, seed=seed, example_input=probe)
        module_to_stack(module, model, run)
    for name, tensor in model.params.items():
        scheme = _scheme_for(name, settings, last, auto)
        if scheme is not None:
            from_dict(scheme).init_(tensor[run], seed=seed, name=name)
    if settings.lsuv:
        module = stack_to_module(model, run, TorchModel(model.spec).to(probe.dtype))
        nn_entry("lsuv_")(module, probe, seed=seed, pre_init=False)
        module_to_stack(module, model, run)


def _scheme_for(name: str, settings, last: int, auto: bool) -> dict | None:
    if name.startswith("norms."):
        return None if auto else {"scheme": "ones" if name.endswith(".weight") else "zeros"}
    if name.endswith(".bias"):
        return settings.bias_init
    if name == f"layers.{last}.weight" and settings.output_init is not None:
        return settings.output_init
    return None if auto else settings.weight_init


# --------------------------------------------------------------- optimiser
class StackedOptimizer:
    """SGD, SGD with momentum (torch's convention) or Adam over stacked runs.

    Hyper-parameters are per run (tensors of shape ``(R,)``); ``l2`` and
    ``weight_decay`` apply to weights (and biases with ``regularize_biases``).
    """

    def __init__(
        self, kind: str, params: dict[str, torch.Tensor], configs: Sequence[RunConfig], dtype: torch.dtype
    ) -> None:
        self.kind, self.params, self.steps = kind, params, 0

        def per_run(getter) -> torch.Tensor:
            return torch.tensor([float(getter(config.training)) for config in configs], dtype=dtype)

        self.lr = per_run(lambda t: t.lr)
        self.momentum = per_run(lambda t: t.momentum)
        self.beta1, self.beta2 = per_run(lambda t: t.betas[0]), per_run(lambda t: t.betas[1])
        self.eps = per_run(lambda t: t.eps)
        self.l2 = per_run(lambda t: t.l2)
        self.decay = per_run(lambda t: t.weight_decay)
        biases_too = configs[0].training.regularize_biases
        self.regularized = {name for name in params if is_weight(name) or (biases_too and name.startswith("layers."))}
        self.state = (
            {name: [torch.zeros_like(p) for _ in range(2 if kind == "adam" else 1)] for name, p in params.items()}
            if kind != "sgd"
            else {}
        )
        self._with_l2, self._with_decay = bool(self.l2.any()), bool(self.decay.any())
        self._penalised = self._with_l2 or self._with_decay

    def single_lr(self) -> float | None:
        """The learning rate of plain SGD whose runs all share it (the fused step's case), else None."""
        if self.kind != "sgd" or not bool((self.lr == self.lr[0]).all()):
            return None
        return float(self.lr[0])

    @torch.no_grad()
    def shrink_(self, name: str, param: torch.Tensor) -> None:
        """``p <- p (1 - lr (l2 + weight_decay))`` for a regularised parameter (fused SGD).

        Equals :meth:`step`'s decay and L2 terms for plain SGD:
        ``p (1 - lr wd) - lr (g + l2 p) = p (1 - lr (l2 + wd)) - lr g``.
        """
        if self._penalised and name in self.regularized:
            factor = 1.0 - self.lr * (self.l2 + self.decay)
            param.mul_(factor.view((-1,) + (1,) * (param.dim() - 1)))

    def stop(self, runs: list[int]) -> None:
        """Freeze runs (diverged): zero their learning rate, parameters and state."""
        self.lr[runs] = 0.0
        with torch.no_grad():
            for name, param in self.params.items():
                param[runs] = 0.0
                for buffer in self.state.get(name, []):
                    buffer[runs] = 0.0

    @torch.no_grad()
    def step(self, grads: dict[str, torch.Tensor]) -> None:
        """One update of every parameter from its gradient ``grads[name]`` (the runs' own rates)."""
        self.steps += 1
        per_run = {"lr": self.lr}
        if self._with_l2:
            per_run["l2"] = self.l2
        if self._with_decay:
            per_run["decay"] = 1.0 - self.lr * self.decay
        if self.kind == "momentum":
            per_run["momentum"] = self.momentum
        elif self.kind == "adam":
            per_run.update(
                beta1=self.beta1,
                beta2=self.beta2,
                eps=self.eps,
                rest1=1.0 - self.beta1,
                rest2=1.0 - self.beta2,
                step_size=self.lr / (1.0 - self.beta1**self.steps),
                correction2_sqrt=(1.0 - self.beta2**self.steps).sqrt(),
            )
        shaped: dict[int, dict[str, torch.Tensor]] = {}
        for name, param in self.params.items():
            if param.dim() not in shaped:  # (R,) values as (R, 1, ...) to broadcast over a parameter
                shape = (-1,) + (1,) * (param.dim() - 1)
                shaped[param.dim()] = {key: value.view(shape) for key, value in per_run.items()}
            self._update(name, param, grads[name], shaped[param.dim()])

    def _update(self, name: str, param: torch.Tensor, grad: torch.Tensor, hyper: dict[str, torch.Tensor]) -> None:
        """One parameter's update: L2 into the gradient, decoupled decay, then the optimiser's rule."""
        if name in self.regularized:
            if self._with_l2:
                grad = grad.addcmul(param, hyper["l2"])
            if self._with_decay:
                param.mul_(hyper["decay"])
        if self.kind == "sgd":
            param.addcmul_(grad, hyper["lr"], value=-1.0)
        elif self.kind == "momentum":
            (velocity,) = self.state[name]
            velocity.mul_(hyper["momentum"]).add_(grad)
            param.addcmul_(velocity, hyper["lr"], value=-1.0)
        else:
            self._adam(name, param, grad, hyper)

    def _adam(self, name: str, param: torch.Tensor, grad: torch.Tensor, hyper: dict[str, torch.Tensor]) -> None:
        """torch.optim.Adam's update (bias-corrected moments, eps added to sqrt(v_hat))."""
        first, second = self.state[name]
        first.mul_(hyper["beta1"]).addcmul_(grad, hyper["rest1"])
        second.mul_(hyper["beta2"]).addcmul_(grad.square(), hyper["rest2"])
        denominator = second.sqrt().div_(hyper["correction2_sqrt"]).add_(hyper["eps"])
        param.addcdiv_(first * hyper["step_size"], denominator, value=-1.0)


# ---------------------------------------------------------------- training
def loss_per_run(outputs: torch.Tensor, targets: torch.Tensor, task: str) -> torch.Tensor:
    """Mean loss of each run: cross-entropy (classification) or MSE (regression); shape (R,)."""
    runs, batch = outputs.shape[:2]
    if task == "classification":
        losses = F.cross_entropy(outputs.reshape(runs * batch, -1), targets.reshape(-1), reduction="none")
        return losses.view(runs, batch).mean(dim=1)
    return (outputs - targets).pow(2).reshape(runs, -1).mean(dim=1)


def train_group(runs: Sequence[tuple[str, RunConfig]]) -> list[RunResult]:
    """Train runs that share a group key together; one :class:`RunResult` per run, in order."""
    started = time.perf_counter()
    keys = [key for key, _ in runs]
    configs = [config for _, config in runs]
    _check_same_group(runs)
    first = configs[0]
    dataset = dataset_for(first)
    training = first.training
    if training.batch_size > len(dataset.x_train):
        raise InitlabError(
            f"training.batch_size={training.batch_size} is invalid; expected at most the "
            f"{len(dataset.x_train)} training examples of {dataset.name}."
        )
    spec = model_spec(first, dataset)
    dtype = _DTYPES[training.dtype]
    x_train, y_train, x_test, y_test = as_tensors(dataset, spec, dtype)
    probe_x, probe_y = x_train[: training.probe_size], y_train[: training.probe_size]
    model = StackedModel.empty(spec, len(runs), dtype)
    for run, config in enumerate(configs):
        initialise_run(model, run, config, probe_x)
    for param in model.params.values():
        param.requires_grad_(True)
    backprop = MlpBackprop.for_model(model)
    state = _Training(model, configs, dataset.task, keys, None if backprop is None else backprop.outputs)
    optimizer = StackedOptimizer(training.optimizer, model.params, configs, dtype)
    samplers = [BatchSampler(config.training.seed, len(x_train), training.batch_size) for config in configs]
    evaluation = _Evaluation(
        x_train[: training.eval_train_size], y_train[: training.eval_train_size], x_test, y_test, probe_x, probe_y
    )
    step = 0
    while True:
        if step % training.log_every == 0 or step == training.steps:
            state.log(step, evaluation)
            if not state.active:
                break
        if step == training.steps:
            break
        indices = torch.stack([sampler.next() for sampler in samplers])
        if not _step(state, step, model, backprop, optimizer, x_train[indices], y_train[indices], dataset.task):
            break
        step += 1
    return state.results(time.perf_counter() - started)


def _step(
    state: _Training,
    step: int,
    model: StackedModel,
    backprop: MlpBackprop | None,
    optimizer: StackedOptimizer,
    x_batch: torch.Tensor,
    y_batch: torch.Tensor,
    task: str,
) -> bool:
    """One optimiser step of every active run on its batch (autograd, or :class:`MlpBackprop`'s
    backward); a run whose loss is not finite is stopped first. False when no run is left."""
    if backprop is not None:
        losses = backprop.loss(x_batch, y_batch, task)
    else:
        losses = loss_per_run(model.forward(x_batch, train=True), y_batch, task)
    finite = torch.isfinite(losses)
    all_finite = bool(finite.all())
    lr = optimizer.single_lr() if backprop is not None and all_finite and not state.stopped else None
    if lr is not None and backprop is not None:
        backprop.sgd_step_(lr, optimizer.shrink_)
        return True
    if backprop is not None:
        grads = backprop.gradients(finite)
    else:
        if not all_finite:
            losses = torch.where(finite, losses, torch.zeros_like(losses))
        grads = dict(zip(model.params, torch.autograd.grad(losses.sum(), list(model.params.values()))))
    if not all_finite:
        state.diverge(step, finite, optimizer)
        if not state.active:
            return False
    if state.stopped:
        for grad in grads.values():
            grad[state.stopped] = 0.0
    optimizer.step(grads)
    return True


def _check_same_group(runs: Sequence[tuple[str, RunConfig]]) -> None:
    """Raise InitlabError naming the first field where a run differs from the first run's group."""
    if not runs:
        raise InitlabError("train_group: runs=[] is invalid; expected at least one run.")
    first_key, first = runs[0]
    reference = json.loads(group_key(first))
    for key, config in runs[1:]:
        shape = json.loads(group_key(config))
        for section, fields in reference.items():
            for name, value in fields.items():
                if shape[section][name] != value:
                    raise InitlabError(
                        f"train_group: run {key!r} has {section}.{name}={shape[section][name]!r} but run "
                        f"{first_key!r} has {value!r}; expected runs that share everything except "
                        f"per-run fields (group them with initlab.lab.plan_groups)."
                    )


@dataclass
class _Evaluation:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    probe_x: torch.Tensor
    probe_y: torch.Tensor


class _Training:
    """Bookkeeping of a group: histories, divergence, targets."""

    def __init__(
        self,
        model: StackedModel,
        configs: Sequence[RunConfig],
        task: str,
        keys,
        outputs: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.model, self.configs, self.task, self.keys = model, configs, task, list(keys)
        self.outputs = outputs or (lambda x: model.forward(x, train=False))
        self.keep: set[str] = set(configs[0].metrics.keep)
        self.histories: list[dict[str, list]] = [{"step": []} for _ in configs]
        self.diverged_at: list[int | None] = [None] * len(configs)
        self.stopped: list[int] = []
        self.bounds = activation_bounds(model.spec.activation, dict(model.spec.activation_params))

    @property
    def active(self) -> list[int]:
        return [run for run in range(len(self.configs)) if self.diverged_at[run] is None]

    def diverge(self, step: int, finite: torch.Tensor, optimizer: StackedOptimizer) -> None:
        newly = [run for run in self.active if not bool(finite[run])]
        for run in newly:
            self.diverged_at[run] = step
        self.stopped.extend(newly)
        optimizer.stop(self.stopped)

    def log(self, step: int, evaluation: _Evaluation) -> None:
        metrics = _metrics(self.model, self.outputs, evaluation, self.task, self.keep, self.bounds)
        for run in self.active:
            loss = metrics["train_loss"][run]
            if not math.isfinite(loss):
                self.diverged_at[run] = step
                self.stopped.append(run)
                continue
            history = self.histories[run]
            history["step"].append(step)
            for name, values in metrics.items():
                if name in self.keep or name == "train_loss":
                    history.setdefault(name, []).append(values[run])

    def results(self, elapsed: float) -> list[RunResult]:
        share = elapsed / len(self.configs)
        return [
            RunResult(
                key,
                "diverged" if self.diverged_at[run] is not None else "done",
                self.histories[run],
                self._summary(run),
                duration=share,
            )
            for run, key in enumerate(self.keys)
        ]

    def _summary(self, run: int) -> dict[str, Any]:
        history, training = self.histories[run], self.configs[run].training
        summary: dict[str, Any] = {name: values[-1] for name, values in history.items() if values}
        summary["steps_done"] = summary.pop("step", 0)
        summary["diverged_at"] = self.diverged_at[run]
        if "train_accuracy" in history and "test_accuracy" in history:
            summary["train_test_gap"] = summary["train_accuracy"] - summary["test_accuracy"]
        summary["steps_to_target_accuracy"] = _first_step(
            history, "test_accuracy", training.target_accuracy, lambda value, target: value >= target
        )
        summary["steps_to_target_loss"] = _first_step(
            history, "train_loss", training.target_loss, lambda value, target: value <= target
        )
        return summary


def _first_step(history, metric, target, reached) -> int | None:
    if target is None or metric not in history:
        return None
    for step, value in zip(history["step"], history[metric]):
        if reached(value, target):
            return step
    return None


# ----------------------------------------------------------------- metrics
def _metrics(
    model: StackedModel,
    outputs: Callable[[torch.Tensor], torch.Tensor],
    data: _Evaluation,
    task: str,
    keep: set[str],
    bounds,
) -> dict[str, list]:
    """Every metric for every run at the current parameters: name -> list over runs.

    ``outputs`` maps inputs ``(R, N, ...)`` to the model's evaluation-mode outputs.
    """
    metrics: dict[str, list] = {}
    with torch.no_grad():
        for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
            loss, accuracy = _evaluate(outputs, model.runs, x, y, task)
            metrics[f"{split}_loss"] = loss
            metrics[f"{split}_{'accuracy' if task == 'classification' else 'mse'}"] = (
                accuracy if task == "classification" else loss
            )
        weights = {name: p for name, p in model.params.items() if is_weight(name)}
        layer_norms = torch.stack([_run_norms(w) for w in weights.values()], dim=1)
        metrics["layer_weight_norm"] = layer_norms.tolist()
        metrics["weight_norm"] = layer_norms.pow(2).sum(dim=1).sqrt().tolist()
        if "distinct_units" in keep:
            metrics["distinct_units"] = _distinct_units(model)
    if keep & set(LAYER_METRICS) - {"layer_weight_norm", "distinct_units"}:
        metrics.update(_probe(model, data, task, bounds))
    return metrics


def _run_norms(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().reshape(tensor.shape[0], -1).norm(dim=1)


def _evaluate(forward: Callable[[torch.Tensor], torch.Tensor], runs: int, x: torch.Tensor, y: torch.Tensor, task: str):
    loss_sum = torch.zeros(runs, dtype=torch.float64)
    correct = torch.zeros(runs, dtype=torch.float64)
    for start in range(0, len(x), _EVAL_CHUNK):
        x_chunk, y_chunk = x[start : start + _EVAL_CHUNK], y[start : start + _EVAL_CHUNK]
        outputs = forward(x_chunk.unsqueeze(0).expand(runs, *x_chunk.shape))
        targets = y_chunk.unsqueeze(0).expand(runs, *y_chunk.shape)
        loss_sum += loss_per_run(outputs, targets, task).double() * len(x_chunk)
        if task == "classification":
            correct += (outputs.argmax(dim=2) == targets).double().sum(dim=1)
    return (loss_sum / len(x)).tolist(), (correct / len(x)).tolist()


def _probe(model: StackedModel, data: _Evaluation, task: str, bounds) -> dict[str, list]:
    """Per-layer statistics on the probe batch (training-mode norms, running stats untouched)."""
    runs, spec = model.runs, model.spec
    from initlab.lab.models import Trace

    trace = Trace()
    x = data.probe_x.unsqueeze(0).expand(runs, *data.probe_x.shape)
    y = data.probe_y.unsqueeze(0).expand(runs, *data.probe_y.shape)
    outputs = model.forward(x, train=True, update_stats=False, trace=trace)
    losses = loss_per_run(outputs, y, task)
    hidden = list(spec.hidden_layers)
    weights = [model.params[f"layers.{layer}.weight"] for layer in range(spec.num_layers)]
    preacts = [trace.preacts[layer] for layer in hidden]
    grads = torch.autograd.grad(losses.sum(), weights + preacts)
    per_layer = {
        "grad_norm": [_run_norms(grad) for grad in grads[: len(weights)]],
        "backprop_norm": [_run_norms(grad) for grad in grads[len(weights) :]],
        "preact_std": [_run_std(trace.preacts[layer]) for layer in hidden],
        "act_std": [_run_std(trace.outputs[layer]) for layer in hidden],
    }
    result: dict[str, list[list[float]] | list[list[None]]] = {
        name: _by_run(values, runs) for name, values in per_layer.items()
    }
    if bounds is None:
        result["saturated_fraction"] = [[None] * len(hidden) for _ in range(runs)]
    else:
        low, high = bounds
        margin = SATURATION_MARGIN * (high - low) / 2
        fractions = [
            ((out > high - margin) | (out < low + margin)).reshape(runs, -1).double().mean(dim=1)
            for out in (trace.outputs[layer].detach() for layer in hidden)
        ]
        result["saturated_fraction"] = _by_run(fractions, runs)
    return result


def _run_std(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().reshape(tensor.shape[0], -1).double().std(dim=1)


def _by_run(per_layer: list[torch.Tensor], runs: int) -> list[list[float]]:
    """[layer][run] tensors -> [run][layer] lists; empty layer lists for layerless metrics."""
    if not per_layer:
        return [[] for _ in range(runs)]
    return torch.stack([values.double() for values in per_layer], dim=1).tolist()


def _distinct_units(model: StackedModel) -> list[list[int]]:
    """Distinct units per hidden layer for each run (incoming weights and bias compared)."""
    spec, counts = model.spec, []
    for layer in spec.hidden_layers:
        rows = model.params[f"layers.{layer}.weight"].detach().double()
        rows = rows.reshape(rows.shape[0], rows.shape[1], -1)
        bias = model.params.get(f"layers.{layer}.bias")
        if bias is not None:
            rows = torch.cat([rows, bias.detach().double().unsqueeze(2)], dim=2)
        scale = rows.norm(dim=2).amax(dim=1).clamp_min(1e-300)
        distances = torch.cdist(rows, rows)
        same = distances <= (_DISTINCT_TOLERANCE * scale)[:, None, None]
        repeats = torch.tril(same, diagonal=-1).any(dim=2)
        counts.append((~repeats).sum(dim=1))
    if not counts:
        return [[] for _ in range(model.runs)]
    return torch.stack(counts, dim=1).tolist()
