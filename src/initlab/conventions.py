"""Porting an initialization between torch, Keras and JAX: the conventions side by side.

The same initializer name means different things in different frameworks.
:func:`compare_conventions` takes a scheme and one weight (its shape in the
caller's framework) and lists, for torch, Keras and JAX, the weight's shape in
that framework, the fans it counts, the initializer the same name calls there
(as a runnable expression), and the distribution, std and bounds that call
samples, next to initlab's own values. It needs none of the frameworks.

Layouts. torch stores a Linear weight as (out, in) and a ConvNd weight as
(out, in/groups, *k); Keras and Flax store a Dense kernel as (in, out) and a
Conv kernel as (*k, in/groups, out) ("HWIO"). An embedding table is
(num, dim) in all three. :func:`channels_last_axes` is the permutation from
torch's layout to Keras/JAX's.

Fans. torch (``_calculate_fan_in_and_fan_out``): fan_in = shape[1] * rf,
fan_out = shape[0] * rf, rf = prod(shape[2:]), whatever the layer. Keras
(``compute_fans``): a 1-D (n,) has fan_in = fan_out = n; 2-D: shape[0],
shape[1]; N-D: shape[-2] * rf, shape[-1] * rf, rf = prod(shape[:-2]). JAX
(``variance_scaling``): in_axis=-2, out_axis=-1, the other axes receptive; a
1-D shape is refused.

The traps this module reports:

- Keras ``VarianceScaling(distribution="normal")`` and the ``GlorotNormal``,
  ``HeNormal``, ``LecunNormal`` presets sample a normal truncated at +-2 sigma
  with sigma = std / 0.87962566 (so the std is right); JAX's presets do the
  same, but JAX's ``variance_scaling(distribution="normal")`` is a plain
  normal; torch's ``xavier_normal_`` / ``kaiming_normal_`` are plain normals.
- torch's ``trunc_normal_(w, mean, std, a, b)`` (and timm's) take absolute
  bounds a, b (default -2, 2: with std=0.02 that truncates at 100 sigma, i.e.
  not at all); Keras's ``TruncatedNormal`` cuts at mean +- 2 stddev and JAX's
  ``truncated_normal(stddev, lower, upper)`` at lower/upper in stddev units;
  neither corrects the std (only variance scaling does).
- ``orthogonal`` flattens the weight to a matrix: torch reads
  (shape[0], prod(shape[1:])), Keras (prod(shape[:-1]), shape[-1]) and JAX
  the ``column_axis`` (default -1) against the rest. On each framework's own
  layout the two are transposes of each other (same distribution); applied to
  an array copied without transposing, the matrix, fans and std change.
- A Keras initializer built with an integer seed returns the same values at
  every call: one seeded instance shared by two layers gives them identical
  weights. ``initlab.keras`` advances its stream at each call instead.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from scipy import special

from initlab.errors import InitlabError
from initlab.fans import Fans
from initlab.fans import fans as initlab_fans
from initlab.schemes import FACTORIES, Scheme, get
from initlab.schemes.basic import (
    KERAS_TRUNCATION_CORRECTION,
    Constant,
    Normal,
    TruncatedNormal,
    Uniform,
    truncated_std_factor,
)
from initlab.schemes.structured import DeltaOrthogonal, Identity, Orthogonal, Sparse
from initlab.schemes.variance import VarianceScaling, fan_for_mode

FRAMEWORKS = ("torch", "keras", "jax")
PORT_LAYOUTS = ("linear", "conv", "embedding")
_SQRT3 = math.sqrt(3.0)

# preset name -> (Keras class, JAX function, scale, mode, distribution) of the frameworks' own presets
_PRESETS = {
    "glorot_normal": ("GlorotNormal", "glorot_normal", 1.0, "fan_avg", "truncated_normal"),
    "glorot_uniform": ("GlorotUniform", "glorot_uniform", 1.0, "fan_avg", "uniform"),
    "he_normal": ("HeNormal", "he_normal", 2.0, "fan_in", "truncated_normal"),
    "he_uniform": ("HeUniform", "he_uniform", 2.0, "fan_in", "uniform"),
    "lecun_normal": ("LecunNormal", "lecun_normal", 1.0, "fan_in", "truncated_normal"),
    "lecun_uniform": ("LecunUniform", "lecun_uniform", 1.0, "fan_in", "uniform"),
}


# --------------------------------------------------------------------------- layouts


def channels_last_axes(ndim: int, layout: str = "linear") -> tuple[int, ...]:
    """``axes`` with ``np.transpose(torch_weight, axes)`` = the Keras/JAX weight.

    (out, in) -> (in, out); (out, in, *k) -> (*k, in, out); an embedding
    (num, dim) and a vector keep their axes.
    """
    if layout == "embedding" or ndim < 2:
        return tuple(range(ndim))
    return tuple(range(2, ndim)) + (1, 0)


def channels_first_axes(ndim: int, layout: str = "linear") -> tuple[int, ...]:
    """``axes`` with ``np.transpose(keras_weight, axes)`` = the torch weight (inverse of the above)."""
    forward = channels_last_axes(ndim, layout)
    return tuple(forward.index(axis) for axis in range(ndim))


def framework_shape(torch_shape: Sequence[int], layout: str, framework: str) -> tuple[int, ...]:
    """The weight's shape in ``framework``'s layout, from its torch-layout shape."""
    torch_shape = tuple(torch_shape)
    if framework == "torch":
        return torch_shape
    return tuple(torch_shape[axis] for axis in channels_last_axes(len(torch_shape), layout))


def torch_layout_shape(shape: Sequence[int], layout: str, framework: str) -> tuple[int, ...]:
    """The weight's torch-layout shape, from its shape in ``framework``'s layout."""
    shape = tuple(shape)
    if framework == "torch":
        return shape
    return tuple(shape[axis] for axis in channels_first_axes(len(shape), layout))


def bind_preset(kind: str, args: Sequence[Any], options: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The keyword arguments of ``initlab.<kind>(*args, **options)``, checked against its signature."""
    factory = FACTORIES[kind]
    signature = inspect.signature(factory)
    try:
        bound = signature.bind(*args, **options)
    except TypeError as error:
        raise InitlabError(
            f"{where}: arguments {tuple(args)!r} {dict(options)!r} are invalid ({error}); expected the "
            f"arguments of initlab.{kind}: {', '.join(signature.parameters) or 'none'}."
        ) from None
    return dict(bound.arguments)


