"""The one registry of activations: a name, a torch module or any callable -> an
:class:`Activation` with its function, first and second derivatives and its
Gaussian moments.

Gaussian moments, for ``z ~ N(0, 1)`` and a variance ``q >= 0`` (scalar or array):

* ``mean(q)                     = E[phi(sqrt(q) z)]``
* ``second_moment(q)            = E[phi(sqrt(q) z)**2]``
* ``derivative_second_moment(q) = E[phi'(sqrt(q) z)**2]``

Closed forms are used for linear, relu, leaky_relu, prelu, elu, selu, hardtanh,
erf and sin (derivations in each builder's docstring).  Every other activation
uses :func:`initlab.quadrature.expect_graded` (split at the origin, graded mesh):
~1e-14 relative observed, 1e-8 tested against ``scipy.integrate.quad`` for ``q``
in ``[1e-3, 1e4]``.

No torch import: a torch module is recognised by the name of the first class in
its MRO that lives in ``torch.nn`` and by its attributes (``negative_slope``,
``alpha``, ``approximate``, ``beta``, ``min_val``/``max_val``, ``weight``); a
torch function by its ``__name__`` when its ``__module__`` starts with ``torch``.

Reference for the moment formulas: Poole et al. (2016), "Exponential
expressivity in deep neural networks through transient chaos" (q-map, chi_1);
Klambauer et al. (2017), "Self-Normalizing Neural Networks" (selu constants).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
from scipy import special

from initlab.errors import bad_value
from initlab.quadrature import _as_variance, _scalar_or_array, expect_graded

Array = np.ndarray
ArrayFunction = Callable[[Array], Array]

SELU_SCALE = 1.0507009873554805
"""lambda of selu (Klambauer et al. 2017, eq. 14)."""
SELU_ALPHA = 1.6732632423543772
"""alpha of selu (Klambauer et al. 2017, eq. 14)."""

_SQRT_2PI = math.sqrt(2 * math.pi)
_GELU_TANH_SCALE = math.sqrt(2 / math.pi)
_GELU_TANH_CUBIC = 0.044715


@dataclass(frozen=True)
class Activation:
    """An activation phi with its derivatives and Gaussian moments.

    Attributes:
        name: canonical name (``"relu"``, ``"gelu_tanh"``, ``"custom:<qualname>"``...).
        params: the parameters that define it (e.g. ``{"negative_slope": 0.01}``).
        family: ``"relu"``, ``"selu"``, ``"saturating"``, ``"linear"`` or ``"other"``.
        bounds: output range of a bounded activation, else ``None``.

    Equality and hashing use ``name`` and ``params`` only.
    """

    name: str
    params: Mapping[str, float]
    family: str
    bounds: tuple[float, float] | None
    _function: ArrayFunction = field(repr=False, compare=False)
    _derivative: ArrayFunction = field(repr=False, compare=False)
    _second_derivative: ArrayFunction = field(repr=False, compare=False)
    _closed_moments: Mapping[str, Callable[[Array], Array]] = field(default_factory=dict, repr=False, compare=False)

    def __repr__(self) -> str:
        return (
            f"Activation(name={self.name!r}, params={dict(self.params)!r}, "
            f"family={self.family!r}, bounds={self.bounds!r})"
        )

    def __hash__(self) -> int:
        return hash((self.name, tuple(sorted(self.params.items()))))

    def __call__(self, x: Array) -> Array:
        """phi(x), elementwise."""
        return self._function(np.asarray(x, dtype=float))

    def derivative(self, x: Array) -> Array:
        """phi'(x), elementwise (at a kink, the value torch's autograd uses)."""
        return self._derivative(np.asarray(x, dtype=float))

    def second_derivative(self, x: Array) -> Array:
        """phi''(x), elementwise (0 on the linear pieces of piecewise-linear activations)."""
        return self._second_derivative(np.asarray(x, dtype=float))

    def _moment(self, kind: str, integrand: ArrayFunction, q) -> float | Array:
        variance = _as_variance(q, f"Activation({self.name!r}).{kind}")
        closed = self._closed_moments.get(kind)
        if closed is not None:
            return _scalar_or_array(np.asarray(closed(variance), dtype=float))
        return expect_graded(integrand, variance)

    def mean(self, q) -> float | Array:
        """E[phi(sqrt(q) z)], z ~ N(0, 1), vectorised over ``q``."""
        return self._moment("mean", self.__call__, q)

    def second_moment(self, q) -> float | Array:
        """E[phi(sqrt(q) z)**2], z ~ N(0, 1), vectorised over ``q``."""
        return self._moment("second_moment", lambda x: self(x) ** 2, q)

    def derivative_second_moment(self, q) -> float | Array:
        """E[phi'(sqrt(q) z)**2], z ~ N(0, 1), vectorised over ``q``."""
        return self._moment("derivative_second_moment", lambda x: self.derivative(x) ** 2, q)

    def __reduce__(self):
        if self.name.startswith("custom:"):
            raise TypeError(f"cannot pickle the custom activation {self.name}; pickle the callable instead")
        return (get_activation, (self.to_dict(),))

    def to_dict(self) -> dict:
        """Plain-data form: ``{"name", "params", "family", "bounds"}``."""
        return {
            "name": self.name,
            "params": dict(self.params),
            "family": self.family,
            "bounds": None if self.bounds is None else list(self.bounds),
        }


def _make(name, params, family, function, derivative, second_derivative, bounds=None, **closed):
    return Activation(
        name=name,
        params=MappingProxyType(dict(params)),
        family=family,
        bounds=bounds,
        _function=function,
        _derivative=derivative,
        _second_derivative=second_derivative,
        _closed_moments=MappingProxyType(closed),
    )


def _zeros_like(x: Array) -> Array:
    return np.zeros_like(x)


def _ones_like(x: Array) -> Array:
    return np.ones_like(x)


def _std_normal_cdf(x: Array) -> Array:
    return special.ndtr(x)


def _std_normal_pdf(x: Array) -> Array:
    return np.exp(-(x**2) / 2) / _SQRT_2PI


# --------------------------------------------------------------------- builders


def _linear() -> Activation:
    """phi(x) = x; E[phi] = 0, E[phi^2] = q, E[phi'^2] = 1."""
    return _make(
        "linear",
        {},
        "linear",
        lambda x: x.copy(),
        _ones_like,
        _zeros_like,
        mean=_zeros_like,
        second_moment=lambda q: q.copy(),
        derivative_second_moment=_ones_like,
    )


def _rectifier(name: str, negative_slope: float) -> Activation:
    """phi(x) = x for x > 0, a x otherwise (relu: a = 0).

    For u ~ N(0, q): E[phi] = (1 - a) sqrt(q / (2 pi)), E[phi^2] = q (1 + a^2) / 2,
    E[phi'^2] = (1 + a^2) / 2 (He et al. 2015, eq. 10).  phi'(0) = a, as in torch.
    """
    a = negative_slope
    return _make(
        name,
        {} if name == "relu" else {"negative_slope": a},
        "relu",
        lambda x: np.where(x > 0, x, a * x),
        lambda x: np.where(x > 0, 1.0, a),
        _zeros_like,
        mean=lambda q: (1 - a) * np.sqrt(q) / _SQRT_2PI,
        second_moment=lambda q: q * (1 + a * a) / 2,
        derivative_second_moment=lambda q: np.full_like(q, (1 + a * a) / 2),
    )


_ELU_QUADRATURE_BELOW = 1e-2
"""Below this variance the elu closed forms cancel (relative error ~1e-16 / q); quadrature is used."""


def _exact_for_small_q(closed: Callable[[Array], Array], integrand: ArrayFunction) -> Callable[[Array], Array]:
    """Use ``closed(q)`` where q >= 1e-2 and graded quadrature of ``integrand`` below."""

    def moment(q: Array) -> Array:
        small = q < _ELU_QUADRATURE_BELOW
        values = np.asarray(closed(q), dtype=float).copy()
        if np.any(small):
            values[small] = expect_graded(integrand, q[small])
        return values

    return moment


def _elu_like(name: str, scale: float, alpha: float, params: Mapping[str, float], family: str) -> Activation:
    """phi(x) = scale * (x for x > 0, alpha (e^x - 1) otherwise); elu: scale 1, selu: lambda.

    For u = sqrt(q) z, s = sqrt(q), the truncated exponential moments are
    E[e^{k u}; u < 0] = e^{k^2 q / 2} Phi(-k s) = erfcx(k s / sqrt 2) / 2, hence
    E[phi]/scale     = s / sqrt(2 pi) + alpha (erfcx(s / sqrt 2) / 2 - 1/2),
    E[phi^2]/scale^2 = q / 2 + alpha^2 (erfcx(sqrt 2 s) / 2 - erfcx(s / sqrt 2) + 1/2),
    E[phi'^2]/scale^2 = 1/2 + alpha^2 erfcx(sqrt 2 s) / 2.
    erfcx (the scaled erfc) keeps these finite for any q; below q = 1e-2, where the
    terms cancel, the moments of phi and phi^2 come from graded quadrature instead.
    """

    def function(x: Array) -> Array:
        return scale * np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))

    def derivative(x: Array) -> Array:
        return scale * np.where(x > 0, 1.0, alpha * np.exp(np.minimum(x, 0)))

    def moment_of_exp(q: Array, k: float) -> Array:
        return special.erfcx(k * np.sqrt(q) / math.sqrt(2)) / 2

    def mean(q: Array) -> Array:
        return scale * (np.sqrt(q) / _SQRT_2PI + alpha * (moment_of_exp(q, 1) - 0.5))

    def second_moment(q: Array) -> Array:
        return scale**2 * (q / 2 + alpha**2 * (moment_of_exp(q, 2) - 2 * moment_of_exp(q, 1) + 0.5))

    return _make(
        name,
        params,
        family,
        function,
        derivative,
        lambda x: scale * np.where(x > 0, 0.0, alpha * np.exp(np.minimum(x, 0))),
        mean=_exact_for_small_q(mean, function),
        second_moment=_exact_for_small_q(second_moment, lambda x: function(x) ** 2),
        derivative_second_moment=lambda q: scale**2 * (0.5 + alpha**2 * moment_of_exp(q, 2)),
    )


