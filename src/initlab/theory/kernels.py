"""Bivariate Gaussian moments of an activation: the kernels behind the c-map.

For a centred Gaussian pair ``(u1, u2)`` with ``Var u1 = Var u2 = q`` and
``Cov(u1, u2) = q c`` the c-map needs

* ``K(q, c)  = E[phi(u1) phi(u2)]`` and
* ``K'(q, c) = E[phi'(u1) phi'(u2)]``, its slope: ``dK/dc = q K'`` (Price's theorem).

Three ways to compute them, most accurate first:

* closed forms: the ReLU family through the degree-1 arc-cosine kernel
  (Cho & Saul 2009), erf (Williams 1998), sin, linear — exact to rounding;
* :class:`QuadratureKernel`: correlated 2-D Gauss–Hermite
  (:func:`initlab.quadrature.expect_2d`) for any activation; geometrically
  convergent for activations analytic near the real axis, only algebraically
  for kinks (hardtanh, a custom relu-like callable: ~1e-4 relative);
* :class:`HermiteSeries`: Mehler's expansion
  ``K(q, c) = sum_k a_k(q)^2 c^k`` with ``a_k(q) = E[phi(sqrt(q) z) He_k(z)] / sqrt(k!)``,
  which turns one 1-D quadrature per ``q`` into a polynomial in ``c``; used by
  :func:`initlab.theory.phase_diagram` to evaluate many ``(q, c)`` at once.

References: Cho & Saul (2009), "Kernel Methods for Deep Learning", eq. 6 (n = 0, 1);
Williams (1998), "Computation with infinite neural networks", eq. 11;
Poole et al. (2016), eq. 5 (the c-map integral); Mehler's formula, e.g.
Daniely, Frostig, Singer (2016), "Toward deeper understanding of neural networks", sec. 4.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from initlab import quadrature
from initlab.activations import Activation

Array = np.ndarray


class PairKernel(Protocol):
    """``E[phi(u1) phi(u2)]`` and ``E[phi'(u1) phi'(u2)]`` at equal variances ``q``, correlation ``c``."""

    @property
    def method(self) -> str:
        """Where the values come from (shown in reports)."""

    def pair_moment(self, q, c) -> Array:
        """``K(q, c) = E[phi(u1) phi(u2)]``, broadcast over ``q`` and ``c``."""

    def derivative_pair_moment(self, q, c) -> Array:
        """``K'(q, c) = E[phi'(u1) phi'(u2)]``, broadcast over ``q`` and ``c``."""


@dataclass(frozen=True)
class ClosedFormKernel:
    """A kernel given by closed-form functions of ``(q, c)``.

    Attributes:
        method: where the formula comes from (shown in reports).
        pair: ``(q, c) -> E[phi(u1) phi(u2)]``.
        derivative_pair: ``(q, c) -> E[phi'(u1) phi'(u2)]``.
    """

    method: str
    pair: Callable[[Array, Array], Array]
    derivative_pair: Callable[[Array, Array], Array]

    def pair_moment(self, q, c) -> Array:
        """``E[phi(u1) phi(u2)]`` by the closed form."""
        return self.pair(np.asarray(q, dtype=float), _clip_correlation(c))

    def derivative_pair_moment(self, q, c) -> Array:
        """``E[phi'(u1) phi'(u2)]`` by the closed form."""
        return self.derivative_pair(np.asarray(q, dtype=float), _clip_correlation(c))


@dataclass(frozen=True)
class QuadratureKernel:
    """A kernel computed by correlated 2-D Gauss–Hermite quadrature with ``nodes`` per axis.

    ``E[f(u1, u2)] ~= sum_ij w_i w_j f(sqrt(q) x_i, sqrt(q) (c x_i + sqrt(1 - c^2) x_j))``.
    """

    activation: Activation
    nodes: int = 200

    @property
    def method(self) -> str:
        return f"2-D Gauss-Hermite quadrature, {self.nodes}x{self.nodes} nodes"

    def pair_moment(self, q, c) -> Array:
        """``E[phi(u1) phi(u2)]`` by quadrature."""
        q, c = np.broadcast_arrays(np.asarray(q, dtype=float), _clip_correlation(c))
        phi = self.activation
        return np.asarray(quadrature.expect_2d(lambda u1, u2: phi(u1) * phi(u2), q, q, q * c, n=self.nodes))

    def derivative_pair_moment(self, q, c) -> Array:
        """``E[phi'(u1) phi'(u2)]`` by quadrature."""
        q, c = np.broadcast_arrays(np.asarray(q, dtype=float), _clip_correlation(c))
        slope = self.activation.derivative
        return np.asarray(quadrature.expect_2d(lambda u1, u2: slope(u1) * slope(u2), q, q, q * c, n=self.nodes))