# --------------------------------------------------------------------------- fans per framework


def torch_fans(shape: Sequence[int]) -> tuple[int, int]:
    """``torch.nn.init._calculate_fan_in_and_fan_out``: (shape[1] * rf, shape[0] * rf)."""
    if len(shape) < 2:
        raise InitlabError(
            f"torch: shape={tuple(shape)} has {len(shape)} dimension(s); torch.nn.init computes fans "
            f"only for 2 or more dimensions."
        )
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def keras_fans(shape: Sequence[int]) -> tuple[int, int]:
    """Keras ``compute_fans``: (n, n) for (n,); (shape[-2] * rf, shape[-1] * rf) from 2-D on."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def jax_fans(shape: Sequence[int]) -> tuple[int, int]:
    """JAX ``variance_scaling`` with in_axis=-2, out_axis=-1: the other axes are receptive."""
    if len(shape) < 2:
        raise InitlabError(
            f"jax: shape={tuple(shape)} has {len(shape)} dimension(s); jax.nn.initializers computes fans "
            f"with the default in_axis=-2 only for 2 or more dimensions."
        )
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


# --------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class ConventionRow:
    """One framework's reading of the weight and what its initializer samples.

    Attributes:
        framework: ``initlab``, ``torch``, ``keras`` or ``jax``.
        shape: the weight's shape as that framework holds it.
        transposed: False for a row that applies the framework's rules to the
            caller's array as it is (copied without the layout transpose).
        call: the framework's initializer as a runnable expression (torch:
            acting on a tensor ``w``; Keras: an initializer to call with the
            shape; JAX: an initializer to call with a key and the shape), or
            "" when the framework has none.
        fan_in, fan_out: the fans the framework counts (None if it cannot).
        distribution: ``normal``, ``truncated normal``, ``uniform``,
            ``constant``, ``orthogonal``, ``identity``, ``delta orthogonal``,
            ``sparse normal`` or ``n/a``.
        mean, std: of the sampled values (std of the values, after truncation).
        sigma: std of the normal before truncation (truncated normals).
        bound_sigmas: truncation bound in units of sigma.
        low, high: absolute support of the values (None: unbounded).
        matrix: (rows, cols) an orthogonal scheme flattens the weight to.
        matches: whether the call samples initlab's distribution (None for initlab's own row).
        equivalent: a call of this framework that does sample initlab's distribution, when ``call`` does not.
        notes: what to know about this row.
    """

    framework: str
    shape: tuple[int, ...]
    transposed: bool = True
    call: str = ""
    fan_in: float | None = None
    fan_out: float | None = None
    distribution: str = "n/a"
    mean: float | None = None
    std: float | None = None
    sigma: float | None = None
    bound_sigmas: float | None = None
    low: float | None = None
    high: float | None = None
    matrix: tuple[int, int] | None = None
    matches: bool | None = None
    equivalent: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def label(self) -> str:
        return self.framework if self.transposed else f"{self.framework}, as is"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["shape"], data["notes"] = list(self.shape), list(self.notes)
        data["matrix"] = list(self.matrix) if self.matrix else None
        return data


def _num(value: float) -> str:
    """A number as the calls print it (10 significant digits)."""
    return f"{value:.10g}"


def _normal(mean: float, std: float) -> dict[str, Any]:
    return {"distribution": "normal", "mean": mean, "std": std, "sigma": std}


def _truncated(mean: float, sigma: float, bound: float) -> dict[str, Any]:
    return {
        "distribution": "truncated normal",
        "mean": mean,
        "std": sigma * truncated_std_factor(bound),
        "sigma": sigma,
        "bound_sigmas": bound,
        "low": mean - bound * sigma,
        "high": mean + bound * sigma,
    }


def _uniform(low: float, high: float) -> dict[str, Any]:
    return {
        "distribution": "uniform",
        "mean": (low + high) / 2,
        "std": (high - low) / math.sqrt(12.0),
        "low": low,
        "high": high,
    }


def _constant(value: float) -> dict[str, Any]:
    return {"distribution": "constant", "mean": value, "std": 0.0, "low": value, "high": value}


def _orthogonal(gain: float, rows: int, cols: int) -> dict[str, Any]:
    """An orthogonal (rows, cols) matrix times gain: mean square gain^2 / max(rows, cols)."""
    return {
        "distribution": "orthogonal",
        "mean": 0.0,
        "std": abs(gain) / math.sqrt(max(rows, cols)),
        "matrix": (rows, cols),
    }


def _two_valued(kind: str, gain: float, ones: int, total: int) -> dict[str, Any]:
    """Values gain at ``ones`` of ``total`` positions, 0 elsewhere."""
    share = ones / total
    return {"distribution": kind, "mean": gain * share, "std": abs(gain) * math.sqrt(share * (1 - share))}


def _variance_scaling(distribution: str, sigma: float) -> dict[str, Any]:
    """The values of variance scaling with target std sigma (truncation corrected)."""
    if distribution == "normal":
        return _normal(0.0, sigma)
    if distribution == "uniform":
        return _uniform(-_SQRT3 * sigma, _SQRT3 * sigma)
    return _truncated(0.0, sigma / KERAS_TRUNCATION_CORRECTION, 2.0)


def _vs_sigma(scheme: VarianceScaling, fan_counts: tuple[float, float]) -> float:
    return math.sqrt(scheme.scale / fan_for_mode(Fans(*fan_counts), scheme.mode))


def _delta_orthogonal_std(gain: float, channels: Sequence[int], size: int) -> float:
    """An orthogonal channel matrix at one tap of ``size`` values: min(channels) unit vectors."""
    return abs(gain) * math.sqrt(min(channels) / size)


def _unavailable(framework: str, shape, fan_counts, why: str, transposed: bool) -> ConventionRow:
    fan_in, fan_out = fan_counts if fan_counts else (None, None)
    return ConventionRow(framework, tuple(shape), transposed, fan_in=fan_in, fan_out=fan_out, notes=(why,))


def _safe_fans(rule: Callable[[Sequence[int]], tuple[int, int]], shape) -> tuple[tuple[int, int] | None, str]:
    try:
        return rule(shape), ""
    except InitlabError as error:
        return None, str(error)


# ------------------------------------------------------------------ initlab


def _initlab_row(scheme: Scheme, torch_shape: tuple[int, ...], layout: str) -> ConventionRow:
    """initlab's own reading: the torch layout, forward-counted fans (1-D: n, n)."""
    if len(torch_shape) == 1:
        counts: tuple[float, float] = (torch_shape[0], torch_shape[0])
    else:
        counted = initlab_fans(torch_shape, layout)
        counts = (counted.fan_in, counted.fan_out)
    values: dict[str, Any] = {}
    if isinstance(scheme, Constant):
        values = _constant(scheme.value)
    elif isinstance(scheme, Normal):
        values = _normal(scheme.mean, scheme.std)
    elif isinstance(scheme, Uniform):
        values = _uniform(scheme.low, scheme.high)
    elif isinstance(scheme, TruncatedNormal):
        values = _truncated(scheme.mean, scheme.sigma, scheme.bound)
    elif isinstance(scheme, VarianceScaling):
        values = _variance_scaling(scheme.distribution, _vs_sigma(scheme, counts))
    elif isinstance(scheme, Orthogonal) and len(torch_shape) >= 2:
        values = _orthogonal(scheme.gain, torch_shape[0], math.prod(torch_shape[1:]))
    elif isinstance(scheme, Identity) and len(torch_shape) >= 2:
        values = _two_valued("identity", scheme.gain, min(torch_shape[:2]), math.prod(torch_shape))
    elif isinstance(scheme, DeltaOrthogonal) and 3 <= len(torch_shape) <= 5:
        std = _delta_orthogonal_std(scheme.gain, torch_shape[:2], math.prod(torch_shape))
        values = {"distribution": "delta orthogonal", "mean": 0.0, "std": std}
    elif isinstance(scheme, Sparse) and len(torch_shape) >= 2:
        values = {"distribution": "sparse normal", "mean": 0.0, "std": scheme.target_std(shape=torch_shape)}
    else:
        return _unavailable(
            "initlab",
            torch_shape,
            counts,
            f"initlab's {scheme.name} cannot initialise a weight of shape {torch_shape}.",
            True,
        )
    return ConventionRow("initlab", torch_shape, True, _scheme_text(scheme), *counts, **values)


