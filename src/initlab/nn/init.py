r"""A drop-in replacement for :mod:`torch.nn.init` (torch 2.13), drawn from initlab's streams.

Change one import — ``from torch.nn import init`` to ``from initlab.nn import init`` —
and every call keeps torch's name, signature, defaults, return value, error
types and warnings; what changes is how the random values are made: in
parallel from initlab's counter-based streams (:mod:`initlab.random`), so a
fill uses every core and its values never depend on ``torch.get_num_threads()``.
The distributions are the ones torch's documentation states.

Seeding (exactly)
-----------------
A call that fills at least one element with random values draws **one** value
from a torch generator::

    s = torch.empty((), dtype=torch.int64, device=gen.device).random_(generator=gen).item()

— a uniform integer in ``[0, 2**63)`` — from ``generator`` when it is given,
else from torch's default CPU generator (the one ``torch.manual_seed`` seeds).
The tensor is then filled from the stream ``initlab.random.Stream(s, "")``
(stream name ``""``): element ``i`` of the tensor, ``i`` its row-major flat
index in ``tensor.shape`` (whatever the strides), is the ``i``-th value of the
stream. So:

* ``torch.manual_seed(0); init.normal_(t)`` gives the same tensor every time,
  and two successive calls give different values, as with torch; a
  ``torch.Generator`` seeded ``k`` behaves the same way;
* the values depend only on ``s`` and the element index: not on
  ``torch.get_num_threads()``, ``INITLAB_FILL_THREADS``, strides or device;
* a call advances the generator by one 64-bit draw instead of one draw per
  element, so code that draws from the same generator *afterwards* sees other
  numbers than after ``torch.nn.init`` (the values themselves always differ
  from torch's: another algorithm, the same distribution).

What each function takes from the stream (``g_j`` is chunk ``j``'s generator,
``initlab.random.Stream.generator``; values are made in float32, or float64
for float64 tensors, then rounded to the tensor's dtype):

* ``uniform_(a, b)``: ``chunk.uniform_(a, b, generator=g_j)``; ``normal_(mean, std)``:
  ``chunk.normal_(mean, std, generator=g_j)`` (for ``a=0, b=1`` / ``mean=0, std=1``
  exactly the values of ``initlab.random.uniform_`` / ``normal_`` for float32 tensors);
  ``xavier_*`` and ``kaiming_*`` are these with their computed bounds/std.
* ``trunc_normal_``: ``initlab.random.truncated_normal_(t, Stream(s, ""), mean=mean,
  std=|std|, low=(a - mean)/|std|, high=(b - mean)/|std|)`` — exact rejection
  (interval mass >= 1/2) or a float64 inverse CDF (narrow or far-tail
  intervals); no value is clamped except that a value rounded past ``a`` or
  ``b`` (by the cast to float16/bfloat16, or by ``mean + low*std`` not
  rounding back to exactly ``a``) is set to the nearest representable value
  inside ``[a, b]``.
* ``orthogonal_``: the ``(max(r, c), min(r, c))`` matrix of standard normals of
  the stream gives the Householder vectors (see :func:`orthogonal_`).
* ``sparse_``: values as ``normal_(0, std)``; the zeros of each column are at
  the ``ceil(sparsity * rows)`` smallest keys of a ``(rows, cols)`` matrix of
  uniforms from ``Stream(s, "#mask")``.

Deterministic functions (``constant_``, ``ones_``, ``zeros_``, ``eye_``,
``dirac_``) and ``calculate_gain`` draw nothing and equal torch's exactly.

Where it hands over to torch
----------------------------
Tensors initlab does not fill are given to torch's own code, so they behave
exactly as with ``torch.nn.init``: non-tensors, tensor subclasses with a
``__torch_function__`` override (DTensor, sharded tensors, ...), calls made
under a ``TorchFunctionMode`` (except the device contexts of ``with
torch.device(...)`` and ``torch.set_default_device``, under which initlab
still fills), meta tensors, sparse layouts, and dtypes other than
float16/bfloat16/float32/float64 (integer tensors raise torch's
``NotImplementedError``). Handlers always receive torch's own function
objects, also while :func:`initlab.nn.use_initlab_init` is on. Tensors on another
device than the CPU are filled on the CPU and copied (reproducible, but no
faster than the device's own generator).

Fan counting
------------
By default (``fans="torch"``) ``xavier_*`` and ``kaiming_*`` count fans as
``torch.nn.init._calculate_fan_in_and_fan_out`` does: any weight read as
``(out, in, *kernel)``. That is a true drop-in, but it over-counts the fan_out
of a grouped convolution by ``groups`` and swaps the fans of a transposed
convolution. ``fans="forward"`` counts from the forward computation
(:func:`initlab.fans.fans`). A tensor alone cannot say that it is a grouped or
transposed convolution weight, so with ``fans="forward"`` say it:
``layout=`` (``"linear"``, ``"conv"``, ``"conv_transpose"``, ``"embedding"``
or an :class:`initlab.fans.Layout`) and ``groups=``. Without them a 2-D tensor
is read as ``linear`` and a larger one as an ungrouped ``conv`` — the same
counts as torch's, so ``fans="forward"`` alone changes nothing.

Other differences, all improvements of the same call: ``trunc_normal_`` is
exact at any std and bounds (torch's rejection and uniform-proposal sampler
also fails with ``a=-inf`` on a narrow interval); ``orthogonal_`` works on
float16/bfloat16 tensors and views (QR-free Householder construction in
float64 with exact matrix products: the same values at any thread count); ``sparse_`` draws its zero positions
from the ``generator`` too (torch's uses the global RNG for them).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Literal, TypeVar

import torch
import torch.nn.init as _torch_init
from torch import Tensor
from torch.utils._device import DeviceContext

from initlab import _compat
from initlab import random as _random
from initlab.errors import InitlabError
from initlab.fans import Layout
from initlab.fans import fans as _count_fans
from initlab.schemes.householder import FLOAT64_SLICES, orthonormal_columns

__all__ = [
    "calculate_gain",
    "uniform_",
    "normal_",
    "trunc_normal_",
    "constant_",
    "ones_",
    "zeros_",
    "eye_",
    "dirac_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "orthogonal_",
    "sparse_",
    # Deprecated aliases (for backward compatibility)
    "uniform",
    "normal",
    "constant",
    "eye",
    "dirac",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "orthogonal",
    "sparse",
]

_NonlinearityType = Literal[
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "selu",
]
_FanMode = Literal["fan_in", "fan_out"]
_FanCounting = Literal["torch", "forward"]

STREAM_NAME = ""
"""Name of the stream every call fills from (the seed is drawn per call)."""

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _torch_originals() -> dict[str, Callable]:
    """torch.nn.init's own public functions, captured when this module is imported."""
    originals = {}
    for name in _torch_init.__all__:
        function = getattr(_torch_init, name)
        owner = getattr(function, "__module__", None)
        if owner == __name__:  # re-imported while use_initlab_init() is on: it would call itself
            raise ImportError(
                f"initlab.nn.init: torch.nn.init.{name} is initlab's own function (use_initlab_init() is "
                f"active); restore the switch before re-importing initlab.nn.init."
            )
        if owner != "torch.nn.init":
            warnings.warn(
                f"initlab.nn.init: torch.nn.init.{name} had been replaced by {function!r} before initlab was "
                f"imported; inputs that initlab hands over to torch go to that function.",
                RuntimeWarning,
                stacklevel=2,
            )
        originals[name] = function
    return originals


