"""fan_in / fan_out for every weight layout, counted from the forward computation.

Conventions (``k`` = kernel sizes, ``prod(k)`` = receptive field):

==================  ============================  ========================  =========================
layout              weight shape                  fan_in                    fan_out
==================  ============================  ========================  =========================
``linear``          (out, in)                     in                        out
``linear_in_out``   (in, out)                     in                        out
``conv``            (out, in/groups, *k)          (in/groups)*prod(k)       (out/groups)*prod(k/s)
``conv_transpose``  (in, out/groups, *k)          (in/groups)*prod(k/s)     (out/groups)*prod(k)
``embedding``       (num, dim)                    num                       dim
``axes``            any, with in/out/batch axes   prod(in axes)*receptive   prod(out axes)*receptive
==================  ============================  ========================  =========================

fan_in is the number of inputs that one output unit sums over; fan_out the
number of outputs one input unit feeds. For a grouped convolution each
output channel sees only ``in/groups`` input channels and each input
channel feeds only ``out/groups`` output channels, so both fans are per
group (a depthwise conv has fan_in = fan_out = prod(k)). For a transposed
convolution with weight ``(in, out/groups, *k)`` the roles of the first two
axes are swapped with respect to a conv: an input channel feeds
``(out/groups)*prod(k)`` outputs.

Strides (``Layout(stride=s)``, one entry per spatial axis). A convolution
with stride ``s`` places its windows ``s`` apart, so an input position lies
in ``k/s`` windows per axis on average (``ceil`` or ``floor`` of it at each
position): its fan_out is ``(out/groups)*prod(k/s)``. A patch embedding
(kernel = stride) has fan_out = out, not ``out*k*k``. A transposed
convolution with stride ``s`` is the adjoint: each output position sums
``prod(k/s)`` taps of each input channel, so its fan_in is
``(in/groups)*prod(k/s)``. A fan that ``k/s`` makes fractional is kept as a
float (k = 3, s = 2: 1.5 windows per input position).

``linear_in_out`` is a linear map whose weight is stored transposed,
``(in, out)``, as in ``y = x @ W + b`` (Hugging Face ``Conv1D``, Keras
``Dense`` kernels).

Where torch differs. ``torch.nn.init._calculate_fan_in_and_fan_out`` reads
any weight as ``(out, in, *k)``: it computes fan_out = shape[0]*prod(k),
which over-counts a grouped conv's fan_out by the factor ``groups``
(pytorch/pytorch#23854), it swaps fan_in and fan_out of a transposed
conv (pytorch/pytorch#7865), and it ignores strides. ``layout_compat="torch"`` reproduces torch
exactly; the default ``"forward"`` counts as above. The embedding layout
follows JAX/Keras (in axis -2, out axis -1); torch's counting gives
fan_in = dim, fan_out = num.

Fused projections. ``blocks=b`` describes a weight made of ``b`` stacked
independent matrices along its output axis (``nn.MultiheadAttention``'s
``in_proj_weight`` is 3 stacked E x E blocks along its first axis; a fused
``(in, 3 E)`` ``linear_in_out`` weight has them along its second): fans are
those of one block.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from initlab.errors import InitlabError

LAYOUTS = ("linear", "linear_in_out", "conv", "conv_transpose", "embedding", "axes")
COMPATS = ("forward", "torch")


@dataclass(frozen=True)
class Fans:
    """Fan counts of one weight tensor (or of one block of a fused weight)."""

    fan_in: int | float
    fan_out: int | float
    receptive_field: int = 1

    def to_dict(self) -> dict:
        return {"fan_in": self.fan_in, "fan_out": self.fan_out, "receptive_field": self.receptive_field}


@dataclass(frozen=True)
class Layout:
    """How to read a weight tensor's axes.

    Args:
        kind: one of ``linear``, ``linear_in_out``, ``conv``, ``conv_transpose``, ``embedding``, ``axes``.
        groups: channel groups of a (transposed) convolution.
        stride: the strides of a (transposed) convolution, one per kernel axis or one for
            all (empty: all 1).
        in_axis, out_axis: for ``kind="axes"`` (Keras/JAX style): the input and
            output axes (int or tuple of ints); every other axis, except the
            batch axes, is a receptive-field axis.
        batch_axis: axes that index independent weights (ignored by fans).
        blocks: number of independent blocks stacked along the first axis.
        compat: ``"forward"`` (count from the computation) or ``"torch"``
            (reproduce ``torch.nn.init._calculate_fan_in_and_fan_out``).
    """

    kind: str = "linear"
    groups: int = 1
    in_axis: int | tuple[int, ...] = -2
    out_axis: int | tuple[int, ...] = -1
    batch_axis: tuple[int, ...] = field(default_factory=tuple)
    blocks: int = 1
    compat: str = "forward"
    stride: tuple[int, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.kind not in LAYOUTS:
            raise InitlabError(f"layout: kind={self.kind!r} is invalid; expected one of {', '.join(LAYOUTS)}.")
        if self.compat not in COMPATS:
            raise InitlabError(
                f"layout: layout_compat={self.compat!r} is invalid; expected one of {', '.join(COMPATS)}."
            )
        for argument, value in (("groups", self.groups), ("blocks", self.blocks)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InitlabError(f"layout: {argument}={value!r} is invalid; expected a positive integer.")
        stride = (self.stride,) if isinstance(self.stride, int) else self.stride
        if not isinstance(stride, (tuple, list)) or any(
            isinstance(step, bool) or not isinstance(step, int) or step < 1 for step in stride
        ):
            raise InitlabError(f"layout: stride={self.stride!r} is invalid; expected a tuple of positive integers.")
        object.__setattr__(self, "stride", tuple(stride) if any(step != 1 for step in stride) else ())

    def to_dict(self) -> dict:
        data: dict[str, object] = {"kind": self.kind}
        defaults = Layout()
        for name in ("groups", "in_axis", "out_axis", "batch_axis", "blocks", "compat", "stride"):
            value = getattr(self, name)
            if value != getattr(defaults, name):
                data[name] = list(value) if isinstance(value, tuple) else value
        return data


def as_layout(layout: str | Layout | None, shape: Sequence[int] | None = None, **options) -> Layout:
    """A :class:`Layout` from a name, a Layout, or None (inferred from the shape).

    ``None`` means ``linear`` for a 2-D shape and ``conv`` (torch's
    ``(out, in, *k)``) for more dimensions.
    """
    if isinstance(layout, Layout):
        return layout
    if layout is None:
        layout = "conv" if shape is not None and len(shape) > 2 else "linear"
    if not isinstance(layout, str):
        raise InitlabError(f"layout={layout!r} is invalid; expected one of {', '.join(LAYOUTS)} or a Layout.")
    if "layout_compat" in options:
        options["compat"] = options.pop("layout_compat")
    return Layout(kind=layout, **options)


def fans(shape: Sequence[int], layout: str | Layout | None = "linear", **options) -> Fans:
    """fan_in and fan_out of a weight of ``shape`` read with ``layout``.

    Args:
        shape: the weight's shape.
        layout: a layout name, a :class:`Layout`, or None to infer it.
        **options: Layout fields (``groups``, ``in_axis``, ``out_axis``,
            ``batch_axis``, ``blocks``, ``stride``, ``layout_compat``).

    Raises:
        InitlabError: for a shape with fewer than 2 dimensions, a zero-size
            dimension, groups/blocks that do not divide the channels, or
            strides that do not match the kernel's axes.
    """
    shape = tuple(int(size) for size in shape)
    spec = as_layout(layout, shape, **options)
    if len(shape) < 2:
        raise InitlabError(
            f"fans: shape={shape} has {len(shape)} dimension(s); a fan-based scheme needs a "
            f"tensor with 2 or more dimensions. Use zeros() or constant(value) for biases."
        )
    if any(size <= 0 for size in shape):
        raise InitlabError(
            f"fans: shape={shape} has a dimension of size 0, so fan_in or fan_out is 0; expected every dimension >= 1."
        )
    block_axis = 1 if spec.kind == "linear_in_out" else 0
    if shape[block_axis] % spec.blocks:
        raise InitlabError(
            f"fans: blocks={spec.blocks} does not divide the {('first', 'second')[block_axis]} dimension of "
            f"shape={shape}; "
            f"expected a fused weight of {spec.blocks} equal stacked blocks."
        )
    shape = shape[:block_axis] + (shape[block_axis] // spec.blocks,) + shape[block_axis + 1 :]
    if spec.compat == "torch":
        return _torch_fans(shape)
    if spec.kind == "axes":
        return _axes_fans(shape, spec)
    if spec.kind == "embedding":
        _expect_dims(shape, 2, spec.kind)
        return Fans(fan_in=shape[0], fan_out=shape[1])
    if spec.kind == "linear":
        _expect_dims(shape, 2, spec.kind)
        return Fans(fan_in=shape[1], fan_out=shape[0])
    if spec.kind == "linear_in_out":
        _expect_dims(shape, 2, spec.kind)
        return Fans(fan_in=shape[0], fan_out=shape[1])
    receptive = math.prod(shape[2:])
    covered = _windows_per_position(shape[2:], spec.stride, shape)
    if spec.kind == "conv":
        out_channels, in_per_group = shape[0], shape[1]
        _check_groups(out_channels, spec.groups, shape, "out_channels (dimension 0)")
        return Fans(in_per_group * receptive, _count(out_channels // spec.groups * covered), receptive)
    in_channels, out_per_group = shape[0], shape[1]
    _check_groups(in_channels, spec.groups, shape, "in_channels (dimension 0)")
    return Fans(_count(in_channels // spec.groups * covered), out_per_group * receptive, receptive)


def _windows_per_position(kernel: tuple[int, ...], stride: tuple[int, ...], shape: tuple[int, ...]) -> float:
    """prod(k_i / s_i): how many windows of a strided convolution cover one position, on average."""
    if not stride:
        return math.prod(kernel)
    if len(stride) == 1:
        stride = stride * len(kernel)
    if len(stride) != len(kernel):
        raise InitlabError(
            f"fans: stride={stride} has {len(stride)} entries but shape={shape} has {len(kernel)} kernel "
            f"axes; expected one stride per kernel axis."
        )
    return math.prod(size / step for size, step in zip(kernel, stride))


def _count(value: float) -> int | float:
    """An integer fan as an int, a fractional one (k/s not whole) as a float."""
    return round(value) if abs(value - round(value)) < 1e-9 else value


def _torch_fans(shape: tuple[int, ...]) -> Fans:
    """torch's ``_calculate_fan_in_and_fan_out``: (out, in, *k) whatever the layer."""
    receptive = math.prod(shape[2:])
    return Fans(shape[1] * receptive, shape[0] * receptive, receptive)


