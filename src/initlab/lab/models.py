"""Model builders for the lab: stacked (batched) parameters and their forward pass.

Three architectures, each described by a :class:`ModelSpec`:

* ``mlp``: ``depth`` hidden layers ``z_l = W_l h_{l-1} + b_l``, optional
  normalisation of ``z_l``, ``h_l = phi(norm(z_l))``, then an output layer
  ``W_{depth} h_{depth-1} + b_{depth}``. ``depth = 2, width = 100`` on MNIST-1D
  is the 40-100-100-10 network.
* ``resmlp``: an input projection ``h_0 = W_0 x + b_0``, ``depth`` residual
  blocks ``h_l = h_{l-1} + alpha * phi(norm(W_l h_{l-1} + b_l))`` and an output
  layer (``alpha`` = ``residual_scale``).
* ``cnn1d``: ``depth`` 1-D convolutions (``width`` channels, odd
  ``kernel_size``, "same" padding), each followed by the optional
  normalisation and ``phi``, then a global average over positions and a
  linear output layer.

Parameters are named ``layers.<i>.weight`` / ``layers.<i>.bias`` (and
``norms.<i>.weight`` / ``norms.<i>.bias``) in every architecture, so
per-layer metrics and scheme streams line up. A *stacked* model holds ``R``
independent runs: each parameter has a leading run axis of size ``R`` and
the forward pass uses batched matrix multiplication (``torch.baddbmm``) or a
grouped convolution, so ``R`` runs cost one kernel per layer.
:class:`TorchModel` is the same network for one run as an ordinary
``nn.Module`` (used for ``initlab.init_`` / ``initlab.lsuv_`` and as the
plain-PyTorch reference).

Normalisation: ``batch`` uses the batch statistics in training (biased
variance, eps 1e-5) and running averages (momentum 0.1, unbiased variance)
in evaluation, as ``torch.nn.BatchNorm1d``; ``layer`` normalises each
example over its features (``(channels, length)`` for the CNN). Both are
affine, with weight 1 and bias 0 at initialisation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from initlab.errors import InitlabError

ARCHITECTURES = ("mlp", "resmlp", "cnn1d")
NORMS = ("none", "batch", "layer")
_NORM_EPS = 1e-5
_BN_MOMENTUM = 0.1


class _Elementwise(nn.Module):
    """An activation given as a plain torch function (for those without an nn module)."""

    def __init__(self, function: Callable[[torch.Tensor], torch.Tensor], name: str) -> None:
        super().__init__()
        self.function, self.label = function, name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.function(x)

    def extra_repr(self) -> str:
        return self.label


# canonical name -> (module factory taking the activation's parameters, output bounds, "params" (bounds
# given by the parameters min_val / max_val) or None)
TORCH_ACTIVATIONS: dict[str, tuple[Callable[..., nn.Module], tuple[float, float] | str | None]] = {
    "linear": (lambda: nn.Identity(), None),
    "relu": (lambda: nn.ReLU(), None),
    "leaky_relu": (lambda negative_slope=0.01: nn.LeakyReLU(negative_slope), None),
    "prelu": (lambda negative_slope=0.25: nn.LeakyReLU(negative_slope), None),
    "elu": (lambda alpha=1.0: nn.ELU(alpha), None),
    "selu": (lambda: nn.SELU(), None),
    "gelu": (lambda: nn.GELU(), None),
    "gelu_tanh": (lambda: nn.GELU(approximate="tanh"), None),
    "silu": (lambda: nn.SiLU(), None),
    "mish": (lambda: nn.Mish(), None),
    "softplus": (lambda beta=1.0: nn.Softplus(beta), None),
    "softsign": (lambda: nn.Softsign(), (-1.0, 1.0)),
    "sigmoid": (lambda: nn.Sigmoid(), (0.0, 1.0)),
    "tanh": (lambda: nn.Tanh(), (-1.0, 1.0)),
    "hardtanh": (lambda min_val=-1.0, max_val=1.0: nn.Hardtanh(min_val, max_val), "params"),
    "sin": (lambda: _Elementwise(torch.sin, "sin"), None),
    "erf": (lambda: _Elementwise(torch.erf, "erf"), (-1.0, 1.0)),
}
SATURATION_MARGIN = 0.01
"""A unit of a bounded activation is saturated when its output lies within this
fraction of the half-range of a bound (|tanh| > 0.99, sigmoid < 0.005 or > 0.995)."""


def resolve_activation(name: str, params: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """Canonical ``(name, params)`` of an activation the lab can run.

    Aliases (``swish``, ``identity``, ...) are resolved by
    ``initlab.activations.get_activation`` when that registry is present.

    Raises:
        InitlabError: the name is unknown or the lab has no torch function for it.
    """
    params = dict(params or {})
    try:
        from initlab.activations import get_activation
    except ImportError:
        canonical, resolved = name, params
    else:
        activation = get_activation(name, **params)
        canonical, resolved = activation.name, dict(activation.params)
    if canonical not in TORCH_ACTIVATIONS:
        raise InitlabError(f"model.activation: {name!r} is invalid; expected one of {', '.join(TORCH_ACTIVATIONS)}.")
    return canonical, resolved


def activation_module(name: str, params: dict[str, Any]) -> nn.Module:
    """The torch module computing the (canonical) activation ``name``."""
    factory, _ = TORCH_ACTIVATIONS[name]
    try:
        return factory(**params)
    except TypeError:
        raise InitlabError(f"model.activation: parameters {params!r} are invalid for {name!r}.") from None


def activation_bounds(name: str, params: dict[str, Any]) -> tuple[float, float] | None:
    """Output bounds of a bounded activation, else None."""
    bounds = TORCH_ACTIVATIONS[name][1]
    if isinstance(bounds, str):
        return float(params.get("min_val", -1.0)), float(params.get("max_val", 1.0))
    return bounds


@dataclass(frozen=True)
class ModelSpec:
    """Everything that fixes a model's parameter shapes and computation.

    Attributes:
        kind: ``mlp``, ``resmlp`` or ``cnn1d``.
        depth: hidden layers (mlp), residual blocks (resmlp) or conv layers (cnn1d).
        width: hidden units or channels.
        activation, activation_params: the canonical activation and its parameters.
        bias: whether layers have biases.
        norm: ``none``, ``batch`` or ``layer``.
        input_shape: one example's ``(channels, length)``.
        num_outputs: output units.
        kernel_size: conv kernel (cnn1d).
        residual_scale: the ``alpha`` of residual blocks (resmlp).
    """

    kind: str
    depth: int
    width: int
    activation: str
    input_shape: tuple[int, int]
    num_outputs: int
    activation_params: tuple[tuple[str, Any], ...] = ()
    bias: bool = True
    norm: str = "none"
    kernel_size: int = 5
    residual_scale: float = 1.0

    @property
    def input_dim(self) -> int:
        return self.input_shape[0] * self.input_shape[1]

    @property
    def num_layers(self) -> int:
        """Number of weight layers (``layers.<i>``), output layer included."""
        return self.depth + (2 if self.kind == "resmlp" else 1)

    @property
    def hidden_layers(self) -> range:
        """Indices of layers followed by the activation (their units are "hidden units")."""
        return range(1, self.depth + 1) if self.kind == "resmlp" else range(self.depth)

    def weight_shape(self, layer: int) -> tuple[int, ...]:
        """Shape of ``layers.<layer>.weight`` for one run."""
        last = self.num_layers - 1
        if self.kind == "cnn1d":
            if layer == last:
                return (self.num_outputs, self.width)
            channels = self.input_shape[0] if layer == 0 else self.width
            return (self.width, channels, self.kernel_size)
        fan_in = self.input_dim if layer == 0 else self.width
        return (self.num_outputs if layer == last else self.width, fan_in)

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """``name -> shape`` (one run) of every parameter, in forward order."""
        shapes: dict[str, tuple[int, ...]] = {}
        for layer in range(self.num_layers):
            shape = self.weight_shape(layer)
            shapes[f"layers.{layer}.weight"] = shape
            if self.bias:
                shapes[f"layers.{layer}.bias"] = (shape[0],)
            if self.norm != "none" and layer in self.hidden_layers:
                shapes[f"norms.{layer}.weight"] = (self.width,)
                shapes[f"norms.{layer}.bias"] = (self.width,)
        return shapes

    def activation_fn(self) -> nn.Module:
        return activation_module(self.activation, dict(self.activation_params))


def is_weight(name: str) -> bool:
    """Whether a parameter is a layer weight (L2 / weight decay / weight norm apply)."""
    return name.startswith("layers.") and name.endswith(".weight")


# ----------------------------------------------------------------- forward
@dataclass
class Trace:
    """What a forward pass recorded, per hidden layer: pre-activations and outputs."""

    preacts: dict[int, torch.Tensor] = field(default_factory=dict)
    outputs: dict[int, torch.Tensor] = field(default_factory=dict)


class StackedModel:
    """``R`` runs of one :class:`ModelSpec` as stacked tensors with a batched forward.

    Args:
        spec: the architecture.
        params: ``name -> tensor (R, *shape)`` (leaf tensors that require grad).
        buffers: batch-norm running statistics ``norms.<i>.running_mean/var`` ``(R, width)``.
    """

    def __init__(self, spec: ModelSpec, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor]) -> None:
        self.spec, self.params, self.buffers = spec, params, buffers
        self.activation = spec.activation_fn()

    @classmethod
    def empty(cls, spec: ModelSpec, runs: int, dtype: torch.dtype) -> StackedModel:
        """Uninitialised parameters (zeros) and fresh running statistics for ``runs`` runs."""
        params = {name: torch.zeros((runs, *shape), dtype=dtype) for name, shape in spec.parameter_shapes().items()}
        buffers: dict[str, torch.Tensor] = {}
        if spec.norm == "batch":
            for layer in spec.hidden_layers:
                buffers[f"norms.{layer}.running_mean"] = torch.zeros(runs, spec.width, dtype=dtype)
                buffers[f"norms.{layer}.running_var"] = torch.ones(runs, spec.width, dtype=dtype)
        return cls(spec, params, buffers)

    @property
    def runs(self) -> int:
        return next(iter(self.params.values())).shape[0]

    def forward(
        self, x: torch.Tensor, *, train: bool, update_stats: bool = True, trace: Trace | None = None
    ) -> torch.Tensor:
        """Outputs ``(R, B, num_outputs)`` for inputs ``(R, B, channels, length)``.

        Args:
            x: one batch per run.
            train: batch statistics (True) or running statistics (False) in batch norm.
            update_stats: whether a training pass updates the running statistics.
            trace: if given, receives each hidden layer's pre-activation and output.
        """
        # Each layer's tensors are looked up once by name: indexing one stacked
        # (layers, runs, ...) tensor inside this loop made backward cost grow
        # with depth^2 (see the module docstring of initlab.lab.trainer).
        weights = [self.params[f"layers.{i}.weight"] for i in range(self.spec.num_layers)]
        biases = [self.params.get(f"layers.{i}.bias") for i in range(self.spec.num_layers)]
        context = (train, update_stats, trace)
        if self.spec.kind == "cnn1d":
            return self._forward_cnn(x, weights, biases, context)
        h = x.reshape(x.shape[0], x.shape[1], -1)
        if self.spec.kind == "mlp":
            for layer in range(self.spec.depth):
                h = self._hidden(layer, h, weights[layer], biases[layer], context)
        else:
            h = _linear(h, weights[0], biases[0])
            for layer in range(1, self.spec.depth + 1):
                branch = self._hidden(layer, h, weights[layer], biases[layer], context, record_output=False)
                h = h + self.spec.residual_scale * branch
                if trace is not None:
                    trace.outputs[layer] = h
        last = self.spec.num_layers - 1
        return _linear(h, weights[last], biases[last])

    def _hidden(self, layer: int, h, weight, bias, context, record_output: bool = True):
        train, update_stats, trace = context
        z = _linear(h, weight, bias)
        z = self._normalise(layer, z, feature_dims=(2,), train=train, update_stats=update_stats)
        out = self.activation(z)
        if trace is not None:
            trace.preacts[layer] = z
            if record_output:
                trace.outputs[layer] = out
        return out

    def _forward_cnn(self, x, weights, biases, context) -> torch.Tensor:
        train, update_stats, trace = context
        runs, batch, channels, length = x.shape
        h = x.permute(1, 0, 2, 3).reshape(batch, runs * channels, length)
        padding = self.spec.kernel_size // 2
        for layer in range(self.spec.depth):
            weight = weights[layer]
            flat_bias = None if biases[layer] is None else biases[layer].reshape(-1)
            z = F.conv1d(h, weight.reshape(-1, *weight.shape[2:]), flat_bias, padding=padding, groups=runs)
            z = z.view(batch, runs, self.spec.width, length).transpose(0, 1)
            z = self._normalise(layer, z, feature_dims=(2, 3), train=train, update_stats=update_stats)
            out = self.activation(z)
            if trace is not None:
                trace.preacts[layer], trace.outputs[layer] = z, out
            h = out.transpose(0, 1).reshape(batch, runs * self.spec.width, length)
        pooled = h.view(batch, runs, self.spec.width, length).mean(dim=3).transpose(0, 1)
        last = self.spec.num_layers - 1
        return _linear(pooled, weights[last], biases[last])

    def _normalise(self, layer, z, *, feature_dims, train, update_stats) -> torch.Tensor:
        """Batch or layer normalisation of ``z`` (R, B, C[, L]) with per-run affine parameters."""
        if self.spec.norm == "none":
            return z
        gain = self.params[f"norms.{layer}.weight"]
        shift = self.params[f"norms.{layer}.bias"]
        extra = (1,) * (z.dim() - 3)
        gain, shift = gain.view(gain.shape[0], 1, -1, *extra), shift.view(shift.shape[0], 1, -1, *extra)
        if self.spec.norm == "layer":
            mean = z.mean(dim=feature_dims, keepdim=True)
            var = z.var(dim=feature_dims, keepdim=True, unbiased=False)
            return (z - mean) * torch.rsqrt(var + _NORM_EPS) * gain + shift
        stat_dims = (1,) + tuple(range(3, z.dim()))
        running_mean = self.buffers[f"norms.{layer}.running_mean"]
        running_var = self.buffers[f"norms.{layer}.running_var"]
        if train:
            mean = z.mean(dim=stat_dims, keepdim=True)
            var = z.var(dim=stat_dims, keepdim=True, unbiased=False)
            if update_stats:
                count = z.numel() // (z.shape[0] * z.shape[2])
                with torch.no_grad():
                    unbiased = var.reshape(running_var.shape) * count / max(count - 1, 1)
                    running_mean.lerp_(mean.reshape(running_mean.shape), _BN_MOMENTUM)
                    running_var.lerp_(unbiased, _BN_MOMENTUM)
        else:
            mean = running_mean.view(running_mean.shape[0], 1, -1, *extra)
            var = running_var.view(running_var.shape[0], 1, -1, *extra)
        return (z - mean) * torch.rsqrt(var + _NORM_EPS) * gain + shift


def _linear(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``h @ W^T + b`` for every run: h (R, B, in), W (R, out, in), b (R, out)."""
    if bias is None:
        return torch.bmm(h, weight.transpose(1, 2))
    return torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2))