TORCH_FUNCTIONS: dict[str, Callable] = _torch_originals()
"""The original ``torch.nn.init`` functions by name (used to hand over, and by the switch)."""


# --------------------------------------------------------------------------- helpers


def _plain_tensor_type(tensor: Tensor) -> bool:
    """Whether the tensor's type leaves ``__torch_function__`` alone (Tensor, Parameter, ...)."""
    handler = getattr(type(tensor), "__torch_function__", None)
    return handler is _compat.disabled_torch_function_impl() or (
        getattr(handler, "__func__", None) is getattr(Tensor.__torch_function__, "__func__", None)
    )


def _only_device_modes() -> bool:
    """Whether every active TorchFunctionMode is a ``torch.device(...)`` / default-device context."""
    stack = _compat.current_function_modes()
    if stack is None:
        return False
    return bool(stack) and all(isinstance(mode, DeviceContext) for mode in stack)


def _defer_to_torch(tensor) -> bool:
    """True for inputs torch must handle.

    Non-tensors, tensor subclasses that override ``__torch_function__``, and
    any call made under a TorchFunctionMode other than the device contexts of
    ``with torch.device(...)`` / ``torch.set_default_device`` (which initlab
    honours itself: its own scratch tensors are made on the CPU explicitly).
    """
    if not isinstance(tensor, Tensor):
        return True
    if not torch.overrides.has_torch_function_variadic(tensor):
        return False
    return not (_plain_tensor_type(tensor) and _only_device_modes())


_DISPATCHING = ("uniform_", "normal_", "constant_", "kaiming_uniform_")
"""torch.nn.init functions that hand ``__torch_function__`` subclasses to their handler."""


def _torch_call(name: str, tensor, **arguments):
    """Call torch's own ``name``, exactly as ``torch.nn.init.<name>`` would run.

    For the functions that dispatch ``__torch_function__`` the handler receives
    torch's original function object (never the initlab one that the switch
    may have put in its place), so handlers keyed on it keep working.
    """
    function = TORCH_FUNCTIONS[name]
    if name in _DISPATCHING and isinstance(tensor, Tensor) and torch.overrides.has_torch_function_variadic(tensor):
        return torch.overrides.handle_torch_function(function, (tensor,), tensor=tensor, **arguments)
    return function(tensor, **arguments)


def _initlab_fills(tensor: Tensor) -> bool:
    """Whether initlab's streams fill this tensor (else torch's own in-place method does)."""
    return (
        tensor.dtype in _FLOAT_DTYPES
        and tensor.layout == torch.strided
        and not tensor.is_meta
        and not _defer_to_torch(tensor)
    )