def _clip_correlation(c) -> Array:
    return np.clip(np.asarray(c, dtype=float), -1.0, 1.0)


def relu_pair_moment(q: Array, c: Array) -> Array:
    """Arc-cosine kernel of degree 1: ``E[relu(u1) relu(u2)] = q (sin t + (pi - t) cos t) / (2 pi)``,
    ``t = arccos c`` (Cho & Saul 2009, eq. 6 with n = 1)."""
    theta = np.arccos(c)
    return q * (np.sqrt(1.0 - c * c) + (math.pi - theta) * c) / (2 * math.pi)


def step_pair_moment(c: Array) -> Array:
    """Arc-cosine kernel of degree 0: ``P(u1 > 0, u2 > 0) = (pi - arccos c) / (2 pi)`` (Sheppard)."""
    return (math.pi - np.arccos(c)) / (2 * math.pi)


def leaky_relu_pair_moment(q: Array, c: Array, negative_slope: float) -> Array:
    """``E[phi(u1) phi(u2)]`` for ``phi(x) = relu(x) - a relu(-x)``.

    Expanding the product and using that ``(u1, -u2)`` has correlation ``-c``:
    ``(1 + a^2) k1(q, c) - 2 a k1(q, -c)`` with ``k1`` the degree-1 arc-cosine kernel.
    """
    a = negative_slope
    return (1 + a * a) * relu_pair_moment(q, c) - 2 * a * relu_pair_moment(q, -c)


def leaky_relu_derivative_pair_moment(q: Array, c: Array, negative_slope: float) -> Array:
    """``E[phi'(u1) phi'(u2)] = (1 + a^2) k0(c) + 2 a k0(-c)`` for ``phi' = 1{x>0} + a 1{x<0}``."""
    a = negative_slope
    value = (1 + a * a) * step_pair_moment(c) + 2 * a * step_pair_moment(-c)
    return np.broadcast_to(value, np.broadcast_shapes(np.shape(q), np.shape(c))).copy()


def erf_pair_moment(q: Array, c: Array) -> Array:
    """``E[erf(u1) erf(u2)] = (2 / pi) arcsin(2 q c / (1 + 2 q))`` (Williams 1998, eq. 11)."""
    return 2 / math.pi * np.arcsin(2 * q * c / (1 + 2 * q))


def erf_derivative_pair_moment(q: Array, c: Array) -> Array:
    """``E[erf'(u1) erf'(u2)] = (4 / pi) E[exp(-u1^2 - u2^2)] = (4 / pi) / sqrt((1 + 2q)^2 - (2 q c)^2)``
    (the Gaussian integral ``E[exp(-u^T u)] = det(I + 2 Sigma)^(-1/2)``)."""
    return 4 / math.pi / np.sqrt((1 + 2 * q) ** 2 - (2 * q * c) ** 2)


def sin_pair_moment(q: Array, c: Array) -> Array:
    """``E[sin u1 sin u2] = (E cos(u1 - u2) - E cos(u1 + u2)) / 2 = exp(-q) sinh(q c)``."""
    return np.exp(-q) * np.sinh(q * c)


def sin_derivative_pair_moment(q: Array, c: Array) -> Array:
    """``E[cos u1 cos u2] = exp(-q) cosh(q c)``."""
    return np.exp(-q) * np.cosh(q * c)


def linear_pair_moment(q: Array, c: Array) -> Array:
    """``E[u1 u2] = q c``."""
    return q * c


def _ones(q: Array, c: Array) -> Array:
    return np.ones(np.broadcast_shapes(np.shape(q), np.shape(c)))


