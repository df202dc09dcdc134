"""LSUV: layer-sequential unit-variance initialization, fitted in flight.

Mishkin & Matas (2016), "All you need is a good init": pre-initialise every
Linear (registered linear layers such as Hugging Face's ``Conv1D`` too) /
Conv / ConvTranspose / MultiheadAttention layer orthogonally
(Saxe et al. 2014), then, layer by layer in execution order, rescale the
weight so that the variance of the layer's output on a batch is 1.

The reference procedure runs the model once per layer and iteration (the
PyPI ``lsuv`` package: two forward passes per layer, 40 for a 20-layer MLP).
Here every layer is fitted *inside its forward hook*, during one pass: when
a layer's output y = z + b (z = W x, b the bias) is seen, z is linear in
W's scale s, so the s with Var(s z + b) = 1 solves a quadratic exactly

    s^2 Var(z) + 2 s Cov(z, b) + Var(b) = 1     (s = 1 / std(z) for b = 0),

the weight is multiplied by s and the hook returns s z + b, so every later
layer already sees the fitted network. With ``center=True`` the bias is set
to -s * mean_c(z) per output channel, which makes every channel's mean 0 and
the variance exactly 1 as well. Variances and means are over all elements
of the output (unbiased variance), computed in float32 whatever the dtype.

Passes and their bound. Pass 1 fits every layer; pass 2 verifies (measures
every layer, fitting in flight only a layer outside ``1 +- tol``); the run
stops at the first pass in which no layer had to be fitted, or after
``1 + max_iter`` passes. On a feed-forward net where each layer runs once,
the fit of pass 1 is exact and cannot be undone by later layers, so the
total is exactly 2 passes (<= 3) at any depth; more are needed only where a
layer's input changes between passes (a module called more than once, a
layer inside a recurrence).

A module called more than once in a forward pass is fitted on its first
call (its weight is shared, so later calls use the fitted weight); the
record counts its calls. MultiheadAttention is one unit: its output is
linear in ``out_proj.weight``, which is what gets rescaled (its internal
``out_proj`` Linear is never called as a module).

The model runs in train mode (BatchNorm normalises with batch statistics)
with dropout switched off; afterwards every module's mode, every buffer
(BatchNorm running statistics included) and the CPU random state are as
before. The batch is moved to the model's device, and floating batches to
its dtype.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten, tree_map

from initlab.errors import InitlabError, bad_value
from initlab.nn.apply import apply_plan, check_model
from initlab.nn.discover import call_model, describe_input, preserved
from initlab.nn.layers import layer_kind
from initlab.nn.plan import Plan, Rule
from initlab.nn.record import InitRecord, text_table, variance_mean
from initlab.schemes import orthogonal, zeros

_FITTED = ("linear", "conv", "conv_transpose", "attention")
"""Layer kinds fitted (:func:`initlab.nn.layers.layer_kind`): registered linear layers such as
Hugging Face's ``Conv1D`` included."""
_DROPOUT = (nn.modules.dropout._DropoutNd, nn.AlphaDropout, nn.FeatureAlphaDropout)


@dataclass
class LayerFit:
    """One fitted layer of an :class:`LSUVRecord`.

    Attributes:
        name: the layer's qualified name.
        kind: its class name.
        order: position in execution order (first call in pass 1).
        calls: how many times it ran in one forward pass.
        iterations: in how many passes its weight was rescaled.
        scale: the product of the factors applied to its weight.
        variance, mean: of its (first call's) output in the last pass.
        status: ``"fitted"`` (|variance - 1| <= tol), ``"missed"``, ``"unfittable"``
            (zero or non-finite output variance) or ``"not called"``.
    """

    name: str
    kind: str
    order: int = -1
    calls: int = 0
    iterations: int = 0
    scale: float = 1.0
    variance: float | None = None
    mean: float | None = None
    status: str = "not called"