def _elu(alpha: float = 1.0) -> Activation:
    return _elu_like("elu", 1.0, alpha, {"alpha": alpha}, "other")


def _selu() -> Activation:
    return _elu_like("selu", SELU_SCALE, SELU_ALPHA, {}, "selu")


def _hardtanh(min_val: float = -1.0, max_val: float = 1.0) -> Activation:
    """phi(x) = clip(x, lo, hi).

    With s = sqrt(q), a = lo / s, b = hi / s, Phi / pdf the standard normal cdf / density:
    E[phi]    = lo Phi(a) + hi Phi(-b) + s (pdf(a) - pdf(b)),
    E[phi^2]  = lo^2 Phi(a) + hi^2 Phi(-b) + q (Phi(b) - Phi(a) + a pdf(a) - b pdf(b)),
    E[phi'^2] = Phi(b) - Phi(a).
    At q = 0 the limits phi(0), phi(0)^2 and phi'(0)^2 are returned.
    """
    lo, hi = min_val, max_val
    if not lo < hi:
        raise bad_value(
            "get_activation('hardtanh')",
            "min_val",
            lo,
            f"a number below max_val={hi!r}",
            "hardtanh clips to [min_val, max_val], which must be a non-empty interval.",
        )
    at_zero = min(max(0.0, lo), hi)
    slope_at_zero = 1.0 if lo < 0 < hi else 0.0

    def standardised(q: Array) -> tuple[Array, Array, Array]:
        s = np.sqrt(q)
        safe = np.where(s > 0, s, 1.0)
        return s, lo / safe, hi / safe

    def mean(q: Array) -> Array:
        s, a, b = standardised(q)
        value = lo * _std_normal_cdf(a) + hi * _std_normal_cdf(-b) + s * (_std_normal_pdf(a) - _std_normal_pdf(b))
        return np.where(q > 0, value, at_zero)

    def second_moment(q: Array) -> Array:
        _, a, b = standardised(q)
        inside = _std_normal_cdf(b) - _std_normal_cdf(a) + a * _std_normal_pdf(a) - b * _std_normal_pdf(b)
        value = lo**2 * _std_normal_cdf(a) + hi**2 * _std_normal_cdf(-b) + q * inside
        return np.where(q > 0, value, at_zero**2)

    def derivative_second_moment(q: Array) -> Array:
        _, a, b = standardised(q)
        return np.where(q > 0, _std_normal_cdf(b) - _std_normal_cdf(a), slope_at_zero)

    return _make(
        "hardtanh",
        {"min_val": lo, "max_val": hi},
        "saturating",
        lambda x: np.clip(x, lo, hi),
        lambda x: np.where((x > lo) & (x < hi), 1.0, 0.0),
        _zeros_like,
        bounds=(lo, hi),
        mean=mean,
        second_moment=second_moment,
        derivative_second_moment=derivative_second_moment,
    )


