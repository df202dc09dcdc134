"""Hooks that watch one forward and one backward pass and keep per-call statistics.

What is recorded. Every *leaf* module (no children) and every module that owns
parameters directly (``nn.MultiheadAttention``) is recorded each time it runs, in
execution order (a module called twice gives two records, ``name`` and ``name#2``).
Activation functions called in a ``forward`` outside any recorded module
(``F.relu(x)``, ``x.tanh()``) are recorded too, through a
:class:`torch.overrides.TorchFunctionMode` that is active during the forward pass only.

Forward statistics are computed inside the hook, before a later in-place operation
(``nn.ReLU(inplace=True)``) can change the tensor. Gradients are read by tensor hooks
registered on each recorded output; a hook registered before an in-place change
receives the gradient w.r.t. the value the output had when it was registered.

All handles are removed by :meth:`Capture.close`, which the caller runs in ``finally``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from initlab.activations import Activation, get_activation
from initlab.audit import statistics
from initlab.audit.thresholds import Thresholds
from initlab.errors import InitlabError

_CHANNEL_FIRST = (
    nn.modules.conv._ConvNd, nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm,
    nn.GroupNorm, nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd,
    nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
)
_LAST_AXIS = (nn.Linear, nn.Bilinear, nn.LayerNorm, nn.Embedding, nn.EmbeddingBag, nn.MultiheadAttention,
              nn.RNNBase, nn.Flatten, getattr(nn, "RMSNorm", nn.LayerNorm))
NORMALIZING = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm, nn.GroupNorm,
               nn.LayerNorm, getattr(nn, "RMSNorm", nn.LayerNorm), nn.Embedding, nn.EmbeddingBag)
"""Modules whose output scale is set by their own parameters: they reset the reference std."""

# Functional activations: function name -> (canonical name, positional parameter names after the input).
_FUNCTIONAL = {
    "relu": ("relu", ()), "relu_": ("relu", ()), "tanh": ("tanh", ()), "tanh_": ("tanh", ()),
    "sigmoid": ("sigmoid", ()), "sigmoid_": ("sigmoid", ()), "gelu": ("gelu", ()), "silu": ("silu", ()),
    "selu": ("selu", ()), "selu_": ("selu", ()), "elu": ("elu", ("alpha",)), "elu_": ("elu", ("alpha",)),
    "leaky_relu": ("leaky_relu", ("negative_slope",)), "leaky_relu_": ("leaky_relu", ("negative_slope",)),
    "hardtanh": ("hardtanh", ("min_val", "max_val")), "hardtanh_": ("hardtanh", ("min_val", "max_val")),
    "relu6": ("relu6", ()), "mish": ("mish", ()), "softplus": ("softplus", ("beta",)), "softsign": ("softsign", ()),
}
_ACTIVATION_PARAMETERS = ("alpha", "negative_slope", "min_val", "max_val", "beta", "approximate")


def first_tensor(value: Any) -> torch.Tensor | None:
    """The first tensor in ``value`` (a tensor, or nested tuples/lists/dict values)."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)):
        items = value
    elif isinstance(value, dict):
        items = list(value.values())
    else:
        return None
    for item in items:
        found = first_tensor(item)
        if found is not None:
            return found
    return None


def module_activation(module: nn.Module) -> Activation | None:
    """The activation a module computes, if it is one of torch's activation modules initlab knows."""
    if not any(cls.__module__ == "torch.nn.modules.activation" for cls in type(module).__mro__):
        return None
    try:
        return get_activation(module)
    except InitlabError:
        return None


def functional_activation(func: Callable, args: tuple, kwargs: dict) -> Activation | None:
    """The activation a torch function call computes (``F.relu``, ``torch.tanh``, ``x.sigmoid()``...)."""
    entry = _FUNCTIONAL.get(getattr(func, "__name__", ""))
    if entry is None or not args or not isinstance(args[0], torch.Tensor):
        return None
    canonical, positional = entry
    if canonical == "relu6":
        return get_activation("hardtanh", min_val=0.0, max_val=6.0)
    params = dict(zip(positional, args[1:]))
    params.update({key: value for key, value in kwargs.items() if key in _ACTIVATION_PARAMETERS})
    if canonical == "gelu" and params.get("approximate", "none") == "none":
        params.pop("approximate", None)
    try:
        return get_activation(canonical, **params)
    except InitlabError:
        return None