@dataclass
class LSUVRecord:
    """What :func:`lsuv_` did: per-layer fits (in execution order), forward passes used, settings.

    ``bound`` states the pass bound that applied; ``pre_init`` is the orthogonal
    pre-initialization's record (no measured stds: the weights were rescaled after it).
    """

    layers: list[LayerFit]
    passes: int
    tol: float
    center: bool
    seed: int
    seconds: float
    bound: str
    pre_init: InitRecord | None = None

    @property
    def max_variance_error(self) -> float:
        """max |variance - 1| over the fitted layers (inf if a layer has no finite variance)."""
        errors = [
            abs(layer.variance - 1.0) if layer.variance is not None and math.isfinite(layer.variance) else math.inf
            for layer in self.layers
            if layer.status != "not called"
        ]
        return max(errors, default=0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "layers": [asdict(layer) for layer in self.layers],
            "passes": self.passes,
            "tol": self.tol,
            "center": self.center,
            "seed": self.seed,
            "seconds": self.seconds,
            "bound": self.bound,
            "max_variance_error": self.max_variance_error,
            "pre_init": None if self.pre_init is None else self.pre_init.to_dict(),
        }

    def __str__(self) -> str:
        header = ("layer", "kind", "calls", "iterations", "scale", "variance", "mean", "status")
        rows = [
            (
                layer.name,
                layer.kind,
                layer.calls,
                layer.iterations,
                f"{layer.scale:.4g}",
                "-" if layer.variance is None else f"{layer.variance:.4f}",
                "-" if layer.mean is None else f"{layer.mean:.4f}",
                layer.status,
            )
            for layer in self.layers
        ]
        lines = text_table(header, rows)
        lines.append(
            f"\n{self.passes} forward pass(es) ({self.bound}); tol {self.tol}; "
            f"max |var - 1| = {self.max_variance_error:.3g}; {self.seconds:.3f} s"
        )
        return "\n".join(lines)


def _fitted_layers(model: nn.Module) -> dict[nn.Module, str]:
    """Fitted modules by object (first name); MultiheadAttention's own out_proj is excluded."""
    layers: dict[nn.Module, str] = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.MultiheadAttention):
            layers[module] = name
        elif layer_kind(module) in _FITTED and module not in layers:
            layers[module] = name
    for module in list(layers):
        if isinstance(module, nn.MultiheadAttention):
            layers.pop(module.out_proj, None)
    return layers


def _check_batch(batch: Any) -> None:
    leaves, _ = tree_flatten(batch)
    tensors = [leaf for leaf in leaves if isinstance(leaf, torch.Tensor)]
    if not tensors:
        raise bad_value("lsuv_", "batch", type(batch).__name__, "a tensor (or a tuple/dict of tensors)")
    for tensor in tensors:
        if tensor.numel() == 0:
            raise InitlabError(
                f"lsuv_: batch of shape {describe_input(batch)} is empty; expected at least one example "
                f"(LSUV fits variances measured on this batch)."
            )
        if tensor.is_floating_point() or tensor.is_complex():
            bad = (~torch.isfinite(tensor)).sum().item()
            if bad:
                raise InitlabError(
                    f"lsuv_: batch of shape {describe_input(batch)} contains {bad} NaN or infinite "
                    f"value(s); expected finite inputs (LSUV fits variances measured on this batch)."
                )


def _on_model(batch: Any, like: torch.Tensor) -> Any:
    def move(leaf: Any) -> Any:
        if not isinstance(leaf, torch.Tensor):
            return leaf
        if leaf.is_floating_point():
            return leaf.to(device=like.device, dtype=like.dtype)
        return leaf.to(device=like.device)

    return tree_map(move, batch)