def _erf() -> Activation:
    """phi(x) = erf(x); E[phi] = 0, E[phi^2] = (2/pi) arcsin(2q / (1 + 2q)) (Williams 1997),
    E[phi'^2] = (4/pi) E[e^{-2 q z^2}] = 4 / (pi sqrt(1 + 4q))."""
    return _make(
        "erf",
        {},
        "saturating",
        special.erf,
        lambda x: 2 / math.sqrt(math.pi) * np.exp(-(x**2)),
        lambda x: -4 * x / math.sqrt(math.pi) * np.exp(-(x**2)),
        bounds=(-1.0, 1.0),
        mean=_zeros_like,
        second_moment=lambda q: 2 / math.pi * np.arcsin(2 * q / (1 + 2 * q)),
        derivative_second_moment=lambda q: 4 / (math.pi * np.sqrt(1 + 4 * q)),
    )


def _sin() -> Activation:
    """phi(x) = sin(x); E[phi] = 0, E[sin^2] = (1 - e^{-2q}) / 2, E[cos^2] = (1 + e^{-2q}) / 2
    (from E[cos(2 u)] = e^{-2q})."""
    return _make(
        "sin",
        {},
        "other",
        np.sin,
        np.cos,
        lambda x: -np.sin(x),
        mean=_zeros_like,
        second_moment=lambda q: -np.expm1(-2 * q) / 2,
        derivative_second_moment=lambda q: (1 + np.exp(-2 * q)) / 2,
    )