def unit_axis_of(module: nn.Module | None) -> int | None:
    """Axis along which the units of a module's output lie (channels: 1, features: -1), or None
    when the module does not decide it (activations, dropout, functional calls)."""
    if isinstance(module, _CHANNEL_FIRST):
        return 1
    if isinstance(module, _LAST_AXIS):
        return -1
    return None


def has_weight_rows(module: nn.Module | None) -> bool:
    """Whether each output unit of ``module`` owns one row of ``module.weight`` (Linear, ungrouped Conv)."""
    if isinstance(module, nn.Linear):
        return True
    return isinstance(module, nn.modules.conv._ConvNd) and not module.transposed and module.groups == 1


@dataclass
class Record:
    """Statistics of one call of one module (or functional activation).

    ``source`` is the index of the record whose output is this record's input (-1: the
    batch, None: not produced by a recorded call, e.g. after a residual addition).
    """

    index: int
    name: str
    module_type: str
    module: nn.Module | None = field(repr=False)
    first_call: bool
    activation: Activation | None
    unit_axis: int | None
    source: int | None
    input_std: float | None
    output: statistics.Summary
    dead: tuple[int, int] | None = None
    saturated_fraction: float | None = None
    duplicate_pairs: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, repr=False)
    symmetric_units: int | None = None
    grad_norm: float | None = None
    grad_std: float | None = None


@dataclass
class _Origin:
    """The producer of a tensor: a record index (-1 for the batch) and its std."""

    index: int
    std: float
    tensor: torch.Tensor = field(repr=False)


class _FunctionalActivations(TorchFunctionMode):
    """Records activation functions called outside recorded modules during the forward pass."""

    def __init__(self, capture: "Capture"):
        super().__init__()
        self.capture = capture

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        capture = self.capture
        if capture.busy or capture.depth > 0:
            return result
        activation = functional_activation(func, args, kwargs)
        output = first_tensor(result)
        if activation is not None and output is not None and output.is_floating_point():
            name = f"{capture.stack[-1] if capture.stack else '<model>'}.<{func.__name__.rstrip('_')}>"
            capture.record(None, name, f"F.{activation.name}", activation, args[0], output)
        return result