# --------------------------------------------------------- plain nn.Module
class TorchModel(nn.Module):
    """One run of a :class:`ModelSpec` as an ordinary ``nn.Module``.

    Its ``state_dict`` names equal the stacked model's parameter names, so
    :func:`module_to_stack` / :func:`stack_to_module` copy one run in or out.
    Inputs are ``(B, channels, length)``.
    """

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        layers: list[nn.Module] = []
        for layer in range(spec.num_layers):
            shape = spec.weight_shape(layer)
            if len(shape) == 3:
                layers.append(nn.Conv1d(shape[1], shape[0], shape[2], padding=shape[2] // 2, bias=spec.bias))
            else:
                layers.append(nn.Linear(shape[1], shape[0], bias=spec.bias))
        self.layers = nn.ModuleList(layers)
        self.norms = nn.ModuleDict(
            {str(layer): _norm_module(spec) for layer in spec.hidden_layers if spec.norm != "none"}
        )
        self.activations = nn.ModuleList(spec.activation_fn() for _ in spec.hidden_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spec = self.spec
        h = x if spec.kind == "cnn1d" else x.reshape(x.shape[0], -1)
        if spec.kind == "resmlp":
            h = self.layers[0](h)
        for position, layer in enumerate(spec.hidden_layers):
            z = self.layers[layer](h)
            if str(layer) in self.norms:
                z = self.norms[str(layer)](z)
            out = self.activations[position](z)
            h = h + spec.residual_scale * out if spec.kind == "resmlp" else out
        if spec.kind == "cnn1d":
            h = h.mean(dim=2)
        return self.layers[-1](h)


class _LayerNormCL(nn.Module):
    """Layer norm over (channels, length) of a conv output, per-channel affine."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        mean = z.mean(dim=(1, 2), keepdim=True)
        var = z.var(dim=(1, 2), keepdim=True, unbiased=False)
        return (z - mean) * torch.rsqrt(var + _NORM_EPS) * self.weight[:, None] + self.bias[:, None]


def _norm_module(spec: ModelSpec) -> nn.Module:
    if spec.norm == "batch":
        return nn.BatchNorm1d(spec.width, eps=_NORM_EPS, momentum=_BN_MOMENTUM)
    if spec.kind == "cnn1d":
        return _LayerNormCL(spec.width)
    return nn.LayerNorm(spec.width, eps=_NORM_EPS)


def stack_to_module(model: StackedModel, run: int, module: TorchModel) -> TorchModel:
    """Copy run ``run`` of a stacked model into ``module`` (parameters and running stats)."""
    state = module.state_dict()
    with torch.no_grad():
        for name, tensor in _stack_items(model):
            state[name].copy_(tensor[run])
    return module


def module_to_stack(module: TorchModel, model: StackedModel, run: int) -> None:
    """Copy ``module``'s parameters and running statistics into run ``run`` of ``model``."""
    state = module.state_dict()
    with torch.no_grad():
        for name, tensor in _stack_items(model):
            tensor[run].copy_(state[name])


def _stack_items(model: StackedModel) -> Iterator[tuple[str, torch.Tensor]]:
    yield from model.params.items()
    yield from model.buffers.items()