def _tanh() -> Activation:
    """phi = tanh, phi' = 1 - t^2, phi'' = -2 t (1 - t^2)."""
    return _make(
        "tanh",
        {},
        "saturating",
        np.tanh,
        lambda x: 1 - np.tanh(x) ** 2,
        lambda x: -2 * np.tanh(x) * (1 - np.tanh(x) ** 2),
        bounds=(-1.0, 1.0),
    )


def _sigmoid() -> Activation:
    """phi = 1 / (1 + e^{-x}), phi' = s (1 - s), phi'' = s (1 - s)(1 - 2 s)."""

    def derivative(x: Array) -> Array:
        s = special.expit(x)
        return s * (1 - s)

    return _make(
        "sigmoid",
        {},
        "saturating",
        special.expit,
        derivative,
        lambda x: derivative(x) * (1 - 2 * special.expit(x)),
        bounds=(0.0, 1.0),
    )


def _softsign() -> Activation:
    """phi = x / (1 + |x|), phi' = 1 / (1 + |x|)^2, phi'' = -2 sign(x) / (1 + |x|)^3."""
    return _make(
        "softsign",
        {},
        "saturating",
        lambda x: x / (1 + np.abs(x)),
        lambda x: 1 / (1 + np.abs(x)) ** 2,
        lambda x: -2 * np.sign(x) / (1 + np.abs(x)) ** 3,
        bounds=(-1.0, 1.0),
    )