class _Fitter:
    """The forward hooks: measure each layer's first call and, when asked, fit it in flight."""

    def __init__(self, layers: dict[nn.Module, str], tol: float, center: bool) -> None:
        self.tol, self.center = tol, center
        self.fits = {module: LayerFit(name, type(module).__name__) for module, name in layers.items()}
        self.fit_all = True
        self.seen: set[nn.Module] = set()
        self.refitted = 0
        self.order = 0
        self.last_scale = 1.0

    def start_pass(self, fit_all: bool) -> None:
        self.fit_all, self.refitted = fit_all, 0
        self.seen.clear()
        for fit in self.fits.values():
            fit.calls = 0

    def hook(self, module: nn.Module, args: tuple, output: Any) -> Any:
        fit = self.fits[module]
        fit.calls += 1
        if module in self.seen:
            return None
        self.seen.add(module)
        if fit.order < 0:
            fit.order, self.order = self.order, self.order + 1
        primary = output[0] if isinstance(output, tuple) else output
        variance, mean = variance_mean(primary)
        fit.variance, fit.mean = variance, mean
        if not (math.isfinite(variance) and variance > 0):
            fit.status = "unfittable"
            return None
        if not self.fit_all and abs(variance - 1.0) <= self.tol:
            fit.status = "fitted"
            return None
        fitted, fit.variance, fit.mean = self._fit(module, primary, variance, mean)
        fit.scale *= self.last_scale
        fit.iterations += 1
        self.refitted += 1
        fit.status = "fitted" if abs(fit.variance - 1.0) <= self.tol else "missed"
        return (fitted, *output[1:]) if isinstance(output, tuple) else fitted

    def _fit(
        self, module: nn.Module, output: torch.Tensor, variance: float, mean: float
    ) -> tuple[torch.Tensor, float, float]:
        """Rescale the layer so that its output has variance 1; the rescaled output and its stats."""
        weight, bias = _weight_and_bias(module)
        if bias is None or (not self.center and not bias.any()):
            scale = 1.0 / math.sqrt(variance)  # y = z: Var(s z) = s^2 Var(z), no second pass over y
            weight.mul_(scale)
            self.last_scale = scale
            return output * scale, variance * scale * scale, mean * scale
        channel = output.dim() - 1 if layer_kind(module) in ("linear", "attention") else 1
        shape = [1] * output.dim()
        shape[channel] = -1
        z = output.float() - bias.float().reshape(shape)
        variance_z = float(z.var()) if z.numel() > 1 else 0.0
        if not (math.isfinite(variance_z) and variance_z > 0):
            fit = self.fits[module]
            raise InitlabError(
                f"lsuv_: layer {fit.name!r} ({fit.kind}) is dead on this batch: its output without the bias "
                f"has variance {variance_z:.3g} (every unit's weighted input is constant), so no weight scale "
                f"can give it variance 1; expected a layer whose input varies over the batch (check the layers "
                f"before it, e.g. a ReLU whose units are all inactive on this batch)."
            )
        if self.center:
            channel_mean = z.mean(dim=[d for d in range(z.dim()) if d != channel], keepdim=True)
            z = z - channel_mean
            scale = 1.0 / math.sqrt(float(z.var()))
            bias.copy_((-scale * channel_mean).reshape(-1).to(bias.dtype))
            fitted = z * scale
        else:
            scale = _exact_scale(z, bias.float().reshape(shape).expand_as(z))
            fitted = z * scale + bias.float().reshape(shape)
        weight.mul_(scale)
        self.last_scale = scale
        fitted = fitted.to(output.dtype)
        return (fitted, *variance_mean(fitted))


