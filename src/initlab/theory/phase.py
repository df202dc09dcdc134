"""The phase diagram: q*, chi_1, c*, chi_c and xi_c over a grid of (sigma_w2, sigma_b2).

Everything is vectorised over the grid: one fixed-point problem per grid point,
solved together by :mod:`initlab.theory.solvers`.

* q*: the q-map needs ``M(q) = E[phi(sqrt(q) z)^2]``, which depends on ``q`` only, so
  it is tabulated once on a log-spaced grid of ``q`` (40 points per decade, a cubic
  spline in ``log q``, ~1e-9 relative), the fixed points are solved on the spline,
  then polished by one Newton step with the exact ``M`` (to ~1e-15).  Positively
  homogeneous activations (relu, leaky relu, linear) have ``M(q) = M(1) q`` and the
  closed form ``q* = sigma_b2 / (1 - sigma_w2 M(1))``.
* chi_1 = ``sigma_w2 E[phi'(sqrt(q*) z)^2]`` with the exact moment.
* c* and chi_c in the chaotic phase: closed-form kernels where they exist
  (:func:`~initlab.theory.kernels.closed_form_kernel`), else the Mehler series
  :class:`~initlab.theory.kernels.HermiteSeries` (one 1-D quadrature per point).
  In the ordered phase ``c* = 1`` and ``chi_c = chi_1``.

Reference: Schoenholz et al. (2017), "Deep Information Propagation", fig. 1 and eq. 9;
Poole et al. (2016), fig. 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.interpolate import CubicSpline

from initlab.activations import Activation
from initlab.errors import bad_value
from initlab.theory.kernels import HermiteSeries, closed_form_kernel
from initlab.theory.mean_field import (
    CRITICAL_TOLERANCE,
    Q_FLOOR,
    _is_positively_homogeneous,
    resolve_activation,
)
from initlab.theory.solvers import Q_GROWTH_LIMIT, Q_ZERO, solve_c_star, solve_q_star

PHASES = ("ordered", "critical", "chaotic", "unbounded")
"""Phase labels; ``"unbounded"``: the q-map has no fixed point (the variance explodes)."""

_TABLE_POINTS_PER_DECADE = 40


@dataclass(frozen=True)
class PhaseDiagram:
    """Mean-field quantities on a ``(sigma_w2, sigma_b2)`` grid; arrays have shape ``(n_w, n_b)``.

    Attributes:
        activation: the activation's name.
        sigma_w2: the weight variances, shape ``(n_w,)``.
        sigma_b2: the bias variances, shape ``(n_b,)``.
        q_star: fixed point of the q-map (``inf`` where unbounded).
        chi_1: ``sigma_w2 E[phi'(sqrt(q*) z)^2]`` (``nan`` where unbounded).
        c_star: fixed point of the c-map (``nan`` where unbounded).
        chi_c: slope of the c-map at ``c*`` (``nan`` where unbounded).
        xi_c: correlation depth scale ``-1 / log chi_c`` (``inf`` at criticality,
            ``nan`` where unbounded).
        phase: one of :data:`PHASES` per point.
    """

    activation: str
    sigma_w2: np.ndarray
    sigma_b2: np.ndarray
    q_star: np.ndarray
    chi_1: np.ndarray
    c_star: np.ndarray
    chi_c: np.ndarray
    xi_c: np.ndarray
    phase: np.ndarray

    def to_dict(self) -> dict:
        """JSON form: nested lists indexed ``[i_w][i_b]``; ``inf`` and ``nan`` become ``None``."""

        def plain(array: np.ndarray) -> list:
            values = array.astype(object)
            values[~np.isfinite(array)] = None
            return values.tolist()

        return {
            "activation": self.activation,
            "sigma_w2": self.sigma_w2.tolist(),
            "sigma_b2": self.sigma_b2.tolist(),
            "q_star": plain(self.q_star),
            "chi_1": plain(self.chi_1),
            "c_star": plain(self.c_star),
            "chi_c": plain(self.chi_c),
            "xi_c": plain(self.xi_c),
            "phase": self.phase.tolist(),
        }


def _grid(argument: str, values: Any, lowest: float, strict: bool) -> np.ndarray:
    try:
        array = np.atleast_1d(np.asarray(values, dtype=float))
    except (TypeError, ValueError):
        array = np.array([np.nan])
    bound_ok = np.all(array > lowest) if strict else np.all(array >= lowest)
    if array.ndim != 1 or array.size == 0 or not np.all(np.isfinite(array)) or not bound_ok:
        bound = "> 0" if strict else ">= 0"
        raise bad_value("phase_diagram", argument, values, f"a non-empty 1-D array of finite values {bound}")
    return array


def _checked(values, activation: Activation, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if not np.all(np.isfinite(array)):
        raise bad_value(
            "phase_diagram",
            "activation",
            activation.name,
            f"an activation whose {what} is finite",
            "It overflows for the variances of this grid; lower the largest sigma_w2 or sigma_b2.",
        )
    return array


def _q_star_homogeneous(activation: Activation, sigma_w2: np.ndarray, sigma_b2: np.ndarray) -> np.ndarray:
    """``q* = sigma_b2 / (1 - sigma_w2 M(1))`` for ``M(q) = M(1) q``; 0, 1 (= q0) or inf at the margins."""
    slope = sigma_w2 * float(activation.second_moment(1.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        q_star = np.where(slope < 1, sigma_b2 / (1 - slope), np.inf)
    q_star[(slope == 1) & (sigma_b2 == 0)] = 1.0
    return q_star


def _q_star_tabulated(activation: Activation, sigma_w2: np.ndarray, sigma_b2: np.ndarray) -> np.ndarray:
    """Fixed points on a spline of ``M(q)``, then one Newton step with the exact ``M``."""
    q_max = Q_GROWTH_LIMIT * max(1.0, float(sigma_b2.max()))
    low, high = math.log10(Q_ZERO) - 2, math.log10(q_max) + 2
    log_q = np.linspace(low, high, int((high - low) * _TABLE_POINTS_PER_DECADE) + 1) * math.log(10)
    table = _checked(activation.second_moment(np.exp(log_q)), activation, "E[phi(sqrt(q) z)^2]")
    spline = CubicSpline(log_q, table)
    slope = spline.derivative()
    q_star = solve_q_star(lambda q: spline(np.log(q)), sigma_w2, sigma_b2)
    inner = np.flatnonzero(np.isfinite(q_star) & (q_star > 0))
    if inner.size:
        q = q_star[inner]
        exact = _checked(activation.second_moment(q), activation, "E[phi(sqrt(q) z)^2]")
        gap = sigma_w2[inner] * exact + sigma_b2[inner] - q
        gap_slope = sigma_w2[inner] * slope(np.log(q)) / q - 1
        steady = np.abs(gap_slope) > 1e-8
        polished = np.where(steady, q - gap / np.where(steady, gap_slope, 1.0), q)
        q_star[inner] = np.where(polished > 0, polished, q)
    return q_star


def phase_diagram(activation: Any, sigma_w2_grid, sigma_b2_grid) -> PhaseDiagram:
    """Fixed points, chi_1 and xi_c at every ``(sigma_w2, sigma_b2)`` of a grid.

    ``q* = sigma_w2 E[phi(sqrt(q*) z)^2] + sigma_b2`` (reached from ``q0 = 1``),
    ``chi_1 = sigma_w2 E[phi'(sqrt(q*) z)^2]``, ``c*`` the stable fixed point of the c-map,
    ``chi_c = sigma_w2 E[phi'(u1) phi'(u2)]`` at ``c*`` and ``xi_c = -1 / log chi_c``
    (Schoenholz et al. 2017, eqs. 3-9).  Agrees with :class:`~initlab.theory.MeanField`
    point by point (q*, chi_1 to ~1e-12; c*, chi_c to ~1e-8 where the c-map is computed
    by the Hermite series).

    Args:
        activation: as for :class:`~initlab.theory.MeanField`.
        sigma_w2_grid: 1-D array of weight variances (finite, > 0).
        sigma_b2_grid: 1-D array of bias variances (finite, >= 0).

    Returns:
        A :class:`PhaseDiagram` with arrays of shape ``(len(sigma_w2_grid), len(sigma_b2_grid))``.

    Raises:
        InitlabError: a grid with a NaN, infinite, negative (or, for sigma_w2, zero)
            entry; an activation with non-finite values or moments.
    """
    resolved = resolve_activation("phase_diagram", activation)
    weights = _grid("sigma_w2_grid", sigma_w2_grid, 0.0, strict=True)
    biases = _grid("sigma_b2_grid", sigma_b2_grid, 0.0, strict=False)
    shape = (weights.size, biases.size)
    sigma_w2, sigma_b2 = (array.ravel() for array in np.meshgrid(weights, biases, indexing="ij"))

    if _is_positively_homogeneous(resolved):
        q_star = _q_star_homogeneous(resolved, sigma_w2, sigma_b2)
    else:
        q_star = _q_star_tabulated(resolved, sigma_w2, sigma_b2)
    bounded = np.flatnonzero(np.isfinite(q_star))
    q_eval = np.maximum(q_star[bounded], Q_FLOOR)
    w, b = sigma_w2[bounded], sigma_b2[bounded]

    chi_1 = np.full(q_star.size, np.nan)
    chi_1[bounded] = w * _checked(resolved.derivative_second_moment(q_eval), resolved, "E[phi'^2]")
    c_star = np.full(q_star.size, np.nan)
    chi_c = np.full(q_star.size, np.nan)
    c_star[bounded] = 1.0
    chi_c[bounded] = chi_1[bounded]

    chaotic = np.flatnonzero(chi_1[bounded] > 1 + CRITICAL_TOLERANCE)
    if chaotic.size:
        q, w, b = q_eval[chaotic], w[chaotic], b[chaotic]
        kernel = closed_form_kernel(resolved)
        if kernel is not None:

            def pair(c, index):
                return kernel.pair_moment(q[index], c)

            def pair_slope(c, index):
                return q[index] * kernel.derivative_pair_moment(q[index], c)
        else:
            series = HermiteSeries(resolved, q)
            pair, pair_slope = series.pair_moment, series.pair_moment_slope
        everything = np.arange(chaotic.size)
        norm = q  # = sigma_w2 E[phi(u)^2] + sigma_b2 at the fixed point

        def c_map(c, index):
            return (w[index] * pair(c, index) + b[index]) / norm[index]

        fixed = solve_c_star(c_map, chaotic.size)
        target = bounded[chaotic]
        c_star[target] = fixed
        chi_c[target] = np.where(fixed < 1, w * pair_slope(fixed, everything) / norm, chi_1[target])

    phase = np.full(q_star.size, "unbounded", dtype="<U9")
    critical = np.abs(chi_1 - 1) <= CRITICAL_TOLERANCE
    phase[np.isfinite(chi_1)] = np.where(chi_1[np.isfinite(chi_1)] < 1, "ordered", "chaotic")
    phase[critical] = "critical"
    with np.errstate(divide="ignore", invalid="ignore"):
        xi_c = np.where(chi_c < 1, -1.0 / np.log(np.abs(chi_c)), np.inf)
    xi_c[critical] = np.inf
    xi_c[~np.isfinite(q_star)] = np.nan
    return PhaseDiagram(
        activation=resolved.name,
        sigma_w2=weights,
        sigma_b2=biases,
        q_star=q_star.reshape(shape),
        chi_1=chi_1.reshape(shape),
        c_star=c_star.reshape(shape),
        chi_c=chi_c.reshape(shape),
        xi_c=xi_c.reshape(shape),
        phase=phase.reshape(shape),
    )