def _scheme_text(scheme: Scheme) -> str:
    params = {key: value for key, value in scheme.to_dict().items() if key not in ("scheme", "label")}
    body = f"initlab.{scheme.kind}({', '.join(f'{key}={value!r}' for key, value in params.items())})"
    return body if scheme.name == scheme.kind else f"initlab.{scheme.name}: {body}"


# ------------------------------------------------------------------ torch


def _torch_kaiming_arguments(scale: float) -> str | None:
    """``a=..., nonlinearity=...`` giving torch's kaiming gain^2 == scale, or None if none does."""
    if scale == 2.0:
        return "nonlinearity='relu'"
    if scale == 1.0:
        return "nonlinearity='linear'"
    if 0.0 < scale < 2.0:
        return f"a={_num(math.sqrt(2.0 / scale - 1.0))}, nonlinearity='leaky_relu'"
    return None


def _torch_variance_scaling(scheme: VarianceScaling, counts: tuple[int, int]) -> tuple[str, dict[str, Any], str]:
    sigma = _vs_sigma(scheme, counts)
    values = _variance_scaling(scheme.distribution, sigma)
    prefix = "torch.nn.init."
    if scheme.distribution == "truncated_normal":
        note = "torch has no truncated Xavier/Kaiming: trunc_normal_ with the corrected std and absolute bounds."
        call = (
            f"{prefix}trunc_normal_(w, mean=0.0, std={_num(values['sigma'])}, a={_num(values['low'])}, "
            f"b={_num(values['high'])})"
        )
        return call, values, note
    family = "normal" if scheme.distribution == "normal" else "uniform"
    if scheme.mode == "fan_avg":
        return f"{prefix}xavier_{family}_(w, gain={_num(math.sqrt(scheme.scale))})", values, ""
    kaiming = _torch_kaiming_arguments(scheme.scale)
    if scheme.mode in ("fan_in", "fan_out") and kaiming is not None:
        return f"{prefix}kaiming_{family}_(w, mode={scheme.mode!r}, {kaiming})", values, ""
    note = f"no torch.nn.init preset for scale={scheme.scale:g}, mode={scheme.mode}: the std is written out."
    if family == "normal":
        return f"{prefix}normal_(w, mean=0.0, std={_num(sigma)})", values, note
    return f"{prefix}uniform_(w, a={_num(values['low'])}, b={_num(values['high'])})", values, note