def _values_dtype(tensor: Tensor) -> torch.dtype:
    """Dtype the stream values are made in: float64 for float64 tensors, else float32."""
    return torch.float64 if tensor.dtype == torch.float64 else torch.float32


def _check_generator(tensor: Tensor, generator) -> None:
    """torch's own checks of ``generator`` (type, device) for this tensor; draws nothing."""
    if generator is not None:
        torch.empty(0, dtype=tensor.dtype, device=tensor.device).normal_(generator=generator)


def draw_seed(generator: torch.Generator | None = None) -> int:
    """The stream seed of one call: one int64 in [0, 2**63) drawn from ``generator``.

    ``generator=None`` draws from torch's default CPU generator, so
    ``torch.manual_seed`` makes the following calls reproducible.
    """
    if generator is None:
        return int(torch.empty((), dtype=torch.int64, device="cpu").random_().item())
    device = generator.device if isinstance(generator, torch.Generator) else "cpu"
    return int(torch.empty((), dtype=torch.int64, device=device).random_(generator=generator).item())


def _stream_fill(tensor: Tensor, kernel: _random.Kernel, generator) -> Tensor:
    """Fill a tensor initlab fills, from a fresh stream seeded by ``generator``."""
    if tensor.numel() == 0:
        return tensor
    stream = _random.Stream(draw_seed(generator), STREAM_NAME)
    with torch.no_grad(), _no_function_modes():
        _random.fill_(tensor.detach(), stream, kernel, dtype=_values_dtype(tensor))
    return tensor


def _uniform_fill(tensor: Tensor, a: float, b: float, generator) -> Tensor:
    """U(a, b) into ``tensor``: torch's argument checks, initlab's values."""
    if not _initlab_fills(tensor):
        with torch.no_grad():
            return tensor.uniform_(a, b, generator=generator)
    # torch's own checks of the bounds for this dtype and of the generator (an empty tensor draws nothing)
    torch.empty(0, dtype=tensor.dtype, device=tensor.device).uniform_(a, b, generator=generator)
    return _stream_fill(tensor, _random.uniform_kernel(float(a), float(b)), generator)


def _normal_fill(tensor: Tensor, mean: float, std: float, generator) -> Tensor:
    """N(mean, std^2) into ``tensor``: torch's argument checks, initlab's values."""
    if not _initlab_fills(tensor):
        with torch.no_grad():
            return tensor.normal_(mean, std, generator=generator)
    torch.empty(0, dtype=tensor.dtype, device=tensor.device).normal_(mean, std, generator=generator)
    return _stream_fill(tensor, _random.normal_kernel(float(mean), float(std)), generator)


def _no_function_modes():
    """Run initlab.random's code with TorchFunctionModes off (its scratch tensors stay on the CPU)."""
    return _compat.torch_function_disabled()


# --------------------------------------------------------------------------- gain and fans


def calculate_gain(nonlinearity: _NonlinearityType, param: int | float | None = None) -> float:
    r"""Return the recommended gain value for the given nonlinearity function.

    Same values, return types and errors as ``torch.nn.init.calculate_gain``:

    ================= ====================================================
    nonlinearity      gain
    ================= ====================================================
    Linear / Identity :math:`1`
    Conv{1,2,3}D      :math:`1`
    Sigmoid           :math:`1`
    Tanh              :math:`\frac{5}{3}`
    ReLU              :math:`\sqrt{2}`
    Leaky Relu        :math:`\sqrt{\frac{2}{1 + \text{negative\_slope}^2}}`
    SELU              :math:`\frac{3}{4}`
    ================= ====================================================

    Args:
        nonlinearity: the non-linear function (``nn.functional`` name).
        param: optional parameter for the non-linear function (leaky_relu's
            negative slope, default 0.01; must be an int or float, not a bool).

    Raises:
        ValueError: for an unknown nonlinearity or a leaky_relu slope that is
            not an int/float.
    """
    linear_fns = [
        "linear",
        "conv1d",
        "conv2d",
        "conv3d",
        "conv_transpose1d",
        "conv_transpose2d",
        "conv_transpose3d",
    ]
    if nonlinearity in linear_fns or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            negative_slope = 0.01
        elif (not isinstance(param, bool) and isinstance(param, int)) or isinstance(param, float):
            negative_slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + negative_slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4  # torch's empirical value (pytorch/pytorch#50664)
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    """torch's fan convention: any weight read as ``(out, in, *kernel)``."""
    if tensor.dim() < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 dimensions")
    receptive_field_size = math.prod(tensor.shape[2:])
    return tensor.size(1) * receptive_field_size, tensor.size(0) * receptive_field_size