def closed_form_kernel(activation: Activation) -> ClosedFormKernel | None:
    """The closed-form kernel of a named activation, or ``None`` when there is none here.

    Covered: linear, relu, leaky_relu, prelu (arc-cosine kernels), erf (Williams), sin.
    """
    name = activation.name
    if name == "linear":
        return ClosedFormKernel("closed form (linear)", linear_pair_moment, _ones)
    if name in ("relu", "leaky_relu", "prelu"):
        slope = float(activation.params.get("negative_slope", 0.0))
        return ClosedFormKernel(
            "closed form (arc-cosine kernel, Cho & Saul 2009)",
            lambda q, c: leaky_relu_pair_moment(q, c, slope),
            lambda q, c: leaky_relu_derivative_pair_moment(q, c, slope),
        )
    if name == "erf":
        return ClosedFormKernel("closed form (Williams 1998)", erf_pair_moment, erf_derivative_pair_moment)
    if name == "sin":
        return ClosedFormKernel("closed form (sin)", sin_pair_moment, sin_derivative_pair_moment)
    return None


def pair_kernel(activation: Activation, nodes: int = 200) -> PairKernel:
    """The most accurate kernel available: the closed form if any, else 2-D quadrature."""
    return closed_form_kernel(activation) or QuadratureKernel(activation, nodes)


def _normalised_hermite(nodes: Array, terms: int) -> Array:
    """``He_k(x) / sqrt(k!)`` for k < terms at the nodes, shape (len(nodes), terms), by the
    stable recurrence ``h_{k+1} = (x h_k - sqrt(k) h_{k-1}) / sqrt(k + 1)``."""
    basis = np.empty((nodes.size, terms))
    basis[:, 0] = 1.0
    if terms > 1:
        basis[:, 1] = nodes
    for k in range(1, terms - 1):
        basis[:, k + 1] = (nodes * basis[:, k] - math.sqrt(k) * basis[:, k - 1]) / math.sqrt(k + 1)
    return basis


class HermiteSeries:
    """Mehler series of the kernel at many variances: ``K(q_i, c) ~= sum_{k<terms} A_ik c^k``.

    ``A_ik = a_k(q_i)^2`` with ``a_k(q) = E[phi(sqrt(q) z) He_k(z)] / sqrt(k!)`` by an
    ``nodes``-point Gauss–Hermite rule, so that ``K(q_i, 1) ~= E[phi^2]`` and the slope is
    ``dK/dc = sum_k k A_ik c^(k-1) = q E[phi'(u1) phi'(u2)]``.  The coefficients are
    non-negative, so the series is increasing and convex in ``c`` on ``[0, 1]``.

    Accuracy: the truncation error is ``sum_{k>=terms} A_ik c^k``; for an activation
    analytic in a strip (tanh, sigmoid, gelu...) ``A_ik`` decays geometrically in
    ``sqrt(k)`` with a rate that slows like ``1 / sqrt(q)``.  With the defaults it is
    below 1e-8 for tanh at ``q <= 4`` and ``c <= 0.99``; kinks give algebraic decay.

    Args:
        activation: the activation.
        q: variances, a 1-D array.
        terms: number of series terms.
        nodes: Gauss–Hermite nodes for the coefficients (must exceed ``terms``).
    """

    def __init__(self, activation: Activation, q: Array, terms: int = 120, nodes: int = 320):
        x, w = quadrature.gauss_hermite(nodes)
        values = activation(np.sqrt(np.asarray(q, dtype=float))[:, None] * x)
        self.coefficients = ((values * w) @ _normalised_hermite(np.asarray(x), terms)) ** 2
        self._powers = np.arange(terms)

    def pair_moment(self, c: Array, index: Array) -> Array:
        """``K(q_i, c_i)`` for the rows ``index`` (Horner's rule)."""
        return _horner(self.coefficients[index], np.asarray(c, dtype=float))

    def pair_moment_slope(self, c: Array, index: Array) -> Array:
        """``dK/dc (q_i, c_i)`` for the rows ``index``."""
        return _horner(self.coefficients[index, 1:] * self._powers[1:], np.asarray(c, dtype=float))


def _horner(coefficients: Array, x: Array) -> Array:
    """``sum_k coefficients[:, k] x^k`` row by row."""
    result = coefficients[:, -1].copy()
    for k in range(coefficients.shape[1] - 2, -1, -1):
        result *= x
        result += coefficients[:, k]
    return result