def _gelu() -> Activation:
    """phi = x Phi(x) (Hendrycks & Gimpel 2016), phi' = Phi + x pdf, phi'' = pdf (2 - x^2)."""
    return _make(
        "gelu",
        {},
        "other",
        lambda x: x * _std_normal_cdf(x),
        lambda x: _std_normal_cdf(x) + x * _std_normal_pdf(x),
        lambda x: _std_normal_pdf(x) * (2 - x**2),
    )


def _gelu_tanh() -> Activation:
    """phi = x (1 + tanh(u)) / 2, u = sqrt(2/pi) (x + 0.044715 x^3) (torch approximate='tanh').

    phi' = (1 + t) / 2 + x (1 - t^2) u' / 2,
    phi'' = (1 - t^2) u' + x (1 - t^2) (u'' - 2 t u'^2) / 2.
    """

    def parts(x: Array) -> tuple[Array, Array, Array]:
        u = _GELU_TANH_SCALE * (x + _GELU_TANH_CUBIC * x**3)
        du = _GELU_TANH_SCALE * (1 + 3 * _GELU_TANH_CUBIC * x**2)
        return np.tanh(u), du, _GELU_TANH_SCALE * 6 * _GELU_TANH_CUBIC * x

    def derivative(x: Array) -> Array:
        t, du, _ = parts(x)
        return (1 + t) / 2 + x * (1 - t**2) * du / 2

    def second_derivative(x: Array) -> Array:
        t, du, ddu = parts(x)
        return (1 - t**2) * du + x * (1 - t**2) * (ddu - 2 * t * du**2) / 2

    return _make("gelu_tanh", {}, "other", lambda x: x * (1 + parts(x)[0]) / 2, derivative, second_derivative)


def _silu() -> Activation:
    """phi = x s(x), s the sigmoid (Elfwing et al. 2018); phi' = s + x s (1 - s),
    phi'' = s (1 - s)(2 + x (1 - 2 s))."""

    def second_derivative(x: Array) -> Array:
        s = special.expit(x)
        return s * (1 - s) * (2 + x * (1 - 2 * s))

    return _make(
        "silu",
        {},
        "other",
        lambda x: x * special.expit(x),
        lambda x: special.expit(x) * (1 + x * (1 - special.expit(x))),
        second_derivative,
    )


def _softplus_of(x: Array, beta: float = 1.0) -> Array:
    return np.logaddexp(0.0, beta * x) / beta


def _mish() -> Activation:
    """phi = x tanh(softplus(x)) (Misra 2019).  With t = tanh(softplus x), s = sigmoid x:
    phi' = t + x (1 - t^2) s, phi'' = 2 (1 - t^2) s + x (1 - t^2) s (1 - s - 2 t s)."""

    def parts(x: Array) -> tuple[Array, Array]:
        return np.tanh(_softplus_of(x)), special.expit(x)

    def derivative(x: Array) -> Array:
        t, s = parts(x)
        return t + x * (1 - t**2) * s

    def second_derivative(x: Array) -> Array:
        t, s = parts(x)
        return (1 - t**2) * s * (2 + x * (1 - s - 2 * t * s))

    return _make("mish", {}, "other", lambda x: x * parts(x)[0], derivative, second_derivative)


def _softplus(beta: float = 1.0) -> Activation:
    """phi = log(1 + e^{beta x}) / beta, phi' = sigmoid(beta x), phi'' = beta s (1 - s).

    torch's ``threshold`` (linear above beta x > 20) changes phi by < 3e-9 and is ignored.
    """
    if not beta > 0:
        raise bad_value("get_activation('softplus')", "beta", beta, "a number > 0")

    def second_derivative(x: Array) -> Array:
        s = special.expit(beta * x)
        return beta * s * (1 - s)

    return _make(
        "softplus",
        {"beta": beta},
        "other",
        lambda x: _softplus_of(x, beta),
        lambda x: special.expit(beta * x),
        second_derivative,
    )


