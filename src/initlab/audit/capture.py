"""Hooks that watch one forward and one backward pass and keep per-call statistics.

What is recorded. Every *leaf* module (no children) and every module that owns
parameters directly (``nn.MultiheadAttention``) is recorded each time it runs, in
execution order (a module called twice gives two records, ``name`` and ``name#2``).
Activation functions called in a ``forward`` outside any recorded module
(``F.relu(x)``, ``x.tanh()``) are recorded too, through a
:class:`torch.overrides.TorchFunctionMode` that is active during the forward pass only.

Hooks. One global forward pre-hook and one global forward hook
(``register_module_forward_*_hook``) serve every module of the model; they return at
once for any other module called meanwhile.

Forward statistics. A float32, contiguous CPU output (:func:`statistics.compiled_layout`)
is read in the hook, in place and before a later in-place operation
(``nn.ReLU(inplace=True)``, ``x += y``) can change it, by one call of the compiled kernel
(:func:`statistics.float32_pass`: sums in double, range, dead-unit maxima, saturated
count, a private subsample); for a layer with weight rows the same call measures the
weight, which the layer just read, and settles the symmetry check when, as usual, no two
units are alike (:func:`statistics.first_values_apart`'s rule: a compiled sort of the
units' first values), else the hook copies its unit vectors. The
rest waits until the end of the forward pass (or until :data:`PENDING_BYTES` of copies
wait), then runs in one loop (:meth:`Capture._finish_compiled`): the summaries (a sort of
each subsample, :func:`statistics.summaries_from_passes`), the norms of weights not measured
in the hook, and the symmetry checks left. Run back to back, these few functions cost
about a third of what they cost called between two layers of the model. Any other
output is copied by the hook (one memory pass over a tensor that is
still in cache) into a buffer shared by the outputs of the same shape and role
(same unit axis, activation checks, weight rows); when a buffer is full, and at the end
of the forward pass (:meth:`Capture.finish_forward`), the statistics of all the outputs
in it are computed together by the ``*_rows`` functions of
:mod:`initlab.audit.statistics`: a few vectorised ops per buffer instead of a few per
output. Buffers hold at most :data:`GROUP_BYTES` each; an output of
:data:`IMMEDIATE_NUMEL` elements or more is measured in the hook without a copy. Per-call
torch work runs on one intra-op thread (:func:`statistics.single_threaded`); a buffer's
reductions, each over megabytes, run on the caller's threads like the model. Gradients
are read by hooks on the autograd nodes that produced the recorded outputs
(:func:`statistics.norm_and_std`), registered after the forward pass where a layer reports
them (:meth:`Capture._hook_gradients`): such a hook receives the gradient w.r.t. the value
the output had when its module returned it, even after an in-place change.

All handles are removed by :meth:`Capture.close`, which the caller runs in ``finally``.
"""

from __future__ import annotations

import math
import weakref
from collections import Counter
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

_NO_UNITS = torch.zeros(0, dtype=torch.long)

GROUP_BYTES = 8 * 2**20
"""Size of the buffer holding copies of same-role outputs until their statistics are computed:
each vectorised op then serves many outputs (measured on a 50-layer MLP: 1 MB buffers ~8 %
slower, 32 MB no faster)."""

PENDING_BYTES = 64 * 2**20
"""Bound on the output copies waiting in all buffers together: past it, every buffer is
measured; and, separately, on the subsamples and unit-vector copies of the outputs whose
summaries and symmetry checks wait (:meth:`Capture._finish_compiled`)."""

IMMEDIATE_NUMEL = statistics.LARGE_NUMEL
"""Outputs with this many elements or more are measured in the hook, one at a time (no copy):
per-op overhead is negligible next to their memory passes. So is an output of which a
buffer would hold only one."""


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