def _axes_fans(shape: tuple[int, ...], spec: Layout) -> Fans:
    """Keras/JAX ``_compute_fans``: explicit in/out/batch axes, the rest receptive."""
    ndim = len(shape)

    def normalise(axes) -> tuple[int, ...]:
        axes = (axes,) if isinstance(axes, int) else tuple(axes)
        result = []
        for axis in axes:
            if not -ndim <= axis < ndim:
                raise InitlabError(f"fans: axis {axis} is outside shape={shape}; expected -{ndim} <= axis < {ndim}.")
            result.append(axis % ndim)
        return tuple(result)

    in_axes, out_axes, batch_axes = (normalise(spec.in_axis), normalise(spec.out_axis), normalise(spec.batch_axis))
    if set(in_axes) & set(out_axes) or set(batch_axes) & (set(in_axes) | set(out_axes)):
        raise InitlabError(
            f"fans: in_axis={spec.in_axis!r}, out_axis={spec.out_axis!r} and "
            f"batch_axis={spec.batch_axis!r} overlap; expected disjoint axes."
        )
    receptive_axes = set(range(ndim)) - set(in_axes) - set(out_axes) - set(batch_axes)
    receptive = math.prod(shape[axis] for axis in receptive_axes)
    return Fans(
        math.prod(shape[axis] for axis in in_axes) * receptive,
        math.prod(shape[axis] for axis in out_axes) * receptive,
        receptive,
    )


def _expect_dims(shape: tuple[int, ...], ndim: int, kind: str) -> None:
    if len(shape) != ndim:
        raise InitlabError(
            f"fans: layout={kind!r} expects a {ndim}-D weight but shape={shape} has "
            f"{len(shape)} dimensions; use layout='conv' or explicit axes."
        )


def _check_groups(channels: int, groups: int, shape: tuple[int, ...], what: str) -> None:
    if channels % groups:
        raise InitlabError(
            f"fans: groups={groups} does not divide {what} = {channels} of shape={shape}; "
            f"expected a divisor of {channels}."
        )