# --------------------------------------------------------------------- registry

_BUILDERS: dict[str, Callable[..., Activation]] = {
    "linear": _linear,
    "relu": lambda: _rectifier("relu", 0.0),
    "leaky_relu": lambda negative_slope=0.01: _rectifier("leaky_relu", negative_slope),
    "prelu": lambda negative_slope=0.25: _rectifier("prelu", negative_slope),
    "elu": _elu,
    "selu": _selu,
    "gelu": _gelu,
    "gelu_tanh": _gelu_tanh,
    "silu": _silu,
    "mish": _mish,
    "softplus": _softplus,
    "softsign": _softsign,
    "sigmoid": _sigmoid,
    "tanh": _tanh,
    "hardtanh": _hardtanh,
    "sin": _sin,
    "erf": _erf,
}

_PARAMETERS: dict[str, tuple[str, ...]] = {
    "leaky_relu": ("negative_slope",),
    "prelu": ("negative_slope",),
    "elu": ("alpha",),
    "softplus": ("beta",),
    "hardtanh": ("min_val", "max_val"),
}

_ALIASES: dict[str, str] = {
    "identity": "linear",
    "none": "linear",
    "swish": "silu",
    "logistic": "sigmoid",
    "leakyrelu": "leaky_relu",
    "lrelu": "leaky_relu",
    "gelu_erf": "gelu",
    "gelu_new": "gelu_tanh",
    "approximate_gelu": "gelu_tanh",
    # torch.nn.init.calculate_gain treats convolutions as the identity.
    **{f"conv{d}d": "linear" for d in (1, 2, 3)},
    **{f"conv_transpose{d}d": "linear" for d in (1, 2, 3)},
}

# torch class or function name -> (canonical name, {torch attribute: our parameter}).
_TORCH_MODULES: dict[str, tuple[str, dict[str, str]]] = {
    "Identity": ("linear", {}),
    "ReLU": ("relu", {}),
    "LeakyReLU": ("leaky_relu", {"negative_slope": "negative_slope"}),
    "PReLU": ("prelu", {}),
    "ELU": ("elu", {"alpha": "alpha"}),
    "SELU": ("selu", {}),
    "GELU": ("gelu", {}),
    "SiLU": ("silu", {}),
    "Mish": ("mish", {}),
    "Softplus": ("softplus", {"beta": "beta"}),
    "Softsign": ("softsign", {}),
    "Sigmoid": ("sigmoid", {}),
    "Tanh": ("tanh", {}),
    "Hardtanh": ("hardtanh", {"min_val": "min_val", "max_val": "max_val"}),
    "ReLU6": ("hardtanh", {"min_val": "min_val", "max_val": "max_val"}),
}

# torch function name -> (canonical name, the parameters the function fixes).
_TORCH_FUNCTIONS: dict[str, tuple[str, dict[str, float]]] = {
    **{
        name: (name, {})
        for name in (
            "relu",
            "leaky_relu",
            "elu",
            "selu",
            "gelu",
            "silu",
            "mish",
            "softplus",
            "softsign",
            "sigmoid",
            "tanh",
            "hardtanh",
            "sin",
            "erf",
        )
    },
    "relu6": ("hardtanh", {"min_val": 0.0, "max_val": 6.0}),
}

_PROBE = np.linspace(-3.0, 3.0, 13)


def known_activations() -> list[str]:
    """Canonical names of the named activations, in registry order."""
    return list(_BUILDERS)


def _canonical(name: str) -> str:
    key = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in _BUILDERS:
        raise bad_value(
            "get_activation",
            "spec",
            name,
            f"one of {', '.join(known_activations())} (aliases: {', '.join(sorted(_ALIASES))})",
            "Or pass a torch module or a vectorised numpy callable.",
        )
    return key