def _torch_row(scheme: Scheme, shape: tuple[int, ...], transposed: bool = True) -> ConventionRow:
    """What ``torch.nn.init`` does with the weight of ``shape`` (read as (out, in, *k))."""
    counts, why = _safe_fans(torch_fans, shape)
    prefix = "torch.nn.init."
    note = ""
    if isinstance(scheme, Constant):
        call = {"zeros": "zeros_(w)", "ones": "ones_(w)"}.get(scheme.kind, f"constant_(w, {_num(scheme.value)})")
        call, values = prefix + call, _constant(scheme.value)
    elif isinstance(scheme, Normal):
        call = f"{prefix}normal_(w, mean={_num(scheme.mean)}, std={_num(scheme.std)})"
        values = _normal(scheme.mean, scheme.std)
    elif isinstance(scheme, Uniform):
        call, values = (
            f"{prefix}uniform_(w, a={_num(scheme.low)}, b={_num(scheme.high)})",
            _uniform(scheme.low, scheme.high),
        )
    elif isinstance(scheme, TruncatedNormal):
        values = _truncated(scheme.mean, scheme.sigma, scheme.bound)
        call = (
            f"{prefix}trunc_normal_(w, mean={_num(scheme.mean)}, std={_num(scheme.sigma)}, "
            f"a={_num(values['low'])}, b={_num(values['high'])})"
        )
        note = "trunc_normal_'s a and b are absolute values, not multiples of std (timm's too)."
    elif isinstance(scheme, VarianceScaling):
        if counts is None:
            return _unavailable("torch", shape, None, why, transposed)
        call, values, note = _torch_variance_scaling(scheme, counts)
    elif isinstance(scheme, Orthogonal) and len(shape) >= 2:
        call = f"{prefix}orthogonal_(w, gain={_num(scheme.gain)})"
        values = _orthogonal(scheme.gain, shape[0], math.prod(shape[1:]))
    elif isinstance(scheme, Identity) and 2 <= len(shape) <= 5:
        call = f"{prefix}{'eye_' if len(shape) == 2 else 'dirac_'}(w)"
        call += "" if scheme.gain == 1.0 else f".mul_({_num(scheme.gain)})"
        values = _two_valued("identity", scheme.gain, min(shape[:2]), math.prod(shape))
    elif isinstance(scheme, Sparse) and len(shape) == 2:
        call = f"{prefix}sparse_(w, sparsity={_num(scheme.sparsity)}, std={_num(scheme.std)})"
        values = {"distribution": "sparse normal", "mean": 0.0, "std": scheme.target_std(shape=shape)}
    else:
        return _unavailable(
            "torch", shape, counts, f"torch.nn.init has no {scheme.kind} initializer for shape {shape}.", transposed
        )
    fan_in, fan_out = counts if counts else (None, None)
    return ConventionRow("torch", shape, transposed, call, fan_in, fan_out, notes=(note,) if note else (), **values)


