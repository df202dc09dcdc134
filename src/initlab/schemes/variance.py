"""Variance scaling and its presets: Glorot/Xavier, He/Kaiming, LeCun.

sigma^2 = scale / n, with n = fan_in, fan_out, (fan_in + fan_out) / 2
(``fan_avg``) or sqrt(fan_in * fan_out) (``fan_geo_avg``), and

- ``normal``: W ~ N(0, sigma^2);
- ``truncated_normal``: N(0, (sigma / 0.8796...)^2) truncated at +-2 of its
  own std, so that the sampled std is sigma (Keras/JAX convention);
- ``uniform``: W ~ U[-sqrt(3) sigma, sqrt(3) sigma].

Reference: Keras ``VarianceScaling``; JAX ``jax.nn.initializers.variance_scaling``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from initlab import random
from initlab.errors import InitlabError
from initlab.fans import Fans
from initlab.schemes.base import Scheme, check_finite
from initlab.schemes.basic import truncated_std_factor

Mode = Literal["fan_in", "fan_out", "fan_avg", "fan_geo_avg"]
Distribution = Literal["normal", "truncated_normal", "uniform"]
MODES = ("fan_in", "fan_out", "fan_avg", "fan_geo_avg")
DISTRIBUTIONS = ("normal", "truncated_normal", "uniform")
_TRUNCATION_BOUND = 2.0


def fan_for_mode(fans: Fans, mode: str) -> float:
    """The n of sigma^2 = scale / n for a mode."""
    if mode == "fan_in":
        return float(fans.fan_in)
    if mode == "fan_out":
        return float(fans.fan_out)
    if mode == "fan_avg":
        return (fans.fan_in + fans.fan_out) / 2.0
    return math.sqrt(fans.fan_in * fans.fan_out)


@dataclass(frozen=True)
class VarianceScaling(Scheme):
    """Variance scaling: sigma^2 = scale / n(mode); see the module docstring.

    Args:
        scale: multiplier of the variance (gain^2).
        mode: fan_in, fan_out, fan_avg or fan_geo_avg.
        distribution: normal, truncated_normal or uniform.
        label: display name of a preset (e.g. "he_normal"); no effect on values.
    """

    scale: float = 1.0
    mode: str = "fan_in"
    distribution: str = "normal"
    label: str = ""
    kind = "variance_scaling"
    fan_based = True

    def __post_init__(self) -> None:
        check_finite(self.name, "scale", self.scale, minimum=0.0, strict=True)
        if self.mode not in MODES:
            raise InitlabError(f"{self.name}: mode={self.mode!r} is invalid; expected one of {', '.join(MODES)}.")
        if self.distribution not in DISTRIBUTIONS:
            raise InitlabError(
                f"{self.name}: distribution={self.distribution!r} is invalid; "
                f"expected one of {', '.join(DISTRIBUTIONS)}."
            )

    def target_std(self, fans: Fans | None = None, *, shape=None) -> float | None:
        """sigma = sqrt(scale / n(mode)); None without fans."""
        return None if fans is None else self.std_for(fans)

    def std_for(self, fans: Fans) -> float:
        """sigma = sqrt(scale / n(mode)) for these fans."""
        return math.sqrt(self.scale / fan_for_mode(fans, self.mode))

    def bound(self, fans: Fans) -> float:
        """Uniform limit sqrt(3) * sigma (the ``uniform`` distribution's support)."""
        return math.sqrt(3.0) * self.std_for(fans)

    def _fill(self, out, full_shape, index, layout, fans, stream) -> None:
        sigma = self.std_for(fans)
        if self.distribution == "normal":
            random.normal_(out, stream, std=sigma, full_shape=full_shape, index=index)
        elif self.distribution == "uniform":
            limit = math.sqrt(3.0) * sigma
            random.uniform_(out, stream, low=-limit, high=limit, full_shape=full_shape, index=index)
        else:
            random.truncated_normal_(
                out,
                stream,
                std=sigma / truncated_std_factor(_TRUNCATION_BOUND),
                low=-_TRUNCATION_BOUND,
                high=_TRUNCATION_BOUND,
                full_shape=full_shape,
                index=index,
            )


def variance_scaling(
    scale: float = 1.0, mode: Mode = "fan_in", distribution: Distribution = "normal"
) -> VarianceScaling:
    """sigma^2 = scale / n(mode) (Keras/JAX ``variance_scaling``)."""
    return VarianceScaling(scale, mode, distribution)


def glorot_normal(gain: float = 1.0, distribution: Distribution = "normal") -> VarianceScaling:
    """Glorot (Xavier) normal: W ~ N(0, gain^2 * 2 / (fan_in + fan_out)).

    Keeps forward and backward variance balanced for tanh/sigmoid-like units.
    torch's ``xavier_normal_`` uses the plain normal (the default here);
    Keras/JAX's ``glorot_normal`` use ``distribution="truncated_normal"``
    with the same variance.

    Reference: Glorot & Bengio (2010), "Understanding the difficulty of
    training deep feedforward neural networks", eq. 12.
    """
    _check_gain("glorot_normal", gain)
    return VarianceScaling(gain * gain, "fan_avg", distribution, label="glorot_normal")


def glorot_uniform(gain: float = 1.0) -> VarianceScaling:
    """Glorot (Xavier) uniform: W ~ U[-a, a], a = gain * sqrt(6 / (fan_in + fan_out)).

    Reference: Glorot & Bengio (2010), eq. 16 ("normalized initialization").
    """
    _check_gain("glorot_uniform", gain)
    return VarianceScaling(gain * gain, "fan_avg", "uniform", label="glorot_uniform")


def he_scale(activation: str = "relu", negative_slope: float = 0.0) -> float:
    """gain^2 of He initialization: 2 / (1 + a^2) for (leaky) ReLU.

    For another activation the gain is its "forward" gain, 1 / E[phi(z)^2]
    with z ~ N(0, 1) (which gives 2 / (1 + a^2) for a leaky ReLU): the same
    second-moment argument as He et al.'s eq. 10, for any phi.
    """
    check_finite("he", "negative_slope", negative_slope)
    if activation in ("relu", "leaky_relu"):
        slope = negative_slope if activation == "leaky_relu" else 0.0
        return 2.0 / (1.0 + slope * slope)
    from initlab.gains import gain

    return gain(activation, criterion="forward") ** 2


def he_normal(
    mode: Mode = "fan_in", activation: str = "relu", negative_slope: float = 0.0, distribution: Distribution = "normal"
) -> VarianceScaling:
    """He (Kaiming) normal: W ~ N(0, sigma^2), sigma = gain / sqrt(fan), gain = sqrt(2 / (1 + a^2)).

    For a (leaky) ReLU with negative slope a; ``mode="fan_out"`` preserves
    the backward pass instead of the forward pass.

    Reference: He, Zhang, Ren, Sun (2015), "Delving Deep into Rectifiers", eq. 10.
    """
    slope = negative_slope if negative_slope else 0.0
    return VarianceScaling(he_scale(_leaky(activation, slope), slope), mode, distribution, label="he_normal")


def he_uniform(mode: Mode = "fan_in", activation: str = "relu", negative_slope: float = 0.0) -> VarianceScaling:
    """He (Kaiming) uniform: W ~ U[-b, b], b = gain * sqrt(3 / fan), gain = sqrt(2 / (1 + a^2)).

    Reference: He et al. (2015), eq. 10, with the uniform of equal variance.
    """
    slope = negative_slope if negative_slope else 0.0
    return VarianceScaling(he_scale(_leaky(activation, slope), slope), mode, "uniform", label="he_uniform")


def lecun_normal(distribution: Distribution = "normal") -> VarianceScaling:
    """LeCun normal: W ~ N(0, 1 / fan_in) (self-normalising nets use it with SELU).

    Keras/JAX use ``distribution="truncated_normal"`` with the same variance.

    Reference: LeCun, Bottou, Orr, Mueller (1998), "Efficient BackProp";
    Klambauer et al. (2017), "Self-Normalizing Neural Networks".
    """
    return VarianceScaling(1.0, "fan_in", distribution, label="lecun_normal")


def lecun_uniform() -> VarianceScaling:
    """LeCun uniform: W ~ U[-b, b], b = sqrt(3 / fan_in).

    Reference: LeCun et al. (1998), "Efficient BackProp".
    """
    return VarianceScaling(1.0, "fan_in", "uniform", label="lecun_uniform")


def _leaky(activation: str, slope: float) -> str:
    return "leaky_relu" if activation == "relu" and slope else activation


def _check_gain(where: str, gain: float) -> None:
    check_finite(where, "gain", gain, minimum=0.0, strict=True)