def _weight_and_bias(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    owner = module.out_proj if isinstance(module, nn.MultiheadAttention) else module
    weight, bias = owner.weight, owner.bias
    if not isinstance(weight, torch.Tensor):
        raise InitlabError(f"lsuv_: layer {type(module).__name__} has no weight tensor; expected a fitted layer.")
    return weight, bias if isinstance(bias, torch.Tensor) else None


def _exact_scale(z: torch.Tensor, bias: torch.Tensor | None) -> float:
    """s >= 0 with Var(s z + b) = 1 (the positive root of the quadratic); 1/std(y) if there is none."""
    var_z = float(z.var())
    if bias is None:
        return 1.0 / math.sqrt(var_z)
    n = z.numel()
    centred_z, centred_b = z - z.mean(), bias - bias.mean()
    cov = float((centred_z * centred_b).sum()) / (n - 1)
    var_b = float(centred_b.square().sum()) / (n - 1)
    discriminant = cov * cov - var_z * (var_b - 1.0)
    if discriminant >= 0:
        root = (-cov + math.sqrt(discriminant)) / var_z
        if root > 0:
            return root
    return 1.0 / math.sqrt(float((z + bias).var()))


@torch.no_grad()
def lsuv_(
    model: nn.Module,
    batch: Any,
    *,
    tol: float = 0.05,
    max_iter: int = 10,
    center: bool = False,
    seed: int = 0,
    pre_init: bool = True,
) -> LSUVRecord:
    """Layer-sequential unit-variance initialization of ``model`` on ``batch``, in flight.

    Args:
        model: a model with Linear / Conv / ConvTranspose / MultiheadAttention layers.
        batch: the input: a tensor, a tuple of positional arguments or a dict of keyword arguments.
        tol: a layer is fitted when |Var(output) - 1| <= tol.
        max_iter: at most this many passes after the fitting pass.
        center: also set each bias so that every output channel has mean 0.
        seed: seed of the orthogonal pre-initialization (initlab's streams).
        pre_init: orthogonal weights and zero biases first (the paper's step 1).

    Returns:
        An :class:`LSUVRecord`: per layer its calls, iterations, final variance and mean,
        and the number of forward passes used.

    Raises:
        InitlabError: a model without parameters or fitted layers, bad ``tol``/``max_iter``,
            a batch with NaN or infinite values, or a batch the model rejects.
    """
    check_model(model, "lsuv_")
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 < tol < 1:
        raise bad_value("lsuv_", "tol", tol, "a number in (0, 1)")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise bad_value("lsuv_", "max_iter", max_iter, "a positive integer")
    layers = _fitted_layers(model)
    if not layers:
        raise InitlabError(
            f"lsuv_: model={type(model).__name__} has no Linear, Conv, ConvTranspose or "
            f"MultiheadAttention layer; expected at least one layer to fit."
        )
    _check_batch(batch)
    started = time.perf_counter()
    record = None
    if pre_init:
        plan = Plan([Rule(kind=_FITTED, weight=orthogonal(), bias=zeros())], default=None)
        record = apply_plan(model, plan, seed=seed, measure_values=False)
    like = next(parameter for parameter in model.parameters() if parameter.is_floating_point())
    inputs = _on_model(batch, like)
    fitter = _Fitter(layers, float(tol), bool(center))
    passes = _run_passes(model, inputs, fitter, layers, max_iter)
    return LSUVRecord(
        layers=sorted(fitter.fits.values(), key=lambda fit: (fit.order < 0, fit.order)),
        passes=passes,
        tol=float(tol),
        center=bool(center),
        seed=seed,
        seconds=time.perf_counter() - started,
        pre_init=record,
        bound=f"2 passes on feed-forward nets (fit + verify); at most 1 + max_iter = {1 + max_iter}",
    )


def _run_passes(model: nn.Module, inputs: Any, fitter: _Fitter, layers: dict[nn.Module, str], max_iter: int) -> int:
    modes = {module: module.training for module in model.modules()}
    handles = [module.register_forward_hook(fitter.hook) for module in layers]
    passes = 0
    try:
        with preserved(model):
            model.train()
            for module in model.modules():
                if isinstance(module, _DROPOUT):
                    module.eval()
            for fit_all in [True] + [False] * max_iter:
                fitter.start_pass(fit_all)
                passes += 1
                try:
                    call_model(model, inputs)
                except InitlabError:
                    raise
                except Exception as error:
                    raise InitlabError(
                        f"lsuv_: batch of shape {describe_input(inputs)} was rejected by the model "
                        f"({type(model).__name__}): {type(error).__name__}: {error}"
                    ) from None
                if not fit_all and fitter.refitted == 0:
                    break
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.items():
            module.training = training
    return passes