# ------------------------------------------------------------------ Keras

KERAS_TORCH_OUTSIDE_PROBABILITY = float(2.0 * special.ndtr(-2.0)) ** 4
"""Chance that Keras's torch backend returns a 'truncated' normal value outside +-2 stddev: none of 4 draws fit."""

_KERAS_TORCH_TRUNCATION = (
    "on Keras's torch backend, truncated_normal draws 4 normals per value and keeps the first inside +-2 stddev, "
    f"or the first draw when none is (probability {KERAS_TORCH_OUTSIDE_PROBABILITY:.2g} per value), so a rare "
    "value lies outside the bounds (keras/src/backend/torch/random.py); the JAX backend's is exact."
)


def _keras_variance_scaling(scheme: VarianceScaling, counts: tuple[int, int]) -> tuple[str, dict[str, Any], str]:
    """Keras's initializer of the same name: a preset class, else VarianceScaling ("normal" truncates)."""
    sigma = _vs_sigma(scheme, counts)
    preset = _PRESETS.get(scheme.name)
    if preset and preset[2] == scheme.scale and preset[3] == scheme.mode:
        return f"keras.initializers.{preset[0]}()", _variance_scaling(preset[4], sigma), ""
    keras_distribution = "uniform" if scheme.distribution == "uniform" else "truncated_normal"
    call = (
        f"keras.initializers.VarianceScaling(scale={_num(scheme.scale)}, mode={scheme.mode!r}, "
        f"distribution={scheme.distribution!r})"
    )
    note = "Keras's distribution='normal' is a truncated normal." if scheme.distribution == "normal" else ""
    return call, _variance_scaling(keras_distribution, sigma), note


def _keras_row(scheme: Scheme, shape: tuple[int, ...], transposed: bool = True) -> ConventionRow:
    """What ``keras.initializers`` does with the weight of ``shape`` (read as (*k, in, out))."""
    counts = keras_fans(shape)
    prefix = "keras.initializers."
    note = ""
    if isinstance(scheme, Constant):
        call = {"zeros": "Zeros()", "ones": "Ones()"}.get(scheme.kind, f"Constant(value={_num(scheme.value)})")
        call, values = prefix + call, _constant(scheme.value)
    elif isinstance(scheme, Normal):
        call = f"{prefix}RandomNormal(mean={_num(scheme.mean)}, stddev={_num(scheme.std)})"
        values = _normal(scheme.mean, scheme.std)
    elif isinstance(scheme, Uniform):
        call = f"{prefix}RandomUniform(minval={_num(scheme.low)}, maxval={_num(scheme.high)})"
        values = _uniform(scheme.low, scheme.high)
    elif isinstance(scheme, TruncatedNormal) and scheme.bound == 2.0:
        call = f"{prefix}TruncatedNormal(mean={_num(scheme.mean)}, stddev={_num(scheme.sigma)})"
        values = _truncated(scheme.mean, scheme.sigma, 2.0)
        note = "TruncatedNormal cuts at mean +- 2 stddev and does not correct the std."
    elif isinstance(scheme, VarianceScaling) and scheme.mode != "fan_geo_avg":
        call, values, note = _keras_variance_scaling(scheme, counts)
    elif isinstance(scheme, Orthogonal) and len(shape) >= 2:
        call = f"{prefix}Orthogonal(gain={_num(scheme.gain)})"
        values = _orthogonal(scheme.gain, math.prod(shape[:-1]), shape[-1])
    elif isinstance(scheme, Identity) and len(shape) == 2:
        call = f"{prefix}Identity(gain={_num(scheme.gain)})"
        values = _two_valued("identity", scheme.gain, min(shape), math.prod(shape))
    else:
        return _unavailable(
            "keras",
            shape,
            counts,
            f"keras.initializers has no equivalent of initlab's {_scheme_text(scheme)} for shape {shape}.",
            transposed,
        )
    notes = tuple(text for text in (note, _KERAS_TORCH_TRUNCATION if values.get("bound_sigmas") else "") if text)
    return ConventionRow("keras", shape, transposed, call, *counts, notes=notes, **values)


def _keras_equivalent(scheme: Scheme, row: ConventionRow) -> str:
    if isinstance(scheme, VarianceScaling) and row.fan_in is not None:
        distribution = "untruncated_normal" if scheme.distribution == "normal" else scheme.distribution
        return (
            f"keras.initializers.VarianceScaling(scale={_num(scheme.scale)}, mode={scheme.mode!r}, "
            f"distribution={distribution!r})"
        )
    return ""


# ------------------------------------------------------------------ JAX