def activation_key(module: nn.Module) -> tuple | None:
    """``(type, public attributes)`` of a module without parameters, buffers or children whose
    public attributes are all numbers, strings or None (``nn.ReLU``, ``nn.LeakyReLU(0.2)``):
    what :func:`module_activation` depends on, so modules with equal keys share its answer.
    None for any other module."""
    if module._parameters or module._buffers or module._modules:
        return None
    attributes = []
    for name, value in vars(module).items():
        if name.startswith("_"):
            continue
        if value is not None and not isinstance(value, (bool, int, float, str)):
            return None
        attributes.append((name, value))
    return type(module), tuple(attributes)


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
    when the module does not decide it (activations, dropout, functional calls). Decided by
    the module's class, once per class (:data:`_UNIT_AXES`)."""
    kind = type(module)
    if kind not in _UNIT_AXES:
        _UNIT_AXES[kind] = 1 if issubclass(kind, _CHANNEL_FIRST) else -1 if issubclass(kind, _LAST_AXIS) else None
    return _UNIT_AXES[kind]


_UNIT_AXES: dict[type, int | None] = {}
"""``unit_axis_of`` by module class (an ``isinstance`` walk over twenty classes costs a few
microseconds in a forward hook, once per recorded call)."""


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
    output: statistics.Summary | None
    dead: tuple[int, int] | None = None
    saturated_fraction: float | None = None
    duplicate_pairs: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, repr=False)
    symmetric_units: int | None = None
    grad_norm: float | None = None
    grad_std: float | None = None
    row_key: torch.Tensor | None = field(default=None, repr=False)
    gradient_node: Any = field(default=None, repr=False)  # the autograd node that produced the output
    output_nr: int = 0  # which of the node's outputs it is


@dataclass
class _Origin:
    """The producer of a tensor: a record index (-1 for the batch, whose std is known) and a
    weak reference to the tensor (to tell it from a later tensor at the same address). Weak:
    an output no one else reads (a Linear's output once its activation ran) is freed as in
    a plain forward pass, and its memory reused for the next layer's output."""

    index: int
    std: float | None
    tensor: weakref.ref = field(repr=False)


