"""Hooks that watch one forward and one backward pass and keep per-call statistics.

What is recorded. Every *leaf* module (no children) and every module that owns
parameters directly (``nn.MultiheadAttention``) is recorded each time it runs, in
execution order (a module called twice gives two records, ``name`` and ``name#2``).
Activation functions called in a ``forward`` outside any recorded module
(``F.relu(x)``, ``x.tanh()``) are recorded too, through a
:class:`torch.overrides.TorchFunctionMode` the caller enters around the model's forward
call (:meth:`Capture.functional_activations`); a model whose every unrecorded module is a
plain ``nn.Sequential`` (whose ``forward`` only calls its children) calls no function
outside recorded modules, and runs without the mode.

When. A call's output is measured in the forward hook, before a later in-place operation
(``nn.ReLU(inplace=True)``, ``x += y``) can change it. One global forward pre-hook and one
global forward hook (``torch.nn.modules.module.register_module_forward_*_hook``) serve
every module of the model and ignore any other module called meanwhile (a loss module,
another model). The gradient w.r.t. a call's output is measured by a hook on that output
tensor, which receives the gradient w.r.t. the value the module returned, also after an
in-place change.

Clean-up. :class:`Capture` is a context manager whose exit removes every hook it
registered, whatever the exit path. An exception raised by the capture's own measurements
(not by the model) is kept in :attr:`Capture.failure`, so that the caller can tell the
two apart.
"""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from initlab.activations import Activation, get_activation
from initlab.auditing import statistics
from initlab.auditing.thresholds import Thresholds
from initlab.errors import InitlabError

_CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
_INSTANCE_NORMS = (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
_RMS_NORM = getattr(nn, "RMSNorm", nn.LayerNorm)  # torch >= 2.4
_CHANNEL_FIRST = (
    *_CONVOLUTIONS,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    *_BATCH_NORMS,
    *_INSTANCE_NORMS,
    nn.GroupNorm,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
)
_LAST_AXIS = (
    nn.Linear,
    nn.Bilinear,
    nn.LayerNorm,
    _RMS_NORM,
    nn.Embedding,
    nn.EmbeddingBag,
    nn.MultiheadAttention,
    nn.RNNBase,
    nn.Flatten,
)
NORMALIZING = (*_BATCH_NORMS, *_INSTANCE_NORMS, nn.GroupNorm, nn.LayerNorm, _RMS_NORM, nn.Embedding, nn.EmbeddingBag)
"""Modules whose output scale is set by their own parameters: they reset the reference std."""

# Functional activations: function name -> (canonical name, positional parameter names after the input).
_FUNCTIONAL = {
    "relu": ("relu", ()),
    "relu_": ("relu", ()),
    "tanh": ("tanh", ()),
    "tanh_": ("tanh", ()),
    "sigmoid": ("sigmoid", ()),
    "sigmoid_": ("sigmoid", ()),
    "gelu": ("gelu", ()),
    "silu": ("silu", ()),
    "selu": ("selu", ()),
    "selu_": ("selu", ()),
    "elu": ("elu", ("alpha",)),
    "elu_": ("elu", ("alpha",)),
    "leaky_relu": ("leaky_relu", ("negative_slope",)),
    "leaky_relu_": ("leaky_relu", ("negative_slope",)),
    "hardtanh": ("hardtanh", ("min_val", "max_val")),
    "hardtanh_": ("hardtanh", ("min_val", "max_val")),
    "relu6": ("relu6", ()),
    "mish": ("mish", ()),
    "softplus": ("softplus", ("beta",)),
    "softsign": ("softsign", ()),
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


def weight_rows(module: nn.Module | None) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """``(weight, bias)`` of a module each of whose output units owns one row of the weight
    (Linear, ungrouped Conv), else None."""
    if isinstance(module, nn.Linear) or (isinstance(module, _CONVOLUTIONS) and module.groups == 1):
        return module.weight, module.bias
    return None


def _is_recorded(module: nn.Module) -> bool:
    """Leaf modules and modules that own parameters directly."""
    has_children = next(module.children(), None) is not None
    owns_parameters = next(module.parameters(recurse=False), None) is not None
    return not has_children or owns_parameters


def _can_die(activation: Activation | None) -> bool:
    """ReLU and ReLU6 output exactly 0, with zero gradient, wherever their input is <= 0."""
    if activation is None:
        return False
    return activation.name == "relu" or (activation.name == "hardtanh" and activation.params.get("min_val") == 0.0)


@dataclass
class Record:
    """Statistics of one call of one module (or functional activation).

    ``source`` is the index of the record whose output is this record's input (-1: the
    batch, None: not produced by a recorded call, e.g. after a residual addition).
    ``duplicate_pairs`` are the pairs of identical units (:func:`statistics.duplicate_pairs`)
    of a layer with weight rows; ``symmetric_units`` counts them, then, after the backward
    pass, those whose gradients are still equal.
    """

    index: int
    name: str
    module_type: str
    module: nn.Module | None = field(repr=False)
    first_call: bool
    activation: Activation | None
    unit_axis: int
    source: int | None
    input_std: float | None
    output: statistics.Summary
    input_rms: float | None = None
    dead: tuple[int, int] | None = None
    saturated_fraction: float | None = None
    duplicate_pairs: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, repr=False)
    symmetric_units: int | None = None
    grad_norm: float | None = None
    grad_std: float | None = None
    gradient_read: bool = True  # whether the report reads this output's gradient (see Capture.finish_forward)


@dataclass
class _Origin:
    """The producer of a tensor: a record index (-1 for the batch), the tensor's std, and a
    weak reference to the tensor (to tell it from a later tensor at the same address). Weak:
    an output no one else reads (a Linear's output once its activation ran) is freed as in
    a plain forward pass."""

    index: int
    std: float | None
    tensor: weakref.ref = field(repr=False)


class _FunctionalActivations(TorchFunctionMode):
    """Records activation functions called outside recorded modules during the forward pass;
    every other torch call goes through unchanged."""

    def __init__(self, capture: Capture):
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

    Attributes:
        records: one :class:`Record` per recorded call, in execution order.
        stack: names of the model's modules running now, innermost last (after an
            exception: the module that raised, last).
        failure: the exception raised by the capture's own measurements, if any.
    """

    def __init__(self, model: nn.Module, thresholds: Thresholds, seed: int = 0):
        self.thresholds = thresholds
        self.seed = seed
        self.records: list[Record] = []
        self.stack: list[str] = []
        self.depth = 0  # recorded modules running now
        self.busy = False  # measuring: the functional-activation mode lets the capture's own calls through
        self.failure: BaseException | None = None
        self._names = {module: name or "<model>" for name, module in model.named_modules()}
        self._recorded = {module: _is_recorded(module) for module in self._names}
        self._calls: dict[nn.Module, int] = {}
        self._activations: dict[nn.Module, Activation | None] = {}
        self._origins: dict[int, _Origin] = {}
        self._handles: list[Any] = []

    def __enter__(self) -> None:
        """Register the two global forward hooks."""
        self._handles.append(nn.modules.module.register_module_forward_pre_hook(self._pre_hook))
        self._handles.append(nn.modules.module.register_module_forward_hook(self._post_hook))

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Remove every hook this capture registered (idempotent)."""
        while self._handles:
            self._handles.pop().remove()
        self._origins.clear()

    def functional_activations(self) -> AbstractContextManager:
        """A context to enter (``with``) around the model's forward call: a mode that records
        the activation functions called outside recorded modules, or no mode at all when no
        unrecorded module but a plain ``nn.Sequential`` can call one."""
        if all(recorded or type(module) is nn.Sequential for module, recorded in self._recorded.items()):
            return nullcontext()
        return _FunctionalActivations(self)

    def note_batch(self, batch: torch.Tensor) -> None:
        """Register a floating batch tensor as the origin (-1) of the first layer's input."""
        if batch.is_floating_point():
            std = statistics.tensor_std(batch)
            self._origins[id(batch)] = _Origin(-1, std, weakref.ref(batch))

    @contextmanager
    def _measuring(self, what: str) -> Iterator[None]:
        """Run the capture's own measurements: the functional mode ignores their torch calls,
        and an exception is kept in :attr:`failure` with a note saying what was measured."""
        self.busy = True
        try:
            yield
        except Exception as error:
            if hasattr(error, "add_note"):  # Python >= 3.11
                error.add_note(f"initlab.audit failed while measuring {what} (an error of initlab, not of the model)")
            self.failure = error
            raise
        finally:
            self.busy = False

    # ---------------------------------------------------------------- hooks
    def _pre_hook(self, module: nn.Module, _inputs: Any) -> None:
        recorded = self._recorded.get(module)
        if recorded is None:
            return
        self.stack.append(self._names[module])
        if recorded:
            self.depth += 1

    def _post_hook(self, module: nn.Module, inputs: tuple, output: Any) -> None:
        recorded = self._recorded.get(module)
        if recorded is None:
            return
        self.stack.pop()
        if not recorded:
            return
        self.depth -= 1
        output_tensor = first_tensor(output)
        if output_tensor is None or not output_tensor.is_floating_point():
            return
        call = self._calls.get(module, 0) + 1
        self._calls[module] = call
        name = self._names[module] + (f"#{call}" if call > 1 else "")
        if module not in self._activations:
            self._activations[module] = module_activation(module)
        self.record(
            module,
            name,
            type(module).__name__,
            self._activations[module],
            first_tensor(inputs),
            output_tensor,
            first_call=call == 1,
        )

    # ------------------------------------------------------------- records
    def record(
        self,
        module: nn.Module | None,
        name: str,
        module_type: str,
        activation: Activation | None,
        input_tensor: torch.Tensor | None,
        output: torch.Tensor,
        *,
        first_call: bool = True,
    ) -> None:
        """Measure one call's output now, and hook its gradient."""
        with self._measuring(f"the output of '{name}'"):
            origin = self._origins.get(id(input_tensor)) if input_tensor is not None else None
            if origin is not None and origin.tensor() is not input_tensor:
                origin = None  # another tensor, now at the address of a freed one
            axis = unit_axis_of(module)
            if axis is None and origin is not None and origin.index >= 0:
                axis = self.records[origin.index].unit_axis
            if origin is not None:
                input_std = origin.std
            elif input_tensor is not None and input_tensor.is_floating_point() and input_tensor.numel() > 1:
                input_std = statistics.tensor_std(input_tensor)
            else:
                input_std = None
            record = Record(
                index=len(self.records),
                name=name,
                module_type=module_type,
                module=module,
                first_call=first_call,
                activation=activation,
                unit_axis=-1 if axis is None else axis,
                source=None if origin is None else origin.index,
                input_std=input_std,
                output=statistics.summarize(output),
                input_rms=_rms(input_tensor),
            )
            self._measure_units(record, output.detach())
            self.records.append(record)
            self._origins[id(output)] = _Origin(record.index, record.output.std, weakref.ref(output))
            if output.requires_grad:
                self._handles.append(output.register_hook(self._gradient_hook(record)))

    def _measure_units(self, record: Record, output: torch.Tensor) -> None:
        """Dead units (ReLU, ReLU6), saturation (bounded activations other than ReLU6, whose lower
        bound is a dead unit's zero, not a saturation) and identical units
        (layers whose units own weight rows)."""
        activation, axis = record.activation, record.unit_axis
        if _can_die(activation):
            record.dead = statistics.dead_units(output, axis)
        if activation is not None and activation.bounds is not None and not _can_die(activation):
            record.saturated_fraction = statistics.saturated_fraction(
                output, activation.bounds, self.thresholds.saturation_margin
            )
        rows = weight_rows(record.module)
        if rows is not None and output.ndim >= 2 and output.numel() > 0 and rows[0].shape[0] == output.shape[axis]:
            vectors = statistics.unit_vectors(output, axis)
            scale = max(-record.output.min, record.output.max)  # NaN when no value is finite: no pair then
            record.duplicate_pairs = statistics.duplicate_pairs(
                vectors, *rows, self.thresholds.symmetry_rtol, self.seed, scale
            )
            record.symmetric_units = len(record.duplicate_pairs[0])

    def finish_forward(self) -> None:
        """After the forward pass: mark the gradients no layer of the report reads, which the
        gradient hooks then skip. Those are the gradients of a call whose output only the
        activation of its own row reads (``Linear`` in ``Linear → ReLU``: the row reports the
        activation's output gradient) and which has no identical units to re-check."""
        readers = Counter(record.source for record in self.records)
        for row in rows(self.records):
            base = row[0]
            pairs = base.duplicate_pairs
            if len(row) == 2 and readers[base.index] == 1 and (pairs is None or len(pairs[0]) == 0):
                base.gradient_read = False

    def _gradient_hook(self, record: Record) -> Callable[[torch.Tensor], None]:
        def hook(gradient: torch.Tensor) -> None:
            if not record.gradient_read:
                return
            with self._measuring(f"the gradient of '{record.name}'"):
                self._measure_gradient(record, gradient.detach())

        return hook

    def _measure_gradient(self, record: Record, gradient: torch.Tensor) -> None:
        """Norm and std of the gradient w.r.t. a record's output, and how many of its pairs of
        identical units (if any) still have equal gradients."""
        record.grad_norm, record.grad_std = statistics.norm_and_std(gradient)
        pairs = record.duplicate_pairs
        if pairs is not None and len(pairs[0]):
            vectors = statistics.unit_vectors(gradient, record.unit_axis)
            record.symmetric_units = statistics.pairs_still_equal(vectors, *pairs, self.thresholds.symmetry_rtol)


def _rms(tensor: torch.Tensor | None) -> float | None:
    """``sqrt(mean(x^2))`` of a floating tensor (the second moment a layer's gain is read from), else None."""
    if tensor is None or not tensor.is_floating_point() or tensor.numel() == 0:
        return None
    return statistics.vector_norm(tensor.detach()) / tensor.numel() ** 0.5


def rows(records: list[Record]) -> list[list[Record]]:
    """Group each call with the activation applied right to its output (``Linear → ReLU``):
    the layers of the report."""
    grouped: list[list[Record]] = []
    for record in records:
        previous = grouped[-1] if grouped else None
        if (
            record.activation is not None
            and previous is not None
            and len(previous) == 1
            and previous[0].activation is None
            and record.source == previous[0].index
        ):
            previous.append(record)
        else:
            grouped.append([record])
    return grouped