def _jax_variance_scaling(scheme: VarianceScaling, counts: tuple[int, int]) -> tuple[str, dict[str, Any], str]:
    """JAX's initializer of the same name: a preset (truncated normals), else variance_scaling."""
    sigma = _vs_sigma(scheme, counts)
    preset = _PRESETS.get(scheme.name)
    if preset and preset[2] == scheme.scale and preset[3] == scheme.mode:
        return f"jax.nn.initializers.{preset[1]}()", _variance_scaling(preset[4], sigma), ""
    call = f"jax.nn.initializers.variance_scaling({_num(scheme.scale)}, {scheme.mode!r}, {scheme.distribution!r})"
    return call, _variance_scaling(scheme.distribution, sigma), ""


def _jax_row(scheme: Scheme, shape: tuple[int, ...], transposed: bool = True) -> ConventionRow:
    """What ``jax.nn.initializers`` does with the weight of ``shape`` (in_axis=-2, out_axis=-1)."""
    counts, why = _safe_fans(jax_fans, shape)
    prefix = "jax.nn.initializers."
    note = ""
    if isinstance(scheme, Constant):
        call = {"zeros": "zeros", "ones": "ones"}.get(scheme.kind, f"constant({_num(scheme.value)})")
        call, values = prefix + call, _constant(scheme.value)
    elif isinstance(scheme, Normal):
        call, values = f"{prefix}normal(stddev={_num(scheme.std)})", _normal(0.0, scheme.std)
        note = "" if scheme.mean == 0.0 else "jax's normal has mean 0: add the mean to its values."
    elif isinstance(scheme, Uniform):
        call, values = (
            f"{prefix}uniform(scale={_num(scheme.high - scheme.low)})",
            _uniform(0.0, scheme.high - scheme.low),
        )
        note = "jax's uniform(scale) samples [0, scale)." + ("" if scheme.low == 0.0 else " Add low to its values.")
    elif isinstance(scheme, TruncatedNormal):
        call = (
            f"{prefix}truncated_normal(stddev={_num(scheme.sigma)}, lower={_num(-scheme.bound)}, "
            f"upper={_num(scheme.bound)})"
        )
        values = _truncated(0.0, scheme.sigma, scheme.bound)
        note = "truncated_normal's lower and upper are in units of stddev; it does not correct the std."
    elif isinstance(scheme, VarianceScaling):
        if counts is None:
            return _unavailable("jax", shape, None, why, transposed)
        call, values, note = _jax_variance_scaling(scheme, counts)
    elif isinstance(scheme, Orthogonal) and len(shape) >= 2:
        call = f"{prefix}orthogonal(scale={_num(scheme.gain)}, column_axis=-1)"
        values = _orthogonal(scheme.gain, math.prod(shape[:-1]), shape[-1])
    elif isinstance(scheme, DeltaOrthogonal) and 3 <= len(shape) <= 5 and shape[-1] >= shape[-2]:
        call = f"{prefix}delta_orthogonal(scale={_num(scheme.gain)}, column_axis=-1)"
        std = _delta_orthogonal_std(scheme.gain, shape[-2:], math.prod(shape))
        values = {"distribution": "delta orthogonal", "mean": 0.0, "std": std}
        if any(size % 2 == 0 for size in shape[:-2]):
            note = "jax puts the tap at (k - 1) // 2, torch/initlab at k // 2: they differ for an even kernel."
    else:
        return _unavailable(
            "jax",
            shape,
            counts,
            f"jax.nn.initializers has no equivalent of initlab's {_scheme_text(scheme)} for shape {shape}.",
            transposed,
        )
    fan_in, fan_out = counts if counts else (None, None)
    return ConventionRow("jax", shape, transposed, call, fan_in, fan_out, notes=(note,) if note else (), **values)


def _jax_equivalent(scheme: Scheme, row: ConventionRow) -> str:
    if isinstance(scheme, VarianceScaling) and row.fan_in is not None:
        return f"jax.nn.initializers.variance_scaling({_num(scheme.scale)}, {scheme.mode!r}, {scheme.distribution!r})"
    return ""


# --------------------------------------------------------------------------- comparison


def _same_values(row: ConventionRow, reference: ConventionRow) -> bool:
    """Whether ``row``'s call samples the distribution of ``reference`` (to 1e-9 relative)."""
    if row.distribution != reference.distribution:
        return False
    for name in ("mean", "std", "low", "high"):
        ours, theirs = getattr(row, name), getattr(reference, name)
        if (ours is None) != (theirs is None):
            return False
        if ours is not None and not math.isclose(ours, theirs, rel_tol=1e-9, abs_tol=1e-12):
            return False
    if row.matrix is not None and reference.matrix is not None:
        return sorted(row.matrix) == sorted(reference.matrix)
    return True


_ROW_BUILDERS: dict[str, Callable[..., ConventionRow]] = {"torch": _torch_row, "keras": _keras_row, "jax": _jax_row}
_EQUIVALENTS: dict[str, Callable[[Scheme, ConventionRow], str]] = {"keras": _keras_equivalent, "jax": _jax_equivalent}