@dataclass(frozen=True)
class _Role:
    """What is measured on an output besides its summary; outputs of one shape and role
    share a buffer."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    device: torch.device
    unit_axis: int
    dies: bool
    bounds: tuple[float, float] | None
    weight_rows: bool


@dataclass
class _SymmetryCheck:
    """A symmetry check left for later: the record, a copy of its unit vectors ``(1, units, m)``,
    whether they hold the whole output, and their largest magnitude then (else None)."""

    record: Record
    vectors: torch.Tensor = field(repr=False)
    complete: bool
    scale: float | None


class _Group:
    """Copies of same-role outputs waiting for their statistics."""

    def __init__(self, role: _Role, capacity: int):
        self.role = role
        self.buffer = torch.empty((capacity, *role.shape), dtype=role.dtype, device=role.device)
        self.records: list[Record] = []


class _FunctionalActivations(TorchFunctionMode):
    """Records activation functions called outside recorded modules during the forward pass.

    The capture takes the mode off torch's mode stack while a recorded module runs, its
    forward hook included (:meth:`pause` / :meth:`resume`): nothing is recorded there, and
    every torch call and tensor method would pay for a Python ``__torch_function__`` round
    trip (measured ~3 ms of a 50-layer MLP's audit). ``__exit__`` pops the mode only if it
    is still on the stack (a module that raised leaves it paused).
    """

    def __init__(self, capture: "Capture"):
        super().__init__()
        self.capture = capture
        self.on_stack = False

    def __enter__(self) -> "_FunctionalActivations":
        super().__enter__()
        self.on_stack = True
        return self

    def __exit__(self, exc_type, exc_val, exc_tb) -> None:
        if self.on_stack:
            self.on_stack = False
            super().__exit__(exc_type, exc_val, exc_tb)

    def pause(self) -> bool:
        """Pop the mode if it is on top of the stack (a mode the model entered stays above
        it otherwise: then nothing changes); return whether it was popped."""
        depth = torch._C._len_torch_function_stack()
        if not self.on_stack or depth == 0 or torch._C._get_function_stack_at(depth - 1) is not self:
            return False
        torch._C._pop_torch_function_stack()
        self.on_stack = False
        return True

    def resume(self) -> None:
        """Push the mode back after :meth:`pause` returned True."""
        torch._C._push_on_torch_function_stack(self)
        self.on_stack = True

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
        self._mode: _FunctionalActivations | None = None
        self._mode_paused = False
        self._names = {module: name or "<model>" for name, module in model.named_modules()}
        self._calls: dict[nn.Module, int] = {}
        self._origins: dict[int, _Origin] = {}
        self._handles: list[Any] = []
        self._recorded: dict[nn.Module, bool] = {}
        self._groups: dict[_Role, _Group] = {}
        self._pending_bytes = 0
        self._activations: dict[nn.Module, Activation | None] = {}
        self._activation_kinds: dict[tuple, Activation | None] = {}
        self._passes: dict[int, statistics.Float32Pass] = {}
        self._symmetry_checks: list[_SymmetryCheck] = []
        self._deferred_bytes = 0
        self.weights: dict[int, nn.Parameter] = {}
        """``id(parameter) -> parameter``: the weights (parameters named ``*weight*``) of the recorded modules."""
        self.weight_moments: dict[int, tuple[float, float]] = {}
        """``id(parameter) -> (norm, std)`` of the weights of recorded modules
        (:func:`statistics.norm_and_std`): the float32 weight rows of a layer with a float32
        output in its forward hook (:meth:`_measure_compiled`), right after the layer read
        them; the others with the deferred statistics of the outputs
        (:meth:`_finish_compiled`), at the latest by :meth:`finish_forward`."""

    # ---------------------------------------------------------------- set-up
    def __enter__(self) -> "Capture":
        """Register one global forward pre-hook and one global forward hook (torch's
        ``register_module_forward_*_hook``): they act on this model's modules and return at
        once for any other module called meanwhile (a loss module, another model). Two
        registrations instead of two per module (a 50-layer MLP: ~1 ms of set-up and
        removal less); global hooks run before a module's own ones."""
        self._recorded = {module: self._is_recorded(module) for module in self._names}
        self._handles.append(nn.modules.module.register_module_forward_pre_hook(self._pre_hook))
        self._handles.append(nn.modules.module.register_module_forward_hook(self._post_hook))
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Remove every hook this capture registered (idempotent), and drop the functional-
        activation mode, which refers back to the capture: without that cycle the capture and
        its records are freed as soon as the audit no longer needs them, not by a later
        garbage collection."""
        while self._handles:
            self._handles.pop().remove()
        self._mode = None
        self._origins.clear()
        self._groups.clear()
        self._passes.clear()
        self._symmetry_checks.clear()
        self._deferred_bytes = 0

    @staticmethod
    def _is_recorded(module: nn.Module) -> bool:
        has_children = any(child is not None for child in module._modules.values())
        owns_parameters = any(parameter is not None for parameter in module._parameters.values())
        return not has_children or owns_parameters

    def functional_mode(self) -> TorchFunctionMode:
        """The mode to enter around the model's forward call (once per capture)."""
        self._mode = _FunctionalActivations(self)
        return self._mode

    def note_batch(self, batch: torch.Tensor) -> None:
        """Register the batch tensor as the origin (-1) of the first layer's input."""
        if batch.is_floating_point():
            std = statistics.tensor_std(batch) if batch.numel() > 1 else 0.0
            self._origins[id(batch)] = _Origin(-1, std, weakref.ref(batch))

    def finish_forward(self) -> None:
        """Compute the statistics of the outputs still in buffers, then each record's input std
        (the std of the output it reads). Run after the forward pass, before the backward pass."""
        with torch._C.DisableTorchFunction(), statistics.single_threaded():
            for group in list(self._groups.values()):
                self._flush(group)
            self._groups.clear()
            self._finish_compiled()
        for record in self.records:
            if record.input_std is None and record.source is not None and record.source >= 0:
                record.input_std = self.records[record.source].output.std
        self._hook_gradients()

    def _hook_gradients(self) -> None:
        """Register the gradient hooks whose figures a layer reports, on the autograd nodes
        that produced the outputs (``Node.register_prehook``, reading the output's slot).

        Every call's output gradient is read, except that of the first call of a two-call row
        (a Linear whose output only its activation reads) when the symmetry check found no
        pair there: a row reports its last call's output gradient, and each call's input
        gradient is the gradient of the output it reads. A hook on the producing node, not on
        the tensor, receives the gradient w.r.t. the value the output had when the module
        returned it, also when an in-place operation (``nn.ReLU(inplace=True)``, ``x += y``)
        changed it since, as a tensor hook registered in the forward hook would; registered
        here, after the forward pass and only where read, it costs no Python between two of
        the model's products (a 50-layer MLP: ~1 ms less than 101 tensor hooks)."""
        readers = Counter(record.source for record in self.records)
        unread = set()
        for row in rows(self.records):
            base = row[0]
            if (len(row) == 2 and readers[base.index] == 1
                    and base.duplicate_pairs is not None and len(base.duplicate_pairs[0]) == 0):
                unread.add(base.index)
        for record in self.records:
            if record.gradient_node is not None and record.index not in unread:
                self._handles.append(record.gradient_node.register_prehook(self._node_hook(record)))
            record.gradient_node = None

    # ---------------------------------------------------------------- hooks
    def _pre_hook(self, module: nn.Module, _inputs: Any) -> None:
        recorded = self._recorded.get(module)
        if recorded is None:
            return
        self.stack.append(self._names[module])
        if recorded:
            self.depth += 1
            if self.depth == 1 and self._mode is not None:
                self._mode_paused = self._mode.pause()

    def _post_hook(self, module: nn.Module, inputs: tuple, output: Any) -> None:
        recorded = self._recorded.get(module)
        if recorded is None:
            return
        self.stack.pop()
        if not recorded:
            return
        self.depth -= 1
        try:
            self._record_call(module, inputs, output)
        finally:
            if self.depth == 0 and self._mode_paused:
                self._mode_paused = False
                self._mode.resume()

    def _record_call(self, module: nn.Module, inputs: tuple, output: Any) -> None:
        """Record one call of a recorded module whose output is a floating tensor."""
        output_tensor = first_tensor(output)
        if output_tensor is None or not output_tensor.is_floating_point():
            return
        call = self._calls.get(module, 0) + 1
        self._calls[module] = call
        name = self._names[module] + (f"#{call}" if call > 1 else "")
        if module not in self._activations:
            self._activations[module] = self._module_activation(module)
        self.record(module, name, type(module).__name__, self._activations[module], first_tensor(inputs),
                    output_tensor, first_call=call == 1)

    def _module_activation(self, module: nn.Module) -> Activation | None:
        """:func:`module_activation`, resolved once per :func:`activation_key` (a deep MLP's
        ReLU modules all share one)."""
        key = activation_key(module)
        if key is None:
            return module_activation(module)
        if key not in self._activation_kinds:
            self._activation_kinds[key] = module_activation(module)
        return self._activation_kinds[key]

    # ------------------------------------------------------------- records
    def record(self, module: nn.Module | None, name: str, module_type: str, activation: Activation | None,
               input_tensor: torch.Tensor | None, output: torch.Tensor, *, first_call: bool = True) -> None:
        """Compute the forward statistics of one call and register its gradient hook.

        Runs with torch-function dispatch disabled: the statistics read plain detached
        tensors, and must not go through (or be recorded by) the functional-activation mode;
        and on one intra-op thread (:func:`statistics.single_threaded`) unless the output is
        read by the compiled kernel, which runs no torch op worth threads.
        """
        self.busy = True
        try:
            with torch._C.DisableTorchFunction():
                if statistics.compiled_layout(output):
                    self._record(module, name, module_type, activation, input_tensor, output, first_call)
                else:
                    with statistics.single_threaded():
                        self._record(module, name, module_type, activation, input_tensor, output, first_call)
        finally:
            self.busy = False

    def _record(self, module, name, module_type, activation, input_tensor, output, first_call) -> None:
        origin = self._origins.get(id(input_tensor)) if input_tensor is not None else None
        if origin is not None and origin.tensor() is not input_tensor:
            origin = None
        axis = unit_axis_of(module)
        if axis is None and origin is not None and origin.index >= 0:
            axis = self.records[origin.index].unit_axis
        axis = -1 if axis is None else axis
        if origin is not None:
            input_std = origin.std  # None for a record's output: set by finish_forward
        elif input_tensor is not None and input_tensor.is_floating_point() and input_tensor.numel() > 1:
            input_std = statistics.tensor_std(input_tensor)
        else:
            input_std = None
        record = Record(
            index=len(self.records), name=name, module_type=module_type, module=module, first_call=first_call,
            activation=activation, unit_axis=axis, source=None if origin is None else origin.index,
            input_std=input_std, output=None,
        )
        self.records.append(record)
        self._origins[id(output)] = _Origin(record.index, None, weakref.ref(output))
        if output.grad_fn is not None:  # its gradient hook waits for the end of the forward pass
            record.gradient_node, record.output_nr = output.grad_fn, output.output_nr
        elif output.requires_grad:  # a leaf passed through (nn.Identity on the batch): hook the tensor now
            self._handles.append(output.register_hook(self._gradient_hook(record)))
        if first_call and module is not None:
            for parameter_name, parameter in module._parameters.items():
                if parameter is not None and "weight" in parameter_name and id(parameter) not in self.weights:
                    self.weights[id(parameter)] = parameter
        self._measure(record, output.detach())

    @staticmethod
    def _role(record: Record, output: torch.Tensor) -> _Role:
        module, activation = record.module, record.activation
        dtype = torch.float32 if output.dtype in (torch.float16, torch.bfloat16) else output.dtype
        return _Role(
            shape=tuple(output.shape), dtype=dtype, device=output.device, unit_axis=record.unit_axis,
            dies=_can_die(activation), bounds=None if activation is None else activation.bounds,
            weight_rows=(has_weight_rows(module) and output.ndim >= 2
                         and module.weight.shape[0] == output.shape[record.unit_axis]),
        )

    def _measure(self, record: Record, output: torch.Tensor) -> None:
        """Copy ``output`` into the buffer of its role (measured when full), or measure it now."""
        if statistics.compiled_layout(output):
            self._measure_compiled(record, output)
            return
        role = self._role(record, output)
        module, dtype = record.module, role.dtype
        if role.weight_rows:  # the weight's share of the symmetry sort key, while the weight is in cache
            width = math.prod(module.weight.shape[1:]) + (module.bias is not None)
            columns = statistics.unit_vector_length(role.shape, role.unit_axis)
            direction = statistics.projection_direction(columns, width, self.seed, dtype)
            record.row_key = statistics.row_key(module.weight, module.bias, direction)
        numel = output.numel()
        capacity = GROUP_BYTES // max(1, numel * torch.finfo(dtype).bits // 8)
        if numel >= IMMEDIATE_NUMEL or numel == 0 or capacity < 2:
            with statistics.shared_threads(numel >= IMMEDIATE_NUMEL):
                self._measure_stack(role, [record], output.to(dtype).unsqueeze(0))
            return
        group = self._groups.get(role)
        if group is None:
            group = self._groups[role] = _Group(role, capacity)
        group.buffer[len(group.records)].copy_(output)
        group.records.append(record)
        self._pending_bytes += group.buffer[0].numel() * group.buffer.element_size()
        if len(group.records) == group.buffer.shape[0]:
            self._flush(group)
        if self._pending_bytes > PENDING_BYTES:  # many part-filled buffers (many output shapes)
            for pending in self._groups.values():
                self._flush(pending)

    def _flush(self, group: _Group) -> None:
        if group.records:
            with statistics.shared_threads():
                self._measure_stack(group.role, group.records, group.buffer[: len(group.records)])
            self._pending_bytes -= len(group.records) * group.buffer[0].numel() * group.buffer.element_size()
            group.records = []

    def _measure_stack(self, role: _Role, records: list[Record], stack: torch.Tensor) -> None:
        """Statistics of the outputs ``stack[k]`` of ``records[k]``, all of one role."""
        count = len(records)
        rows = stack.reshape(count, -1)
        highs = None
        if role.dies:
            if len(role.shape) < 2 or rows.shape[1] == 0:
                dead = [(0, 0)] * count
            else:
                maxima = statistics.unit_maxima_rows(stack, role.unit_axis)
                units = maxima.shape[1]
                dead = [(int(n), units) for n in (maxima <= 0).sum(dim=1).tolist()]
                highs = maxima.amax(dim=1).tolist()  # the row maxima, for the summaries
            for record, value in zip(records, dead):
                record.dead = value
        for record, summary in zip(records, statistics.summarize_rows(rows, highs=highs)):
            record.output = summary
        if role.bounds is not None:
            numel = rows.shape[1]
            counts = statistics.saturated_counts(rows, role.bounds, self.thresholds.saturation_margin)
            for record, near in zip(records, counts):
                record.saturated_fraction = near / numel if numel else float("nan")
        if role.weight_rows:
            vectors = statistics.unit_vectors_rows(stack, role.unit_axis)
            self._measure_symmetry(records, vectors, vectors[0].numel() == rows.shape[1])

    def _measure_compiled(self, record: Record, output: torch.Tensor) -> None:
        """Statistics of one float32 contiguous CPU output, read in place by the compiled
        kernel in the hook (no copy); NaN/inf sends it to :meth:`_measure_stack`. A layer with
        weight rows has its weight measured and its symmetry check settled by the same call
        when, as usual, no two units are alike (:func:`statistics.float32_pass`). The summary
        (a sort of the kernel's private subsample) and the symmetry checks left (on a copy of
        the unit vectors) wait for :meth:`_finish_compiled`. (Its :class:`_Role` is made
        only for those: a frozen dataclass costs microseconds in a hook.)"""
        module, activation, shape = record.module, record.activation, output.shape
        dies, bounds = _can_die(activation), None if activation is None else activation.bounds
        weight_rows = has_weight_rows(module) and len(shape) >= 2 and module.weight.shape[0] == shape[record.unit_axis]
        measure_units = dies and len(shape) >= 2
        units = inner = 1
        if measure_units or weight_rows:
            axis = record.unit_axis % len(shape)
            units, inner = shape[axis], math.prod(shape[axis + 1:])
        limits = None if bounds is None else statistics.saturation_limits(bounds, self.thresholds.saturation_margin)
        fused = weight_rows and statistics.compiled_layout(module.weight) and (
            module.bias is None or statistics.compiled_layout(module.bias))
        measured = statistics.float32_pass(
            output, units=units, inner=inner, limits=limits, unit_maxima=measure_units,
            weight=module.weight if fused else None, bias=module.bias if fused else None,
            rtol=self.thresholds.symmetry_rtol, symmetry_step=statistics.symmetry_step(shape, record.unit_axis)
            if fused else 0)
        if measured is None:
            self._measure_stack(self._role(record, output), [record], output.unsqueeze(0))
            return
        self._passes[record.index] = measured
        if measured.weight_moments is not None:
            self.weight_moments.setdefault(id(module.weight), measured.weight_moments)
        if dies:
            record.dead = (measured.dead, units) if measure_units else (0, 0)
        if bounds is not None:
            record.saturated_fraction = measured.near / output.numel()
        if weight_rows:
            self._check_symmetry_compiled(record, output, max(-measured.min, measured.max), measured.apart)
        self._deferred_bytes += measured.subsample.nbytes
        if self._deferred_bytes > PENDING_BYTES:
            self._finish_compiled()

    def _check_symmetry_compiled(self, record: Record, output: torch.Tensor, bound: float, apart: bool | None) -> None:
        """The symmetry check of a float32 output (largest magnitude ``bound``) in the hook:
        settled at once when no two units are alike in their sampled outputs (within
        ``2 rtol bound``) and weights (``apart``, else :func:`statistics.first_values_apart`:
        the usual case), else left for :meth:`_finish_compiled` on a copy of its unit vectors."""
        if apart is None:
            rtol, module = self.thresholds.symmetry_rtol, record.module
            moments = self.weight_moments.get(id(module.weight))  # its norm bounds its largest value
            apart = statistics.first_values_apart(output, record.unit_axis, 2.0 * rtol * bound, module.weight,
                                                  module.bias, rtol, None if moments is None else moments[0])
        if apart:
            record.duplicate_pairs = (_NO_UNITS, _NO_UNITS)
            record.symmetric_units = 0
            return
        vectors = statistics.unit_vectors_rows(output.unsqueeze(0), record.unit_axis)
        complete = vectors[0].numel() == output.numel()
        check = _SymmetryCheck(record, vectors.clone(), complete, bound if complete else None)
        self._symmetry_checks.append(check)
        self._deferred_bytes += check.vectors.numel() * check.vectors.element_size()

    def _finish_compiled(self) -> None:
        """The summaries and symmetry checks left by :meth:`_measure_compiled`, in one loop:
        the same few functions run back to back on private copies, instead of each between
        two layers of the model (measured ~3x faster per output on a 50-layer MLP). The
        symmetry checks left by the hook read the layer's weight and bias now."""
        summaries = statistics.summaries_from_passes(list(self._passes.values()))
        for index, summary in zip(self._passes, summaries):
            self.records[index].output = summary
        self._passes.clear()
        for key, weight in self.weights.items():
            if key not in self.weight_moments:
                self.weight_moments[key] = statistics.norm_and_std(weight)
        rtol = self.thresholds.symmetry_rtol
        for check in self._symmetry_checks:
            record, module = check.record, check.record.module
            moments = self.weight_moments.get(id(module.weight))
            if statistics.units_surely_distinct(check.vectors[0], module.weight, module.bias, rtol,
                                                check.scale, None if moments is None else moments[0]):
                record.duplicate_pairs = (_NO_UNITS, _NO_UNITS)
                record.symmetric_units = 0
            else:
                self._measure_symmetry([record], check.vectors, check.complete)
        self._symmetry_checks.clear()
        self._deferred_bytes = 0

    def _measure_symmetry(self, records: list[Record], vectors: torch.Tensor, complete: bool) -> None:
        """Pairs of identical units of the outputs of ``records`` (summaries known), from their
        unit vectors ``vectors[k]`` (:func:`statistics.unit_vectors_rows`); ``complete``: the
        vectors hold every value of the outputs."""
        scales = None  # the vectors' largest magnitude: the output's when they hold all of it
        if complete and not any(record.output.non_finite for record in records):
            scales = [max(-record.output.min, record.output.max) for record in records]
        pairs = statistics.duplicate_pairs_rows(
            vectors, [record.module.weight for record in records], [record.module.bias for record in records],
            self.thresholds.symmetry_rtol, self.seed, scales,
            None if records[0].row_key is None else [record.row_key for record in records])
        for record, found in zip(records, pairs):
            record.duplicate_pairs = found
            record.symmetric_units = len(found[0])
            record.row_key = None

    def _node_hook(self, record: Record):
        """A pre-hook of the node that produced ``record``'s output: measures that output's slot."""
        output_nr = record.output_nr

        def hook(gradients: tuple) -> None:
            if gradients[output_nr] is not None:
                self._measure_gradient(record, gradients[output_nr])
        return hook

    def _gradient_hook(self, record: Record):
        """A tensor hook on ``record``'s output (a leaf passed through a module)."""
        def hook(gradient: torch.Tensor) -> None:
            self._measure_gradient(record, gradient)
        return hook

    def _measure_gradient(self, record: Record, gradient: torch.Tensor) -> None:
        """Norm and std of the gradient w.r.t. a record's output, and how many of its symmetric
        pairs of units (if any) still have equal gradients."""
        symmetric = record.duplicate_pairs is not None and len(record.duplicate_pairs[0])
        if not symmetric and gradient.dtype is torch.float32 and gradient.is_cpu:  # one kernel pass, no torch op
            record.grad_norm, record.grad_std = statistics.norm_and_std(gradient)
            return
        gradient = gradient.detach()
        with statistics.single_threaded(), statistics.shared_threads(gradient.numel() >= IMMEDIATE_NUMEL):
            record.grad_norm, record.grad_std = statistics.norm_and_std(gradient)
            if symmetric:
                vectors = statistics.unit_vectors(gradient, record.unit_axis)
                record.symmetric_units = statistics.pairs_still_equal(
                    vectors, *record.duplicate_pairs, self.thresholds.symmetry_rtol)


def rows(records: list[Record]) -> list[list[Record]]:
    """Group each call with the activation applied right to its output (``Linear → ReLU``):
    the layers of the report."""
    grouped: list[list[Record]] = []
    for record in records:
        previous = grouped[-1] if grouped else None
        if (record.activation is not None and previous is not None and len(previous) == 1
                and previous[0].activation is None and record.source == previous[0].index):
            previous.append(record)
        else:
            grouped.append([record])
    return grouped


def _can_die(activation: Activation | None) -> bool:
    """ReLU and ReLU6 output exactly 0, with zero gradient, wherever their input is <= 0."""
    if activation is None:
        return False
    return activation.name == "relu" or (activation.name == "hardtanh" and activation.params.get("min_val") == 0.0)