class Capture:
    """Forward/backward statistics of every recorded call; a context manager that removes
    its hooks on exit, also when the model raises.

    Args:
        model: the model (not modified: hooks only).
        thresholds: for the saturation margin and symmetry tolerance.
        seed: seed of the symmetry projection.
    """

    def __init__(self, model: nn.Module, thresholds: Thresholds, seed: int = 0):
        self.model = model
        self.thresholds = thresholds
        self.seed = seed
        self.records: list[Record] = []
        self.stack: list[str] = []
        self.depth = 0
        self.busy = False
        self._names = {module: name or "<model>" for name, module in model.named_modules()}
        self._calls: dict[nn.Module, int] = {}
        self._origins: dict[int, _Origin] = {}
        self._handles: list[Any] = []

    # ---------------------------------------------------------------- set-up
    def __enter__(self) -> "Capture":
        for module in self._names:
            recorded = self._is_recorded(module)
            self._handles.append(module.register_forward_pre_hook(self._pre_hook(module, recorded)))
            self._handles.append(module.register_forward_hook(self._post_hook(module, recorded)))
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Remove every hook this capture registered (idempotent)."""
        while self._handles:
            self._handles.pop().remove()
        self._origins.clear()

    @staticmethod
    def _is_recorded(module: nn.Module) -> bool:
        has_children = next(module.children(), None) is not None
        owns_parameters = next(module.parameters(recurse=False), None) is not None
        return not has_children or owns_parameters

    def functional_mode(self) -> TorchFunctionMode:
        """The mode to enter around the model's forward call."""
        return _FunctionalActivations(self)

    def note_batch(self, batch: torch.Tensor) -> None:
        """Register the batch tensor as the origin (-1) of the first layer's input."""
        if batch.is_floating_point():
            self._origins[id(batch)] = _Origin(-1, float(batch.detach().std()) if batch.numel() > 1 else 0.0, batch)

    # ---------------------------------------------------------------- hooks
    def _pre_hook(self, module: nn.Module, recorded: bool):
        def hook(_module, _inputs):
            self.stack.append(self._names[module])
            if recorded:
                self.depth += 1
        return hook

    def _post_hook(self, module: nn.Module, recorded: bool):
        def hook(_module, inputs, output):
            self.stack.pop()
            if not recorded:
                return None
            self.depth -= 1
            output_tensor = first_tensor(output)
            if output_tensor is None or not output_tensor.is_floating_point():
                return None
            call = self._calls.get(module, 0) + 1
            self._calls[module] = call
            name = self._names[module] + (f"#{call}" if call > 1 else "")
            self.record(module, name, type(module).__name__, module_activation(module), first_tensor(inputs),
                        output_tensor, first_call=call == 1)
            return None
        return hook

    # ------------------------------------------------------------- records
    def record(self, module: nn.Module | None, name: str, module_type: str, activation: Activation | None,
               input_tensor: torch.Tensor | None, output: torch.Tensor, *, first_call: bool = True) -> None:
        """Compute the forward statistics of one call and register its gradient hook.

        Runs with torch-function dispatch disabled: the statistics read plain detached
        tensors, and must not go through (or be recorded by) the functional-activation mode.
        """
        self.busy = True
        try:
            with torch._C.DisableTorchFunction(), statistics.single_threaded():
                self._record(module, name, module_type, activation, input_tensor, output, first_call)
        finally:
            self.busy = False

    def _record(self, module, name, module_type, activation, input_tensor, output, first_call) -> None:
        origin = self._origins.get(id(input_tensor)) if input_tensor is not None else None
        if origin is not None and origin.tensor is not input_tensor:
            origin = None
        record = self._forward_record(module, name, module_type, activation, input_tensor, output,
                                      origin, first_call)
        self.records.append(record)
        self._origins[id(output)] = _Origin(record.index, record.output.std, output)
        if output.requires_grad:
            output.register_hook(self._gradient_hook(record))

    def _forward_record(self, module, name, module_type, activation, input_tensor, output, origin, first_call):
        summary = statistics.summarize(output)
        axis = unit_axis_of(module)
        if axis is None and origin is not None and origin.index >= 0:
            axis = self.records[origin.index].unit_axis
        axis = -1 if axis is None else axis
        if origin is not None:
            input_std = origin.std
        elif input_tensor is not None and input_tensor.is_floating_point() and input_tensor.numel() > 1:
            input_std = float(input_tensor.detach().std())
        else:
            input_std = None
        record = Record(
            index=len(self.records), name=name, module_type=module_type, module=module, first_call=first_call,
            activation=activation, unit_axis=axis, source=None if origin is None else origin.index,
            input_std=input_std, output=summary,
        )
        if _can_die(activation):
            record.dead = statistics.dead_units(output, axis)
        if activation is not None and activation.bounds is not None:
            record.saturated_fraction = statistics.saturated_fraction(
                output, activation.bounds, self.thresholds.saturation_margin)
        if has_weight_rows(module) and output.ndim >= 2 and module.weight.shape[0] == output.shape[axis]:
            vectors = statistics.unit_vectors(output, axis)
            record.duplicate_pairs = statistics.duplicate_pairs(
                vectors, module.weight, module.bias, self.thresholds.symmetry_rtol, self.seed)
            record.symmetric_units = len(record.duplicate_pairs[0])
        return record

    def _gradient_hook(self, record: Record):
        def hook(gradient: torch.Tensor):
            with statistics.single_threaded():
                gradient = gradient.detach()
                record.grad_norm, record.grad_std = statistics.norm_and_std(gradient)
                if record.duplicate_pairs is not None:
                    vectors = statistics.unit_vectors(gradient, record.unit_axis)
                    record.symmetric_units = statistics.pairs_still_equal(
                        vectors, *record.duplicate_pairs, self.thresholds.symmetry_rtol)
            return None
        return hook


def _can_die(activation: Activation | None) -> bool:
    """ReLU and ReLU6 output exactly 0, with zero gradient, wherever their input is <= 0."""
    if activation is None:
        return False
    return activation.name == "relu" or (activation.name == "hardtanh" and activation.params.get("min_val") == 0.0)