def _judged(row: ConventionRow, scheme: Scheme, reference: ConventionRow) -> ConventionRow:
    """``row`` with ``matches`` (and, where it differs, an equivalent call) filled in."""
    if not row.call:
        return row
    matches = _same_values(row, reference)
    equivalent = "" if matches else _EQUIVALENTS.get(row.framework, lambda *_: "")(scheme, row)
    return replace(row, matches=matches, equivalent=equivalent)


@dataclass(frozen=True)
class ConventionReport:
    """Every framework's reading of one weight, for one scheme (see :func:`compare_conventions`)."""

    scheme: Scheme
    caller: str
    layout: str
    shape: tuple[int, ...]
    rows: tuple[ConventionRow, ...]
    traps: tuple[str, ...]

    def row(self, framework: str, transposed: bool = True) -> ConventionRow:
        """The row of ``framework`` (``transposed=False``: its rules on the caller's array as is)."""
        for row in self.rows:
            if row.framework == framework and row.transposed == transposed:
                return row
        raise InitlabError(
            f"ConventionReport.row: framework={framework!r}, transposed={transposed} has no row; "
            f"expected one of {', '.join(row.label for row in self.rows)}."
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "scheme": self.scheme.to_dict(),
            "caller": self.caller,
            "layout": self.layout,
            "shape": list(self.shape),
            "rows": [row.to_dict() for row in self.rows],
            "traps": list(self.traps),
        }

    def to_text(self) -> str:
        """The side-by-side table, the calls and the traps, as the CLI prints them."""
        lines = [
            f"port check: {_scheme_text(self.scheme)}",
            f"weight: shape {self.shape}, layout {self.layout}, in the {self.caller} convention (the caller)",
            "",
        ]
        header = ("convention", "shape", "fan_in", "fan_out", "distribution", "std", "bounds", "vs initlab")
        table = [header] + [_row_cells(row, self.caller) for row in self.rows]
        widths = [max(len(cells[column]) for cells in table) for column in range(len(header))]
        for cells in table:
            lines.append("  ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip())
        lines += ["", "calls:"]
        for row in self.rows:
            if row.framework != "initlab":
                lines.append(f"  {row.label}: {row.call or 'none'}")
                if row.equivalent:
                    lines.append(f"      to match initlab: {row.equivalent}")
        lines += ["", "traps:"] + [f"  - {trap}" for trap in self.traps]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()


def _bounds_text(row: ConventionRow) -> str:
    if row.distribution == "truncated normal":
        where = f"[{row.low:.6g}, {row.high:.6g}]" if row.mean else f"+-{row.high:.6g}"
        return f"{where} = {row.bound_sigmas:g} sigma, sigma {row.sigma:.6g}"
    if row.distribution in ("uniform", "constant") and row.low is not None:
        return f"+-{row.high:.6g}" if row.high and row.low == -row.high else f"[{row.low:.6g}, {row.high:.6g}]"
    if row.matrix is not None:
        return f"matrix {row.matrix[0]} x {row.matrix[1]}"
    return "none" if row.call else "-"


def _row_cells(row: ConventionRow, caller: str) -> tuple[str, ...]:
    label = row.label + (" (caller)" if row.framework == caller and row.transposed else "")
    verdict = "" if row.matches is None else ("same" if row.matches else "DIFFERS")
    return (
        label,
        str(row.shape),
        "-" if row.fan_in is None else str(row.fan_in),
        "-" if row.fan_out is None else str(row.fan_out),
        row.distribution,
        "-" if row.std is None else f"{row.std:.6g}",
        _bounds_text(row),
        verdict,
    )


def _describe(row: ConventionRow) -> str:
    text = row.distribution
    if row.std is not None:
        text += f" with std {row.std:.6g}"
    if row.distribution == "truncated normal":
        text += f" cut at {row.bound_sigmas:g} sigma (sigma {row.sigma:.6g})"
    if row.matrix is not None:
        text += f" over a {row.matrix[0]} x {row.matrix[1]} matrix"
    if row.fan_in is not None:
        text += f" (fan_in {row.fan_in}, fan_out {row.fan_out})"
    return text


def _traps(scheme: Scheme, caller: str, layout: str, rows: Sequence[ConventionRow]) -> tuple[str, ...]:
    reference = rows[0]
    traps = []
    for row in rows[1:]:
        if row.matches is False and row.transposed:
            hint = f"; to match initlab use {row.equivalent}" if row.equivalent else ""
            traps.append(
                f"{row.framework}: {row.call} samples {_describe(row)}, initlab's "
                f"{scheme.name} samples {_describe(reference)}{hint}."
            )
        elif row.matches is False:
            axes = channels_last_axes(len(reference.shape), layout)
            if caller != "torch":
                axes = channels_first_axes(len(reference.shape), layout)
            traps.append(
                f"{row.framework}'s rules on the {caller} array as is (shape {row.shape}, not "
                f"transposed) give {_describe(row)} instead of {_describe(reference)}: transpose "
                f"it first, np.transpose(w, {axes})."
            )
        elif not row.call and row.transposed:
            traps.append(f"{row.framework}: {row.notes[0]}")
    if any(row.distribution == "truncated normal" for row in rows):
        traps.append(
            "truncation bounds: torch's trunc_normal_(w, mean, std, a, b) (and timm's) takes absolute "
            "a, b (defaults -2, 2, whatever std); Keras's TruncatedNormal cuts at mean +- 2 stddev and "
            "JAX's truncated_normal at lower, upper times stddev."
        )
    if scheme.kind not in ("zeros", "ones", "constant", "identity"):
        traps.append(
            "seeds: keras.initializers.*(seed=<int>) returns the same values at every call, so one "
            "seeded instance shared by two layers gives them identical weights; initlab.keras advances "
            "its (seed, name) stream at each call."
        )
    for row in rows:
        traps.extend(f"{row.label}: {note}" for note in row.notes if row.call)
    return tuple(dict.fromkeys(traps))


def compare_conventions(
    scheme: Scheme | str,
    shape: Sequence[int],
    *,
    layout: str | None = None,
    framework: str = "torch",
    **options: Any,
) -> ConventionReport:
    """torch's, Keras's and JAX's readings of one weight for ``scheme``, side by side.

    Args:
        scheme: an initlab scheme, or a scheme name built with ``options``
            (``compare_conventions("he_normal", (256, 128), mode="fan_out")``).
        shape: the weight's shape in the caller's framework: torch
            (out, in, *k); Keras/JAX (*k, in, out); an embedding (num, dim).
        layout: ``linear``, ``conv`` or ``embedding`` (default: ``linear`` up
            to 2 dimensions, ``conv`` above).
        framework: the caller's convention: ``torch``, ``keras`` or ``jax``.

    Returns:
        A :class:`ConventionReport`: the initlab row, then torch's, Keras's and
        JAX's rows on their own layouts, then, for a framework whose layout
        differs from the caller's, its rules applied to the caller's array as
        is (only where that changes the values); and the traps in words.
    """
    where = "compare_conventions"
    if framework not in FRAMEWORKS:
        raise InitlabError(f"{where}: framework={framework!r} is invalid; expected one of {', '.join(FRAMEWORKS)}.")
    if isinstance(scheme, str):
        scheme = get(scheme, **options)
    elif options:
        raise InitlabError(
            f"{where}: options {sorted(options)} are given with a Scheme object; expected them only with a scheme name."
        )
    if not isinstance(scheme, Scheme):
        raise InitlabError(f"{where}: scheme={scheme!r} is invalid; expected an initlab scheme or its name.")
    shape = _check_shape(shape, where)
    layout = layout or ("conv" if len(shape) > 2 else "linear")
    if layout not in PORT_LAYOUTS:
        raise InitlabError(f"{where}: layout={layout!r} is invalid; expected one of {', '.join(PORT_LAYOUTS)}.")
    if (layout in ("linear", "embedding") and len(shape) > 2) or (layout == "conv" and len(shape) < 3):
        raise InitlabError(
            f"{where}: layout={layout!r} does not fit shape={shape}; expected 1 or 2 dimensions "
            f"for linear/embedding, 3 or more for conv."
        )
    torch_shape = torch_layout_shape(shape, layout, framework)
    reference = _initlab_row(scheme, torch_shape, layout)
    rows = [reference]
    for name in FRAMEWORKS:
        rows.append(_judged(_ROW_BUILDERS[name](scheme, framework_shape(torch_shape, layout, name)), scheme, reference))
    for name in FRAMEWORKS:
        own_shape = framework_shape(torch_shape, layout, name)
        if own_shape == shape or name == framework:
            continue
        as_is = _judged(_ROW_BUILDERS[name](scheme, shape, transposed=False), scheme, reference)
        transposed = next(row for row in rows if row.framework == name)
        if (as_is.fan_in, as_is.fan_out, as_is.std, as_is.matrix) != (
            transposed.fan_in,
            transposed.fan_out,
            transposed.std,
            transposed.matrix,
        ):
            rows.append(as_is)
    return ConventionReport(scheme, framework, layout, shape, tuple(rows), _traps(scheme, framework, layout, rows))


def _check_shape(shape: Sequence[int], where: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(size) for size in shape)
    except (TypeError, ValueError):
        raise InitlabError(f"{where}: shape={shape!r} is invalid; expected a sequence of positive integers.") from None
    if not dims or any(size < 1 for size in dims):
        raise InitlabError(f"{where}: shape={dims} is invalid; expected 1 or more dimensions, each >= 1.")
    return dims


__all__ = [
    "FRAMEWORKS",
    "PORT_LAYOUTS",
    "ConventionReport",
    "ConventionRow",
    "bind_preset",
    "channels_first_axes",
    "channels_last_axes",
    "compare_conventions",
    "framework_shape",
    "jax_fans",
    "keras_fans",
    "torch_fans",
    "torch_layout_shape",
]