def _check_number(name: str, argument: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise bad_value(f"get_activation({name!r})", argument, value, "a finite real number")
    return float(value)


def _from_name(name: str, params: Mapping[str, Any]) -> Activation:
    canonical = _canonical(name)
    params = dict(params)
    if canonical == "gelu" and "approximate" in params:
        approximate = params.pop("approximate")
        if approximate not in ("none", "tanh"):
            raise bad_value("get_activation('gelu')", "approximate", approximate, "'none' or 'tanh'")
        canonical = "gelu_tanh" if approximate == "tanh" else "gelu"
    accepted = _PARAMETERS.get(canonical, ())
    for argument, value in params.items():
        if argument not in accepted:
            raise bad_value(
                f"get_activation({canonical!r})",
                "params",
                {argument: value},
                f"parameters among ({', '.join(accepted)})" if accepted else "no parameters",
                f"'{argument}' is not a parameter of {canonical}.",
            )
    numeric = {argument: _check_number(canonical, argument, value) for argument, value in params.items()}
    return _BUILDERS[canonical](**numeric)


def _torch_class_name(module: Any) -> str | None:
    for cls in type(module).__mro__:
        if cls.__module__.startswith("torch.nn") and cls.__name__ in _TORCH_MODULES:
            return cls.__name__
    return None


def _prelu_slope(module: Any) -> float:
    values = np.asarray(module.weight.detach().cpu().float().numpy(), dtype=float).ravel()
    if values.size == 0 or not np.all(values == values[0]):
        raise bad_value(
            "get_activation",
            "spec",
            module,
            "a PReLU whose slopes are all equal",
            "A per-channel PReLU has no single gain; pass get_activation('prelu', negative_slope=...).",
        )
    return float(values[0])


def _from_torch_module(module: Any, class_name: str, params: Mapping[str, Any]) -> Activation:
    canonical, attributes = _TORCH_MODULES[class_name]
    read = {ours: getattr(module, theirs) for theirs, ours in attributes.items()}
    if class_name == "PReLU":
        read["negative_slope"] = _prelu_slope(module)
    if class_name == "GELU":
        read["approximate"] = getattr(module, "approximate", "none")
    return _from_name(canonical, {**read, **params})


def _is_torch_module(spec: Any) -> bool:
    return any(cls.__module__.startswith("torch.nn") for cls in type(spec).__mro__)


def _is_torch_function(spec: Any) -> bool:
    return (getattr(spec, "__module__", None) or "").startswith("torch") and hasattr(spec, "__name__")


def _unknown_torch(spec: Any, kind: str, name: str, known: list[str]) -> Exception:
    return bad_value(
        "get_activation",
        "spec",
        spec,
        f"a torch {kind} among {', '.join(known)}",
        f"torch {kind} '{name}' is not a known activation; pass a numpy callable for anything else.",
    )


def _central_difference(function: ArrayFunction) -> ArrayFunction:
    """phi'(x) ~ (phi(x + h) - phi(x - h)) / 2h, h = eps^(1/3) max(1, |x|): error ~1e-10 relative."""

    def derivative(x: Array) -> Array:
        step = np.cbrt(np.finfo(float).eps) * np.maximum(1.0, np.abs(x))
        return (function(x + step) - function(x - step)) / (2 * step)

    return derivative


def _second_central_difference(function: ArrayFunction) -> ArrayFunction:
    """phi''(x) ~ (phi(x + h) - 2 phi(x) + phi(x - h)) / h^2, h = eps^(1/4) max(1, |x|): error ~1e-7."""

    def second_derivative(x: Array) -> Array:
        step = np.sqrt(np.sqrt(np.finfo(float).eps)) * np.maximum(1.0, np.abs(x))
        return (function(x + step) - 2 * function(x) + function(x - step)) / step**2

    return second_derivative


def _from_callable(function: Callable, params: Mapping[str, Any]) -> Activation:
    qualname = getattr(function, "__qualname__", None) or type(function).__qualname__
    name = f"custom:{qualname}"
    if params:
        raise bad_value("get_activation", "params", dict(params), f"no parameters for the callable {name}")
    try:
        with np.errstate(all="ignore"):
            probe = np.asarray(function(_PROBE), dtype=float)
    except Exception as error:  # the user's callable may fail in any way
        raise bad_value(
            "get_activation",
            "spec",
            function,
            "a vectorised function of a numpy array",
            f"Calling it on an array of shape {_PROBE.shape} raised {type(error).__name__}: {error}.",
        ) from None
    if probe.shape != _PROBE.shape:
        raise bad_value(
            "get_activation",
            "spec",
            function,
            "a function returning an array of its input's shape",
            f"It returned shape {probe.shape} for an input of shape {_PROBE.shape}.",
        )
    if not np.all(np.isfinite(probe)):
        raise bad_value(
            "get_activation",
            "spec",
            function,
            "a function with finite values",
            f"It returned non-finite values on linspace(-3, 3, 13): {probe.tolist()}.",
        )

    def evaluate(x: Array) -> Array:
        return np.asarray(function(x), dtype=float)

    return _make(name, {}, "other", evaluate, _central_difference(evaluate), _second_central_difference(evaluate))


def get_activation(spec: Any, **params: Any) -> Activation:
    """Resolve an activation from a name, an Activation, a dict, a torch module/function or a callable.

    Args:
        spec: a canonical name or alias (``"relu"``, ``"swish"``, ``"identity"``...);
            an :class:`Activation` (returned as is when no params are given); a dict
            from :meth:`Activation.to_dict`; a torch module instance (``nn.ReLU()``,
            ``nn.LeakyReLU(0.2)``, ``nn.GELU(approximate="tanh")``, ``nn.Hardtanh(-2, 2)``,
            ``nn.PReLU()`` with equal slopes, ...); a torch function (``F.relu``,
            ``torch.tanh``...); or any vectorised numpy callable, named
            ``"custom:<qualname>"``, whose derivatives are central differences
            (phi' to ~1e-10, phi'' to ~1e-7 relative for smooth functions; moments by
            :func:`initlab.quadrature.expect_graded`, accurate for functions smooth
            except at 0).
        **params: activation parameters (``negative_slope``, ``alpha``, ``beta``,
            ``min_val``/``max_val``; ``approximate`` for gelu); they override a module's.

    Returns:
        The :class:`Activation`.

    Raises:
        InitlabError: unknown name (the message lists the known ones), an unknown or
            non-numeric parameter, hardtanh ``min_val >= max_val``, softplus ``beta <= 0``,
            or a callable that fails, returns non-finite values or the wrong shape.
    """
    if isinstance(spec, Activation):
        return _from_name(spec.name, {**spec.params, **params}) if params else spec
    if isinstance(spec, str):
        return _from_name(spec, params)
    if isinstance(spec, Mapping):
        if spec.get("name") is None or str(spec["name"]).startswith("custom:"):
            raise bad_value(
                "get_activation",
                "spec",
                dict(spec),
                "a dict with the 'name' of a named activation",
                "A custom callable cannot be rebuilt from its dict; pass the callable.",
            )
        return _from_name(spec["name"], {**spec.get("params", {}), **params})
    class_name = _torch_class_name(spec)
    if class_name is not None:
        return _from_torch_module(spec, class_name, params)
    if _is_torch_module(spec):
        raise _unknown_torch(spec, "module", type(spec).__name__, sorted(_TORCH_MODULES))
    if _is_torch_function(spec):
        if spec.__name__ not in _TORCH_FUNCTIONS:
            raise _unknown_torch(spec, "function", spec.__name__, sorted(_TORCH_FUNCTIONS))
        canonical, fixed = _TORCH_FUNCTIONS[spec.__name__]
        return _from_name(canonical, {**fixed, **params})
    if callable(spec):
        return _from_callable(spec, params)
    raise bad_value(
        "get_activation",
        "spec",
        spec,
        "an activation name, an Activation, a torch module or function, or a numpy callable",
        f"Known names: {', '.join(known_activations())}.",
    )


__all__ = [
    "SELU_ALPHA",
    "SELU_SCALE",
    "Activation",
    "get_activation",
    "known_activations",
]
