"""Element-wise schemes: zeros, ones, constant, normal, uniform, truncated normal.

Each value is drawn independently; ``small_random`` and ``large_random`` are
the classic "small weights" N(0, 0.01^2) and "large weights" N(0, 1) cases of
the textbook account of initialization.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import special

from initlab import random
from initlab.errors import InitlabError
from initlab.schemes.base import Scheme, check_finite

KERAS_TRUNCATION_CORRECTION = 0.87962566103423978
"""Std of a standard normal truncated to [-2, 2] (Keras/JAX variance scaling divide by it)."""


_SERIES_BOUND = 1e-4
"""Below this bound :func:`truncated_std_factor` uses its series (relative error < b^4 / 10 < 1e-17)."""


def truncated_std_factor(bound: float) -> float:
    """Std c(b) of N(0, 1) restricted to [-b, b], accurate to rounding for every b > 0.

    c(b)^2 = 1 - 2 b phi(b) / (2 Phi(b) - 1) loses every digit to cancellation
    as b -> 0 (where c(b) -> b / sqrt(3), the uniform's std). Integrating the
    numerator by parts removes the cancellation:
    c(b)^2 = P(3/2, b^2 / 2) / erf(b / sqrt(2)), with P the regularised lower
    incomplete gamma function (``scipy.special.gammainc``). Below
    ``_SERIES_BOUND`` the series c(b)^2 = (b^2 / 3) (1 - 2 b^2 / 15 + O(b^4))
    is used (it neither underflows nor divides 0 by 0).
    """
    if bound < _SERIES_BOUND:
        return bound / math.sqrt(3.0) * math.sqrt(1.0 - 2.0 * bound * bound / 15.0)
    return math.sqrt(float(special.gammainc(1.5, 0.5 * bound * bound)) / float(special.erf(bound / math.sqrt(2.0))))


@dataclass(frozen=True)
class Constant(Scheme):
    """Every element equal to ``value``: W_ij = value.

    A constant (or zero) weight matrix never breaks the symmetry between the
    units of a layer (every unit computes the same output and receives the
    same gradient); it is meant for biases and norm parameters.
    """

    value: float = 0.0
    kind = "constant"

    def __post_init__(self) -> None:
        check_finite(self.kind, "value", self.value)

    def target_std(self, fans=None, *, shape=None) -> float:
        return 0.0

    def _fill(self, out, full_shape, index, layout, fans, stream) -> None:
        out.fill_(self.value)


@dataclass(frozen=True)
class Zeros(Constant):
    """All zeros: W = 0 (the usual bias initialization)."""

    kind = "zeros"

    def __post_init__(self) -> None:
        if self.value != 0.0:
            raise InitlabError(f"zeros: value={self.value!r} is invalid; expected 0 (use constant(value)).")

    def to_dict(self) -> dict:
        return {"scheme": self.kind}


@dataclass(frozen=True)
class Ones(Constant):
    """All ones: W = 1 (the usual norm-layer weight initialization)."""

    value: float = 1.0
    kind = "ones"

    def __post_init__(self) -> None:
        if self.value != 1.0:
            raise InitlabError(f"ones: value={self.value!r} is invalid; expected 1 (use constant(value)).")

    def to_dict(self) -> dict:
        return {"scheme": self.kind}


@dataclass(frozen=True)
class Normal(Scheme):
    """Gaussian: W_ij ~ N(mean, std^2), independently."""

    mean: float = 0.0
    std: float = 1.0
    kind = "normal"

    def __post_init__(self) -> None:
        check_finite(self.name, "mean", self.mean)
        check_finite(self.name, "std", self.std, minimum=0.0)

    def target_std(self, fans=None, *, shape=None) -> float:
        return float(self.std)

    def _fill(self, out, full_shape, index, layout, fans, stream) -> None:
        random.normal_(out, stream, mean=self.mean, std=self.std, full_shape=full_shape, index=index)


@dataclass(frozen=True)
class SmallRandom(Normal):
    """Small random weights: W_ij ~ N(0, 0.01^2).

    The classic "small weights" case: with depth, activations and gradients
    shrink by ~std*sqrt(fan_in) per layer and vanish (LeCun et al. 1998,
    "Efficient BackProp"; Glorot & Bengio 2010).
    """

    std: float = 0.01
    kind = "small_random"


@dataclass(frozen=True)
class LargeRandom(Normal):
    """Large random weights: W_ij ~ N(0, 1).

    The classic "large weights" case: pre-activations have std ~sqrt(fan_in),
    sigmoid/tanh saturate and their gradients go to ~0.
    """

    kind = "large_random"


@dataclass(frozen=True)
class Uniform(Scheme):
    """Uniform: W_ij ~ U[low, high), independently; std = (high - low) / sqrt(12)."""

    low: float = 0.0
    high: float = 1.0
    kind = "uniform"

    def __post_init__(self) -> None:
        low = check_finite(self.kind, "low", self.low)
        high = check_finite(self.kind, "high", self.high)
        if low >= high:
            raise InitlabError(f"uniform: low={self.low!r} and high={self.high!r} are invalid; expected low < high.")

    def target_std(self, fans=None, *, shape=None) -> float:
        return (self.high - self.low) / math.sqrt(12.0)

    def _fill(self, out, full_shape, index, layout, fans, stream) -> None:
        random.uniform_(out, stream, low=self.low, high=self.high, full_shape=full_shape, index=index)


@dataclass(frozen=True)
class TruncatedNormal(Scheme):
    """Truncated Gaussian: W_ij ~ N(mean, sigma^2) restricted to mean +- bound*sigma.

    ``bound`` is in units of sigma. With ``corrected=False`` (the default,
    as ``torch.nn.init.trunc_normal_``) sigma = ``std`` and the sampled values
    have the smaller std ``std * c(bound)``, c(2) = 0.87962566103423978.
    With ``corrected=True`` (as Keras/JAX ``variance_scaling`` do) sigma =
    ``std / c(bound)`` so that the sampled values have std exactly ``std``.

    Sampling is exact: rejection from the normal, or the inverse CDF for a
    narrow interval; no value is clamped (see ``initlab.random``).

    Reference: Keras ``TruncatedNormal`` and ``VarianceScaling`` docs.
    """

    std: float = 1.0
    bound: float = 2.0
    corrected: bool = False
    mean: float = 0.0
    kind = "truncated_normal"

    def __post_init__(self) -> None:
        check_finite(self.kind, "std", self.std, minimum=0.0)
        check_finite(self.kind, "bound", self.bound, minimum=0.0, strict=True)
        check_finite(self.kind, "mean", self.mean)
        if self.corrected and not math.isfinite(self.sigma):
            raise InitlabError(
                f"{self.kind}: bound={self.bound!r} with corrected=True and std={self.std!r} is invalid: the "
                f"normal before truncation would need std {self.sigma!r}; expected a larger bound."
            )

    @property
    def sigma(self) -> float:
        """Std of the normal before truncation."""
        return self.std / truncated_std_factor(self.bound) if self.corrected else self.std

    def target_std(self, fans=None, *, shape=None) -> float:
        return self.sigma * truncated_std_factor(self.bound)

    def _fill(self, out, full_shape, index, layout, fans, stream) -> None:
        random.truncated_normal_(
            out,
            stream,
            mean=self.mean,
            std=self.sigma,
            low=-self.bound,
            high=self.bound,
            full_shape=full_shape,
            index=index,
        )


def zeros() -> Zeros:
    """W = 0."""
    return Zeros()


def ones() -> Ones:
    """W = 1."""
    return Ones()


def constant(value: float) -> Constant:
    """W = value everywhere."""
    return Constant(value)


def normal(mean: float = 0.0, std: float = 1.0) -> Normal:
    """W ~ N(mean, std^2)."""
    return Normal(mean, std)


def uniform(low: float = 0.0, high: float = 1.0) -> Uniform:
    """W ~ U[low, high)."""
    return Uniform(low, high)


def truncated_normal(
    std: float = 1.0, bound: float = 2.0, corrected: bool = False, mean: float = 0.0
) -> TruncatedNormal:
    """W ~ N(mean, sigma^2) truncated at +-bound*sigma (see :class:`TruncatedNormal`)."""
    return TruncatedNormal(std, bound, corrected, mean)


def small_random(std: float = 0.01) -> SmallRandom:
    """The classic small-weights case, W ~ N(0, 0.01^2)."""
    return SmallRandom(std=std)


def large_random(std: float = 1.0) -> LargeRandom:
    """The classic large-weights case, W ~ N(0, 1)."""
    return LargeRandom(std=std)


__all__ = [
    "Constant",
    "Zeros",
    "Ones",
    "Normal",
    "SmallRandom",
    "LargeRandom",
    "Uniform",
    "TruncatedNormal",
    "zeros",
    "ones",
    "constant",
    "normal",
    "uniform",
    "truncated_normal",
    "small_random",
    "large_random",
    "truncated_std_factor",
    "KERAS_TRUNCATION_CORRECTION",
]