def _calculate_correct_fan(tensor: Tensor, mode: _FanMode) -> int:
    lowered = mode.lower()
    valid_modes = ["fan_in", "fan_out"]
    if lowered not in valid_modes:
        raise ValueError(f"Mode {lowered} not supported, please use one of {valid_modes}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if lowered == "fan_in" else fan_out


def _fan_pair(tensor: Tensor, fans: str, layout: str | Layout | None, groups: int, where: str) -> tuple[float, float]:
    """(fan_in, fan_out) by torch's convention or counted from the forward computation."""
    if fans == "torch":
        if layout is not None or groups != 1:
            raise InitlabError(
                f"{where}: layout={layout!r}, groups={groups!r} apply only with fans='forward'; "
                f"fans='torch' reads every weight as (out, in, *kernel). Pass fans='forward'."
            )
        return _calculate_fan_in_and_fan_out(tensor)
    if fans != "forward":
        raise InitlabError(
            f"{where}: fans={fans!r} is invalid; expected 'torch' (torch's convention, the default) "
            f"or 'forward' (counted from the forward computation, initlab.fans)."
        )
    if tensor.dim() < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 dimensions")
    if isinstance(layout, Layout):
        if groups != 1:
            raise InitlabError(f"{where}: groups={groups!r} was given with a Layout object; put groups in the Layout.")
        spec = layout
    else:
        kind = layout if layout is not None else ("conv" if tensor.dim() > 2 else "linear")
        if groups != 1 and kind not in ("conv", "conv_transpose"):
            raise InitlabError(
                f"{where}: groups={groups!r} is invalid with layout={kind!r}; groups apply to "
                f"layout='conv' or 'conv_transpose'."
            )
        try:
            spec = Layout(kind=kind, groups=groups)
        except InitlabError as error:
            raise InitlabError(f"{where}: " + str(error).removeprefix("layout: ")) from None
    try:
        counted = _count_fans(tuple(tensor.shape), spec)
    except InitlabError as error:
        raise InitlabError(f"{where}: " + str(error).removeprefix("fans: ")) from None
    return counted.fan_in, counted.fan_out


def _is_default_fans(fans, layout, groups) -> bool:
    return fans == "torch" and layout is None and groups == 1


# --------------------------------------------------------------------------- random fills


def uniform_(
    tensor: Tensor,
    a: float = 0.0,
    b: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Fill the input Tensor with values drawn from the uniform distribution.

    :math:`\mathcal{U}(a, b)`.

    Args:
        tensor: an n-dimensional `torch.Tensor`
        a: the lower bound of the uniform distribution
        b: the upper bound of the uniform distribution
        generator: the torch Generator the stream seed is drawn from (default:
            torch's default CPU generator); see the module note.

    Examples:
        >>> w = torch.empty(3, 5)
        >>> init.uniform_(w)
    """
    if _defer_to_torch(tensor):
        return _torch_call("uniform_", tensor, a=a, b=b, generator=generator)
    return _uniform_fill(tensor, a, b, generator)


def normal_(
    tensor: Tensor,
    mean: float = 0.0,
    std: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Fill the input Tensor with values drawn from the normal distribution.

    :math:`\mathcal{N}(\text{mean}, \text{std}^2)`.

    Args:
        tensor: an n-dimensional `torch.Tensor`
        mean: the mean of the normal distribution
        std: the standard deviation of the normal distribution
        generator: the torch Generator the stream seed is drawn from (default:
            torch's default CPU generator); see the module note.

    Examples:
        >>> w = torch.empty(3, 5)
        >>> init.normal_(w)
    """
    if _defer_to_torch(tensor):
        return _torch_call("normal_", tensor, mean=mean, std=std, generator=generator)
    return _normal_fill(tensor, mean, std, generator)


def trunc_normal_(
    tensor: Tensor,
    mean: float = 0.0,
    std: float = 1.0,
    a: float = -2.0,
    b: float = 2.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Fill the input Tensor with values drawn from a truncated normal distribution.

    The values follow :math:`\mathcal{N}(\text{mean}, \text{std}^2)` restricted
    to :math:`[a, b]` — ``a`` and ``b`` are absolute bounds, as in torch.
    Unlike torch's sampler the result is exact for any ``mean``, ``std`` and
    bounds: rejection from the normal when ``[a, b]`` holds at least half the
    mass, else the inverse CDF in float64 (log-space in the tails). Every value
    lies in ``[a, b]`` in the tensor's dtype (float16/bfloat16 included); none
    is clamped to a bound.

    Same warnings and errors as torch: a ``UserWarning`` when ``mean`` is more
    than 2 std outside ``[a, b]``, ``ZeroDivisionError`` for ``std=0``,
    ``RuntimeError`` for ``a > b`` or NaN bounds. A negative ``std`` acts as
    ``|std|`` and ``a == b`` fills ``a`` (as torch's sampler does). With a
    non-finite ``mean`` or ``std`` torch's sampler degenerates to
    :math:`\mathcal{U}(a, b)`; so does this one.

    Args:
        tensor: an n-dimensional `torch.Tensor`
        mean: the mean of the normal distribution
        std: the standard deviation of the normal distribution
        a: the minimum cutoff value
        b: the maximum cutoff value
        generator: the torch Generator the stream seed is drawn from.

    Examples:
        >>> w = torch.empty(3, 5)
        >>> init.trunc_normal_(w)
    """
    if _defer_to_torch(tensor) or tensor.is_meta or not _initlab_fills(tensor):
        return _torch_call("trunc_normal_", tensor, mean=mean, std=std, a=a, b=b, generator=generator)
    if (mean < a - 2 * std) or (mean > b + 2 * std):
        warnings.warn(
            "mean is more than 2 std from [a, b] in nn.init.trunc_normal_. "
            "initlab samples this case exactly (inverse CDF in float64); check that the bounds are intended.",
            stacklevel=2,
        )
    # the same arithmetic as torch's, so std=0 raises ZeroDivisionError and strings TypeError
    low, high = (a - mean) / std, (b - mean) / std
    if not a <= b:
        # a > b or NaN bounds: torch's sampler fails in uniform_(a, b); same error here
        torch.empty(0, dtype=tensor.dtype, device=tensor.device).uniform_(a, b)
        raise RuntimeError(f"trunc_normal_ expects a <= b, but found a={a} > b={b}")
    if not (math.isfinite(mean) and math.isfinite(std)):
        return _uniform_fill(tensor, a, b, generator)
    if a == b:
        _check_generator(tensor, generator)
        with torch.no_grad():
            tensor.detach().fill_(a)
        return tensor
    _check_generator(tensor, generator)
    if tensor.numel() == 0:
        return tensor
    if std < 0:
        std, low, high = -std, -low, -high
    stream = _random.Stream(draw_seed(generator), STREAM_NAME)
    with torch.no_grad(), _no_function_modes():
        target = tensor.detach()
        _random.truncated_normal_(target, stream, mean=float(mean), std=float(std), low=low, high=high)
        # the foundation bounds values by mean + low*std; make sure rounding never crosses a or b
        if mean + low * std != a or mean + high * std != b:
            target.clamp_(
                _random.inner_bound(float(a), tensor.dtype, up=True),
                _random.inner_bound(float(b), tensor.dtype, up=False),
            )
    return tensor


# --------------------------------------------------------------------------- deterministic fills


def constant_(tensor: Tensor, val: float) -> Tensor:
    r"""Fill the input Tensor with the value :math:`\text{val}`.

    Args:
        tensor: an n-dimensional `torch.Tensor`
        val: the value to fill the tensor with

    Examples:
        >>> w = torch.empty(3, 5)
        >>> init.constant_(w, 0.3)
    """
    if _defer_to_torch(tensor):
        return _torch_call("constant_", tensor, val=val)
    with torch.no_grad():
        return tensor.fill_(val)


def ones_(tensor: Tensor) -> Tensor:
    r"""Fill the input Tensor with the scalar value `1`.

    Args:
        tensor: an n-dimensional `torch.Tensor`
    """
    if _defer_to_torch(tensor):
        return _torch_call("ones_", tensor)
    with torch.no_grad():
        return tensor.fill_(1.0)


def zeros_(tensor: Tensor) -> Tensor:
    r"""Fill the input Tensor with the scalar value `0`.

    Args:
        tensor: an n-dimensional `torch.Tensor`
    """
    if _defer_to_torch(tensor):
        return _torch_call("zeros_", tensor)
    with torch.no_grad():
        return tensor.zero_()


def eye_(tensor: Tensor) -> Tensor:
    r"""Fill the 2-dimensional input `Tensor` with the identity matrix.

    Preserves the identity of the inputs in `Linear` layers, where as many
    inputs are preserved as possible (ones on the main diagonal of a
    rectangular matrix).

    Args:
        tensor: a 2-dimensional `torch.Tensor`

    Raises:
        ValueError: if the tensor does not have exactly 2 dimensions.
    """
    if _defer_to_torch(tensor):
        return _torch_call("eye_", tensor)
    if tensor.ndimension() != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    with torch.no_grad():
        tensor.zero_()
        tensor.diagonal().fill_(1)
    return tensor


def dirac_(tensor: Tensor, groups: int = 1) -> Tensor:
    r"""Fill the {3, 4, 5}-dimensional input `Tensor` with the Dirac delta function.

    Preserves the identity of the inputs in `Convolutional` layers, where as
    many input channels are preserved as possible: within each of ``groups``
    groups, output channel ``g * out_per_group + d`` copies input channel
    ``d`` at the kernel centre (``size // 2`` in each spatial dim), for
    ``d < min(out_per_group, in_channels_per_group)``.

    Args:
        tensor: a {3, 4, 5}-dimensional `torch.Tensor`
        groups (int, optional): number of groups in the conv layer (default: 1)

    Raises:
        ValueError: for other dimensions, or ``groups`` not dividing dim 0.
    """
    if _defer_to_torch(tensor):
        return _torch_call("dirac_", tensor, groups=groups)
    dimensions = tensor.ndimension()
    if dimensions not in [3, 4, 5]:
        raise ValueError("Only tensors with 3, 4, or 5 dimensions are supported")
    sizes = tensor.size()
    if sizes[0] % groups != 0:
        raise ValueError("dim 0 must be divisible by groups")
    if tensor.is_meta:
        return tensor
    out_chans_per_grp = sizes[0] // groups
    min_dim = min(out_chans_per_grp, sizes[1])
    with torch.no_grad():
        tensor.zero_()
        if groups > 0 and min_dim > 0:
            channel = torch.arange(min_dim, device=tensor.device)
            group = torch.arange(groups, device=tensor.device)
            rows = (group.unsqueeze(1) * out_chans_per_grp + channel).reshape(-1)
            cols = channel.repeat(groups)
            centre = tuple(torch.full_like(rows, size // 2) for size in sizes[2:])
            tensor[(rows, cols) + centre] = 1
    return tensor


# --------------------------------------------------------------------------- fan-based fills


def xavier_uniform_(
    tensor: Tensor,
    gain: float = 1.0,
    generator: torch.Generator | None = None,
    *,
    fans: _FanCounting = "torch",
    layout: str | Layout | None = None,
    groups: int = 1,
) -> Tensor:
    r"""Fill the input `Tensor` with values using a Xavier uniform distribution.

    :math:`\mathcal{U}(-a, a)` with
    :math:`a = \text{gain} \times \sqrt{6 / (\text{fan\_in} + \text{fan\_out})}`.

    Reference: Glorot & Bengio (2010), "Understanding the difficulty of
    training deep feedforward neural networks".

    Args:
        tensor: an n-dimensional `torch.Tensor`
        gain: an optional scaling factor
        generator: the torch Generator the stream seed is drawn from.
        fans: ``"torch"`` (default: torch's ``(out, in, *kernel)`` convention)
            or ``"forward"`` (counted from the forward computation; see the
            module note). Keyword only, initlab extension.
        layout, groups: with ``fans="forward"``: the weight's layout and the
            convolution's groups.
    """
    if _defer_to_torch(tensor) and _is_default_fans(fans, layout, groups):
        return _torch_call("xavier_uniform_", tensor, gain=gain, generator=generator)
    if tensor.numel() == 0 and fans == "forward":
        return tensor
    fan_in, fan_out = _fan_pair(tensor, fans, layout, groups, "xavier_uniform_")
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    a = math.sqrt(3.0) * std
    return _uniform_fill(tensor, -a, a, generator)


def xavier_normal_(
    tensor: Tensor,
    gain: float = 1.0,
    generator: torch.Generator | None = None,
    *,
    fans: _FanCounting = "torch",
    layout: str | Layout | None = None,
    groups: int = 1,
) -> Tensor:
    r"""Fill the input `Tensor` with values using a Xavier normal distribution.

    :math:`\mathcal{N}(0, \text{std}^2)` with
    :math:`\text{std} = \text{gain} \times \sqrt{2 / (\text{fan\_in} + \text{fan\_out})}`.

    Reference: Glorot & Bengio (2010).

    Args:
        tensor: an n-dimensional `torch.Tensor`
        gain: an optional scaling factor
        generator: the torch Generator the stream seed is drawn from.
        fans, layout, groups: as in :func:`xavier_uniform_`.
    """
    if _defer_to_torch(tensor) and _is_default_fans(fans, layout, groups):
        return _torch_call("xavier_normal_", tensor, gain=gain, generator=generator)
    if tensor.numel() == 0 and fans == "forward":
        return tensor
    fan_in, fan_out = _fan_pair(tensor, fans, layout, groups, "xavier_normal_")
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return _normal_fill(tensor, 0.0, std, generator)


def _kaiming_std(tensor, a, mode, nonlinearity, fans, layout, groups, where) -> float:
    fan: float
    if _is_default_fans(fans, layout, groups):
        fan = _calculate_correct_fan(tensor, mode)
    else:
        mode = mode.lower()
        valid_modes = ["fan_in", "fan_out"]
        if mode not in valid_modes:
            raise ValueError(f"Mode {mode} not supported, please use one of {valid_modes}")
        fan_in, fan_out = _fan_pair(tensor, fans, layout, groups, where)
        fan = fan_in if mode == "fan_in" else fan_out
    gain = calculate_gain(nonlinearity, a)
    return gain / math.sqrt(fan)


def kaiming_uniform_(
    tensor: Tensor,
    a: float = 0,
    mode: _FanMode = "fan_in",
    nonlinearity: _NonlinearityType = "leaky_relu",
    generator: torch.Generator | None = None,
    *,
    fans: _FanCounting = "torch",
    layout: str | Layout | None = None,
    groups: int = 1,
) -> Tensor:
    r"""Fill the input `Tensor` with values using a Kaiming uniform distribution.

    :math:`\mathcal{U}(-\text{bound}, \text{bound})` with
    :math:`\text{bound} = \text{gain} \times \sqrt{3 / \text{fan\_mode}}`.

    Reference: He, Zhang, Ren, Sun (2015), "Delving deep into rectifiers".

    Args:
        tensor: an n-dimensional `torch.Tensor`
        a: the negative slope of the rectifier used after this layer (only
            used with ``'leaky_relu'``)
        mode: ``'fan_in'`` (default) preserves the forward variance,
            ``'fan_out'`` the backward one.
        nonlinearity: the non-linear function (``nn.functional`` name).
        generator: the torch Generator the stream seed is drawn from.
        fans: ``"torch"`` (default) or ``"forward"``; see the module note.
        layout, groups: with ``fans="forward"``: the weight's layout and the
            convolution's groups (e.g. ``fans="forward", groups=conv.groups``).

    Warns:
        UserWarning: on a zero-element tensor (a no-op), as torch.
    """
    if _defer_to_torch(tensor) and _is_default_fans(fans, layout, groups):
        return _torch_call("kaiming_uniform_", tensor, a=a, mode=mode, nonlinearity=nonlinearity, generator=generator)
    if 0 in tensor.shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=2)
        return tensor
    std = _kaiming_std(tensor, a, mode, nonlinearity, fans, layout, groups, "kaiming_uniform_")
    bound = math.sqrt(3.0) * std
    return _uniform_fill(tensor, -bound, bound, generator)


def kaiming_normal_(
    tensor: Tensor,
    a: float = 0,
    mode: _FanMode = "fan_in",
    nonlinearity: _NonlinearityType = "leaky_relu",
    generator: torch.Generator | None = None,
    *,
    fans: _FanCounting = "torch",
    layout: str | Layout | None = None,
    groups: int = 1,
) -> Tensor:
    r"""Fill the input `Tensor` with values using a Kaiming normal distribution.

    :math:`\mathcal{N}(0, \text{std}^2)` with
    :math:`\text{std} = \text{gain} / \sqrt{\text{fan\_mode}}`.

    Reference: He, Zhang, Ren, Sun (2015), "Delving deep into rectifiers", eq. 10.

    Args:
        tensor, a, mode, nonlinearity, generator, fans, layout, groups: as in
            :func:`kaiming_uniform_`.

    Warns:
        UserWarning: on a zero-element tensor (a no-op), as torch.
    """
    if _defer_to_torch(tensor) and _is_default_fans(fans, layout, groups):
        return _torch_call("kaiming_normal_", tensor, a=a, mode=mode, nonlinearity=nonlinearity, generator=generator)
    if 0 in tensor.shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=2)
        return tensor
    std = _kaiming_std(tensor, a, mode, nonlinearity, fans, layout, groups, "kaiming_normal_")
    return _normal_fill(tensor, 0, std, generator)


# --------------------------------------------------------------------------- structured fills


def haar_householder(rows: int, cols: int, seed: int, dtype: torch.dtype, gain: float = 1.0) -> Tensor:
    """``gain`` times a Haar-distributed ``(rows, cols)`` float64 matrix with orthonormal columns (rows >= cols).

    Stewart's construction (:mod:`initlab.schemes.householder`): the
    Householder vector ``k`` of the QR decomposition of a Gaussian matrix
    ``G`` is a function of a fresh standard normal vector of length
    ``rows - k`` (rotational invariance), so ``Q`` is built from the
    reflectors of the columns ``x_k = G[k:, k]`` directly — ``beta_k =
    -sign(x_k[0]) ||x_k||``, ``tau_k = (beta_k - x_k[0]) / beta_k``, ``v_k =
    x_k / (x_k[0] - beta_k)`` (LAPACK's ``larfg``) — then ``Q = H_1 ...
    H_cols`` (``orgqr``) times ``diag(sign(beta_k))``, the sign correction
    that makes Q Haar. Same distribution as QR of a Gaussian matrix, without
    the factorization. ``G`` is the stream ``Stream(seed, "")`` laid out as
    ``(rows, cols)``, made in ``dtype``. The products are computed exactly
    (integer operands in float64), so the values do not depend on the
    thread count; accurate to float64 rounding for float64, else to ~1e-7.

    Reference: Stewart (1980), "The efficient generation of random orthogonal
    matrices with an application to condition estimators"; Mezzadri (2007).
    """
    gaussian = torch.empty((rows, cols), dtype=dtype, device="cpu")
    with _no_function_modes():
        _random.fill_(gaussian, _random.Stream(seed, STREAM_NAME), _random.normal_kernel(0.0, 1.0), dtype=dtype)
        q = orthonormal_columns(gaussian[None], slices=FLOAT64_SLICES if dtype == torch.float64 else 1)[0]
        return q.mul_(gain)


def orthogonal_(
    tensor: Tensor,
    gain: float = 1,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Fill the input `Tensor` with a (semi) orthogonal matrix, times ``gain``.

    The tensor (at least 2-D; trailing dimensions flattened to
    ``(rows, cols)``) gets orthonormal rows when ``rows < cols`` and
    orthonormal columns otherwise, Haar-distributed as with torch (QR of a
    Gaussian matrix with the signs of R's diagonal moved into Q). Built
    without a QR factorization (:func:`haar_householder`), in float64 with
    exact matrix products, so the values do not depend on the thread count and
    float16/bfloat16 tensors work too (torch's QR does not support them);
    views are written in place.

    Reference: Saxe, McClelland, Ganguli (2014), "Exact solutions to the
    nonlinear dynamics of learning in deep linear neural networks".

    Args:
        tensor: an n-dimensional `torch.Tensor`, where :math:`n \geq 2`
        gain: optional scaling factor
        generator: the torch Generator the stream seed is drawn from.

    Raises:
        ValueError: for a tensor with fewer than 2 dimensions.
    """
    if _defer_to_torch(tensor):
        return _torch_call("orthogonal_", tensor, gain=gain, generator=generator)
    if tensor.ndimension() < 2:
        raise ValueError("Only tensors with 2 or more dimensions are supported")
    if tensor.numel() == 0 or tensor.is_meta:
        return tensor
    if not _initlab_fills(tensor):
        return _torch_call("orthogonal_", tensor, gain=gain, generator=generator)
    _check_generator(tensor, generator)
    rows = tensor.size(0)
    cols = tensor.numel() // rows
    q = haar_householder(max(rows, cols), min(rows, cols), draw_seed(generator), _values_dtype(tensor), gain)
    if rows < cols:
        q = q.t()
    with torch.no_grad():
        tensor.detach().copy_(q.reshape(tensor.shape))
    return tensor


def sparse_(
    tensor: Tensor,
    sparsity: float,
    std: float = 0.01,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Fill the 2D input `Tensor` as a sparse matrix.

    In every column ``ceil(sparsity * rows)`` entries (Python-slice semantics
    for out-of-range counts, as torch) are zero, chosen uniformly at random;
    the others are :math:`\mathcal{N}(0, \text{std}^2)`.

    Reference: Martens (2010), "Deep learning via Hessian-free optimization".

    Args:
        tensor: a 2-dimensional `torch.Tensor`
        sparsity: The fraction of elements in each column to be set to zero
        std: the standard deviation of the normal distribution used to generate
            the non-zero values
        generator: the torch Generator the stream seed is drawn from (for the
            values and the zero positions).

    Raises:
        ValueError: if the tensor does not have exactly 2 dimensions.
    """
    if _defer_to_torch(tensor):
        return _torch_call("sparse_", tensor, sparsity=sparsity, std=std, generator=generator)
    if tensor.ndimension() != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    if tensor.is_meta:
        return tensor
    if not _initlab_fills(tensor):
        return _torch_call("sparse_", tensor, sparsity=sparsity, std=std, generator=generator)
    rows, cols = tensor.shape
    num_zeros = math.ceil(sparsity * rows)
    zeros_per_column = len(range(rows)[:num_zeros])
    torch.empty(0, dtype=tensor.dtype, device=tensor.device).normal_(0, std)
    _check_generator(tensor, generator)
    if tensor.numel() == 0:
        return tensor
    stream = _random.Stream(draw_seed(generator), STREAM_NAME)
    with torch.no_grad(), _no_function_modes():
        target = tensor.detach()
        _random.fill_(target, stream, _random.normal_kernel(0.0, float(std)), dtype=_values_dtype(tensor))
        if zeros_per_column:
            keys = torch.empty((rows, cols), dtype=torch.float32, device="cpu")
            _random.fill_(keys, stream.child("mask"), _random.uniform_kernel(0.0, 1.0))
            chosen = torch.topk(keys, zeros_per_column, dim=0, largest=False).indices
            target.scatter_(0, chosen.to(tensor.device), 0.0)
    return tensor


# --------------------------------------------------------------------------- deprecated aliases

_R = TypeVar("_R")


def _make_deprecate(meth: Callable[..., _R]) -> Callable[..., _R]:
    new_name = meth.__name__
    old_name = new_name[:-1]

    def deprecated_init(*args, **kwargs) -> _R:
        warnings.warn(
            f"`nn.init.{old_name}` is now deprecated in favor of `nn.init.{new_name}`.",
            FutureWarning,
            stacklevel=2,
        )
        return meth(*args, **kwargs)

    deprecated_init.__doc__ = f"""
    {old_name}(...)

    .. warning::
        This method is now deprecated in favor of :func:`initlab.nn.init.{new_name}`.

    See :func:`~initlab.nn.init.{new_name}` for details."""
    deprecated_init.__name__ = old_name
    deprecated_init.__qualname__ = old_name
    return deprecated_init


uniform = _make_deprecate(uniform_)
normal = _make_deprecate(normal_)
constant = _make_deprecate(constant_)
eye = _make_deprecate(eye_)
dirac = _make_deprecate(dirac_)
xavier_uniform = _make_deprecate(xavier_uniform_)
xavier_normal = _make_deprecate(xavier_normal_)
kaiming_uniform = _make_deprecate(kaiming_uniform_)
kaiming_normal = _make_deprecate(kaiming_normal_)
orthogonal = _make_deprecate(orthogonal_)
sparse = _make_deprecate(sparse_)
