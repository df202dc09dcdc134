"""Mean-field signal propagation through a wide fully connected network.

The network is ``h^{l+1} = W^{l+1} phi(h^l) + b^{l+1}`` with
``W_ij ~ N(0, sigma_w2 / N)`` and ``b_i ~ N(0, sigma_b2)``.  In the infinite-width
limit each layer's pre-activations are centred Gaussians, described by

* the **q-map** (length): ``q^{l+1} = sigma_w2 E[phi(sqrt(q^l) z)^2] + sigma_b2``;
* the **c-map** (correlation of two inputs, both at the fixed point ``q*``):
  ``c^{l+1} = (sigma_w2 E[phi(u1) phi(u2)] + sigma_b2) / q*``, ``(u1, u2)`` with
  variances ``q*`` and covariance ``q* c^l``;
* ``chi_1 = sigma_w2 E[phi'(sqrt(q*) z)^2]``, the slope of the c-map at ``c = 1`` and
  the growth of the squared gradient norm per layer going backwards;
* ``chi_c = sigma_w2 E[phi'(u1) phi'(u2)]`` at ``c*``, the slope of the c-map there;
* depth scales ``xi_q = -1 / log(q_map'(q*))`` and ``xi_c = -1 / log(chi_c)``.

The ordered phase has ``chi_1 < 1`` (``c* = 1``: inputs become alike), the chaotic
phase ``chi_1 > 1`` (``c* < 1``: nearby inputs decorrelate); at the edge of chaos
``chi_1 = 1`` and ``xi_c`` diverges.  Networks deeper than about ``6 xi_c`` do not train.

References: Poole, Lahiri, Raghu, Sohl-Dickstein, Ganguli (2016), "Exponential
expressivity in deep neural networks through transient chaos" (q-map, c-map, chi_1);
Schoenholz, Gilmer, Ganguli, Sohl-Dickstein (2017), "Deep Information Propagation"
(xi_q, xi_c eqs. 5-9, trainable depth ~ 6 xi_c); Pennington, Schoenholz, Ganguli (2017),
"Resurrecting the sigmoid in deep learning through dynamical isometry" (Jacobian spectrum);
Hayou, Doucet, Rousseau (2019), "On the Impact of the Activation Function on Deep Neural
Networks Training" (the edge of chaos of ReLU-like activations is a single point).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import numpy as np
from scipy import optimize

from initlab import quadrature
from initlab.activations import Activation, get_activation
from initlab.errors import InitlabError, bad_value
from initlab.theory.kernels import pair_kernel
from initlab.theory.solvers import Q_GROWTH_LIMIT, solve_c_star, solve_q_star

Phase = Literal["ordered", "critical", "chaotic"]

CRITICAL_TOLERANCE = 1e-9
"""``|chi_1 - 1|`` at or below this counts as critical (``xi_c = inf``)."""

Q_FLOOR = 1e-12
"""Where ``q* = 0``, quantities are evaluated at this variance (the limit ``q -> 0+``)."""

_PROBE = np.linspace(-12.0, 12.0, 241)


def resolve_activation(where: str, activation: Any) -> Activation:
    """``get_activation(activation)``, checked to give finite phi and phi' on [-12, 12]."""
    resolved = get_activation(activation)
    with np.errstate(all="ignore"):
        values = np.asarray(resolved(_PROBE), dtype=float)
        slopes = np.asarray(resolved.derivative(_PROBE), dtype=float)
    for what, array in (("phi", values), ("phi'", slopes)):
        bad = ~np.isfinite(array)
        if bad.any():
            x = float(_PROBE[bad][0])
            raise bad_value(
                where,
                "activation",
                resolved.name,
                "an activation with finite values and slopes for finite inputs",
                f"{what}({x:g}) = {float(array[bad][0])!r}; mean-field theory integrates phi over "
                "the whole real line, so it must be finite everywhere.",
            )
    return resolved


def check_sigma_w2(where: str, sigma_w2: Any) -> float:
    """``sigma_w2`` as a float, checked finite and > 0."""
    value = _as_float(where, "sigma_w2", sigma_w2)
    if not (math.isfinite(value) and value > 0):
        raise bad_value(
            where,
            "sigma_w2",
            sigma_w2,
            "a finite weight variance > 0 (Var W_ij = sigma_w2 / fan_in)",
            "sigma_w2 = 0 gives a network whose output ignores its input; use a small positive value.",
        )
    return value


def check_sigma_b2(where: str, sigma_b2: Any) -> float:
    """``sigma_b2`` as a float, checked finite and >= 0."""
    value = _as_float(where, "sigma_b2", sigma_b2)
    if not (math.isfinite(value) and value >= 0):
        raise bad_value(where, "sigma_b2", sigma_b2, "a finite bias variance >= 0 (0 for zero biases)")
    return value


def _as_float(where: str, argument: str, value: Any) -> float:
    if isinstance(value, bool):
        raise bad_value(where, argument, value, "a real number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise bad_value(where, argument, value, "a real number") from None


def depth_scale(slope: float) -> float:
    """``-1 / log(slope)`` for a contraction ``0 <= slope < 1``: ``inf`` at or above 1, 0 at 0."""
    slope = abs(slope)
    if slope >= 1:
        return math.inf
    if slope == 0:
        return 0.0
    return -1.0 / math.log(slope)


@dataclass(frozen=True)
class Propagation:
    """Layer-by-layer mean-field prediction for a network of finite depth.

    Attributes:
        q: ``q^l`` for ``l = 0..depth``, the pre-activation variance per layer.
        c: ``c^l`` for ``l = 0..depth`` (the correlation of two inputs with equal
            ``q^0``), or ``None`` when no ``c0`` was given.
        chi: ``chi^l = sigma_w2 E[phi'(sqrt(q^l) z)^2]`` for ``l = 0..depth-1``:
            ``E||dL/dh^l||^2 = chi^l E||dL/dh^{l+1}||^2``.
        gradient_norm_ratio: ``E||dL/dh^l||^2 / E||dL/dh^depth||^2 = prod_{k=l}^{depth-1} chi^k``
            for ``l = 0..depth`` (1 at the top).
    """

    q: np.ndarray
    c: np.ndarray | None
    chi: np.ndarray
    gradient_norm_ratio: np.ndarray

    def to_dict(self) -> dict:
        """JSON form: lists of floats (``c`` is ``null`` when not propagated)."""
        return {
            "q": self.q.tolist(),
            "c": None if self.c is None else self.c.tolist(),
            "chi": self.chi.tolist(),
            "gradient_norm_ratio": self.gradient_norm_ratio.tolist(),
        }


@dataclass(frozen=True)
class JacobianSpectrum:
    """Mean and variance of the eigenvalues of ``J J^T`` for the input-output Jacobian ``J``.

    Attributes:
        depth: number of layers ``L``.
        weights: ``"gaussian"`` or ``"orthogonal"``.
        mean: ``m_1 = (sigma_w2 mu_1)^L``.
        variance: ``m_2 - m_1^2 = m_1^2 L (mu_2 / mu_1^2 - 1 - s_1)``.
    """

    depth: int
    weights: str
    mean: float
    variance: float

    def to_dict(self) -> dict:
        """JSON form."""
        return {"depth": self.depth, "weights": self.weights, "mean": self.mean, "variance": self.variance}


_S_TRANSFORM_FIRST_MOMENT = {"gaussian": -1.0, "orthogonal": 0.0}


class MeanField:
    """Mean-field theory of a wide fully connected network at one initialization.

    Args:
        activation: a name, :class:`~initlab.activations.Activation`, torch module or
            numpy callable (see :func:`initlab.activations.get_activation`).
        sigma_w2: weight variance times fan-in, ``Var W_ij = sigma_w2 / N`` (> 0).
        sigma_b2: bias variance (>= 0).
        q0: starting variance for the fixed-point search (the iterates of the q-map
            from ``q0`` converge to the ``q*`` found).
        quadrature_nodes: nodes per axis of the 2-D Gauss–Hermite rule used for the
            c-map when the activation has no closed-form kernel.

    Raises:
        InitlabError: ``sigma_w2 <= 0``, ``sigma_b2 < 0``, a non-finite value, or an
            activation with non-finite values.

    Example:
        >>> MeanField("relu", 2.0, 0.0).phase
        'critical'
    """

    def __init__(
        self, activation: Any, sigma_w2: float, sigma_b2: float, *, q0: float = 1.0, quadrature_nodes: int = 200
    ):
        self.activation = resolve_activation("MeanField", activation)
        self.sigma_w2 = check_sigma_w2("MeanField", sigma_w2)
        self.sigma_b2 = check_sigma_b2("MeanField", sigma_b2)
        self.q0 = _as_float("MeanField", "q0", q0)
        if not (math.isfinite(self.q0) and self.q0 > 0):
            raise bad_value("MeanField", "q0", q0, "a finite starting variance > 0")
        self.kernel = pair_kernel(self.activation, quadrature_nodes)

    def __repr__(self) -> str:
        return f"MeanField({self.activation.name!r}, sigma_w2={self.sigma_w2!r}, sigma_b2={self.sigma_b2!r})"

    @property
    def _where(self) -> str:
        return repr(self)

    def _finite(self, values, what: str):
        array = np.asarray(values, dtype=float)
        if not np.all(np.isfinite(array)):
            raise bad_value(
                self._where,
                "activation",
                self.activation.name,
                f"an activation whose {what} is finite",
                f"It evaluated to {values!r}; the activation grows too fast for Gaussian inputs.",
            )
        return values

    def _second_moment(self, q):
        with np.errstate(over="ignore", invalid="ignore"):
            moment = self.activation.second_moment(q)
        return self._finite(moment, "E[phi(sqrt(q) z)^2]")

    # ----------------------------------------------------------------- length

    def q_map(self, q):
        """``q -> sigma_w2 E[phi(sqrt(q) z)^2] + sigma_b2`` (Poole et al. 2016, eq. 3).

        Args:
            q: a variance or array of variances (finite, >= 0).

        Returns:
            The next layer's variance, a float or an array of ``q``'s shape.
        """
        variance = np.asarray(q, dtype=float) if not isinstance(q, bool) else np.nan
        if not np.all(np.isfinite(variance)) or np.any(variance < 0):
            raise bad_value(self._where + ".q_map", "q", q, "finite variances >= 0")
        result = self.sigma_w2 * np.asarray(self._second_moment(variance)) + self.sigma_b2
        return float(result) if result.ndim == 0 else result

    @cached_property
    def q_star(self) -> float:
        """The stable fixed point ``q* = q_map(q*)`` reached by iterating the q-map from ``q0``.

        Found by bracketing and a superlinear root finder (not by slow iteration), so
        it is accurate to ~1e-15 relative even near criticality.  ``0.0`` when the
        variance decays to zero (e.g. tanh with ``sigma_b2 = 0``, ``sigma_w2 <= 1``).  If the
        q-map is the identity (ReLU at ``sigma_w2 = 2``, ``sigma_b2 = 0``), every ``q`` is a
        fixed point and ``q0`` is returned.

        Raises:
            InitlabError: no fixed point: the variance grows without bound.
        """
        q_star = float(
            solve_q_star(self._second_moment, np.array([self.sigma_w2]), np.array([self.sigma_b2]), self.q0)[0]
        )
        if math.isinf(q_star):
            limit = Q_GROWTH_LIMIT * max(1.0, self.q0, self.sigma_b2)
            growth = self.q_map(limit) / limit
            raise bad_value(
                self._where + ".q_star",
                "sigma_w2",
                self.sigma_w2,
                "a weight variance for which the q-map has a fixed point",
                f"q_map(q) > q for every q up to {limit:.3g} (q_map(q)/q -> {growth:.6g} > 1 there), "
                "so the pre-activation variance grows without bound with depth. Lower sigma_w2.",
            )
        return q_star

    @property
    def _q_eval(self) -> float:
        return max(self.q_star, Q_FLOOR)

    @cached_property
    def q_map_slope(self) -> float:
        """``q_map'(q*) = sigma_w2 d/dq E[phi(sqrt(q) z)^2] = sigma_w2 E[u phi(u) phi'(u)] / q*``.

        Stein's lemma turns Schoenholz et al.'s ``chi_1 + sigma_w2 E[phi phi'']`` (eq. 5)
        into an integral of ``phi'`` only, which stays accurate for kinks.
        """
        q = self._q_eval
        phi = self.activation

        def integrand(u):
            return u * phi(u) * phi.derivative(u)

        return self.sigma_w2 * float(quadrature.expect_graded(integrand, q)) / q

    @cached_property
    def chi_1(self) -> float:
        """``chi_1 = sigma_w2 E[phi'(sqrt(q*) z)^2]`` (Poole et al. 2016, eq. 7).

        The factor by which the mean squared gradient grows per layer going back, and
        the slope of the c-map at ``c = 1``.
        """
        moment = self.activation.derivative_second_moment(self._q_eval)
        return self.sigma_w2 * float(self._finite(moment, "E[phi'(sqrt(q) z)^2]"))

    @property
    def phase(self) -> Phase:
        """``"ordered"`` (``chi_1 < 1``), ``"critical"`` (``|chi_1 - 1| <= 1e-9``) or ``"chaotic"``."""
        if abs(self.chi_1 - 1) <= CRITICAL_TOLERANCE:
            return "critical"
        return "ordered" if self.chi_1 < 1 else "chaotic"

    @property
    def xi_q(self) -> float:
        """Depth scale of the length: ``xi_q = -1 / log(q_map'(q*))`` (Schoenholz et al. 2017, eq. 5).

        ``|q^l - q*| ~ exp(-l / xi_q)``; ``inf`` when the fixed point is marginal.
        """
        return depth_scale(self.q_map_slope)

    # ------------------------------------------------------------ correlation

    def _kernel_c_map(self, q: float, c):
        """c-map at variance q, normalised by ``sigma_w2 K(q, 1) + sigma_b2`` so that ``c = 1`` maps to 1."""
        kernel = self.kernel
        numerator = self.sigma_w2 * np.asarray(kernel.pair_moment(q, c)) + self.sigma_b2
        denominator = self.sigma_w2 * float(kernel.pair_moment(q, 1.0)) + self.sigma_b2
        return self._finite(numerator / denominator, "E[phi(u1) phi(u2)]")

    def c_map(self, c):
        """``c -> (sigma_w2 E[phi(u1) phi(u2)] + sigma_b2) / q*`` (Poole et al. 2016, eq. 5).

        ``(u1, u2)`` is centred Gaussian with variances ``q*`` and covariance ``q* c``;
        the expectation is a closed form for relu-like, erf, sin and linear activations
        (:mod:`initlab.theory.kernels`), else 2-D Gauss–Hermite quadrature.  The
        denominator is written ``sigma_w2 E[phi(u)^2] + sigma_b2`` (equal to ``q*``) so that
        ``c_map(1) = 1`` exactly.  At ``q* = 0`` the map is taken at ``q = 1e-12``.

        Args:
            c: a correlation or array of correlations in ``[-1, 1]``.
        """
        correlation = np.asarray(c, dtype=float) if not isinstance(c, bool) else np.nan
        if not np.all(np.isfinite(correlation)) or np.any(np.abs(correlation) > 1):
            raise bad_value(self._where + ".c_map", "c", c, "correlations in [-1, 1]")
        result = np.asarray(self._kernel_c_map(self._q_eval, correlation))
        return float(result) if result.ndim == 0 else result

    @cached_property
    def c_star(self) -> float:
        """The stable fixed point of the c-map: 1 unless chaotic, else the ``c* < 1`` in ``[0, 1)``."""
        if self.chi_1 <= 1 + CRITICAL_TOLERANCE:
            return 1.0
        q = self._q_eval
        return float(solve_c_star(lambda c, index: self._kernel_c_map(q, c), 1)[0])

    @cached_property
    def chi_c(self) -> float:
        """``chi_c = sigma_w2 E[phi'(u1) phi'(u2)]`` at ``c*``: the slope of the c-map there.

        Equal to ``chi_1`` when ``c* = 1`` (Schoenholz et al. 2017, eq. 9).
        """
        if self.c_star == 1.0:
            return self.chi_1
        value = self.kernel.derivative_pair_moment(self._q_eval, self.c_star)
        return self.sigma_w2 * float(self._finite(value, "E[phi'(u1) phi'(u2)]"))

    @property
    def xi_c(self) -> float:
        """Depth scale of correlations: ``xi_c = -1 / log(chi_c)`` (Schoenholz et al. 2017, eq. 9).

        ``|c^l - c*| ~ exp(-l / xi_c)``; ``inf`` at criticality.
        """
        if self.phase == "critical":
            return math.inf
        return depth_scale(self.chi_c)

    def trainable_depth(self, k: float = 6.0) -> float:
        """``k xi_c``: the depth up to which the network trains (Schoenholz et al. 2017 find k ~ 6).

        Args:
            k: the multiple of ``xi_c`` (> 0).
        """
        factor = _as_float(self._where + ".trainable_depth", "k", k)
        if not (math.isfinite(factor) and factor > 0):
            raise bad_value(self._where + ".trainable_depth", "k", k, "a finite number > 0")
        return factor * self.xi_c

    # ------------------------------------------------------------- finite depth

    def propagate(self, depth: int, q0: float = 1.0, c0: float | None = None) -> Propagation:
        """Layer-by-layer prediction ``q^l``, ``c^l``, ``chi^l`` and gradient-norm ratios.

        ``q^{l+1} = q_map(q^l)``, ``c^{l+1} = (sigma_w2 K(q^l, c^l) + sigma_b2) / q^{l+1}``,
        ``chi^l = sigma_w2 E[phi'(sqrt(q^l) z)^2]``, and under the gradient-independence
        assumption ``E||dL/dh^l||^2 = chi^l E||dL/dh^{l+1}||^2`` (Schoenholz et al. 2017, sec. 4).

        Args:
            depth: number of layers (an integer >= 1).
            q0: variance of the first pre-activations ``h^0`` (> 0).
            c0: optional correlation of two inputs at ``h^0``, in ``[-1, 1]``.
        """
        where = self._where + ".propagate"
        if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
            raise bad_value(where, "depth", depth, "an integer >= 1")
        start = _as_float(where, "q0", q0)
        if not (math.isfinite(start) and start > 0):
            raise bad_value(where, "q0", q0, "a finite variance > 0")
        if c0 is not None:
            correlation = _as_float(where, "c0", c0)
            if not (math.isfinite(correlation) and -1 <= correlation <= 1):
                raise bad_value(where, "c0", c0, "a correlation in [-1, 1]")
        q = np.empty(depth + 1)
        q[0] = start
        c = None if c0 is None else np.empty(depth + 1)
        if c is not None:
            c[0] = correlation
        for layer in range(depth):
            q[layer + 1] = self.q_map(q[layer])
            if c is not None:
                c[layer + 1] = float(self._kernel_c_map(max(q[layer], Q_FLOOR), c[layer]))
        moments = self.activation.derivative_second_moment(np.maximum(q[:-1], Q_FLOOR))
        chi = self.sigma_w2 * np.asarray(self._finite(moments, "E[phi'(sqrt(q) z)^2]"), dtype=float)
        ratio = np.append(np.cumprod(chi[::-1])[::-1], 1.0)
        return Propagation(q=q, c=c, chi=chi, gradient_norm_ratio=ratio)

    def jacobian_spectrum(self, depth: int, weights: str = "gaussian") -> JacobianSpectrum:
        """Mean and variance of the spectrum of ``J J^T`` for ``depth`` layers at ``q*``.

        With ``mu_k = E[phi'(sqrt(q*) z)^(2k)]`` and ``s_1`` the first moment of the
        S-transform of ``W W^T`` (``-1`` Gaussian, ``0`` orthogonal):
        ``m_1 = (sigma_w2 mu_1)^L`` and ``m_2 - m_1^2 = m_1^2 L (mu_2 / mu_1^2 - 1 - s_1)``.
        At criticality the variance is ``L mu_2 / mu_1^2`` (Gaussian) and
        ``L (mu_2 / mu_1^2 - 1)`` (orthogonal): only orthogonal weights with a
        near-linear phi approach dynamical isometry (Pennington, Schoenholz, Ganguli 2017,
        sec. 2.5 and eq. 21).

        Args:
            depth: number of layers ``L`` (an integer >= 1).
            weights: ``"gaussian"`` or ``"orthogonal"``.
        """
        where = self._where + ".jacobian_spectrum"
        if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
            raise bad_value(where, "depth", depth, "an integer >= 1")
        if weights not in _S_TRANSFORM_FIRST_MOMENT:
            raise bad_value(where, "weights", weights, "'gaussian' or 'orthogonal'")
        q = self._q_eval
        slope = self.activation.derivative
        mu_1 = float(self.activation.derivative_second_moment(q))
        mu_2 = float(quadrature.expect_graded(lambda u: slope(u) ** 4, q))
        if mu_1 == 0:
            raise bad_value(
                where, "activation", self.activation.name, "an activation whose slope is not 0 almost surely at q*"
            )
        mean = (self.sigma_w2 * mu_1) ** depth
        variance = mean**2 * depth * (mu_2 / mu_1**2 - 1 - _S_TRANSFORM_FIRST_MOMENT[weights])
        return JacobianSpectrum(depth=int(depth), weights=weights, mean=mean, variance=variance)

    def to_dict(self) -> dict:
        """JSON form of every fixed-point quantity (``inf`` written as ``None``)."""

        def finite(value: float) -> float | None:
            return value if math.isfinite(value) else None

        return {
            "activation": self.activation.to_dict(),
            "sigma_w2": self.sigma_w2,
            "sigma_b2": self.sigma_b2,
            "q_star": self.q_star,
            "c_star": self.c_star,
            "chi_1": self.chi_1,
            "chi_c": self.chi_c,
            "xi_q": finite(self.xi_q),
            "xi_c": finite(self.xi_c),
            "trainable_depth": finite(self.trainable_depth()),
            "phase": self.phase,
            "c_map_method": self.kernel.method,
        }


# ------------------------------------------------------------------ critical line

_HOMOGENEITY_PROBE = np.linspace(-4.0, 4.0, 17)


def _is_positively_homogeneous(activation: Activation) -> bool:
    """``phi(a x) = a phi(x)`` for ``a > 0`` (relu, leaky relu, linear), checked on a probe grid."""
    values = activation(_HOMOGENEITY_PROBE)
    return all(
        np.allclose(activation(scale * _HOMOGENEITY_PROBE), scale * values, rtol=1e-12, atol=1e-300)
        for scale in (0.5, 3.0)
    )


def _critical_point(activation: Activation, sigma_b2: float) -> tuple[float, str]:
    """``(sigma_w2*, "")`` or ``(nan, why there is none)``."""
    if _is_positively_homogeneous(activation):
        # chi_1 = sigma_w2 E[phi'(z)^2] whatever q is; the q-map is q -> sigma_w2 E[phi(z)^2] q + sigma_b2.
        critical = 1.0 / float(activation.derivative_second_moment(1.0))
        if sigma_b2 == 0:
            return critical, ""
        return math.nan, (
            f"{activation.name} is positively homogeneous, so chi_1 = sigma_w2 E[phi'(z)^2] does not "
            f"depend on q and equals 1 only at sigma_w2 = {critical:.15g}; there the q-map is "
            f"q -> q + sigma_b2, which has no fixed point when sigma_b2 > 0. Its edge of chaos is the "
            f"single point (sigma_w2={critical:.15g}, sigma_b2=0) (Hayou et al. 2019)."
        )

    def excess(sigma_w2: float) -> float:
        try:
            return MeanField(activation, sigma_w2, sigma_b2).chi_1 - 1.0
        except InitlabError:  # no fixed point: signals and gradients grow, as beyond the edge
            return 1.0

    low = 1e-3
    while excess(low) >= 0:
        low /= 10
        if low < 1e-12:
            return math.nan, "chi_1 >= 1 even for sigma_w2 = 1e-12: the activation's slope is unbounded"
    high = 1.0
    while excess(high) <= 0:
        high *= 2
        if high > 1e6:
            return math.nan, (
                "chi_1 stays below 1 for every sigma_w2 up to 1e6: the gradient shrinks at any weight "
                "scale (the activation saturates faster than the weights grow)"
            )
    root = optimize.brentq(excess, low, high, xtol=1e-15, rtol=4 * np.finfo(float).eps)
    if abs(excess(root)) <= 1e-7:
        return root, ""
    chi_below = MeanField(activation, root * (1 - 1e-9), sigma_b2).chi_1
    return math.nan, (
        f"chi_1 rises only to {chi_below:.6g} as sigma_w2 approaches {root:.6g}, where the q-map stops "
        "having a fixed point (the variance grows without bound): chi_1 never equals 1 at a finite q*"
    )


def critical_sigma_w2(activation: Any, sigma_b2: float) -> float:
    """The weight variance on the edge of chaos: the ``sigma_w2`` with ``chi_1(q*(sigma_w2)) = 1``.

    Found by Brent's bracketing root finder on ``chi_1 - 1`` (Schoenholz et al. 2017,
    fig. 1); for positively homogeneous activations (relu, leaky relu, linear)
    ``chi_1 = sigma_w2 E[phi'(z)^2]`` for every ``q``, so ``sigma_w2* = 1 / E[phi'(z)^2]``
    exactly (2 for relu), and it exists only for ``sigma_b2 = 0`` (Hayou et al. 2019).

    Args:
        activation: as for :class:`MeanField`.
        sigma_b2: bias variance (>= 0).

    Raises:
        InitlabError: no critical point exists; the message says why.
    """
    where = "critical_sigma_w2"
    resolved = resolve_activation(where, activation)
    variance = check_sigma_b2(where, sigma_b2)
    value, reason = _critical_point(resolved, variance)
    if math.isnan(value):
        raise bad_value(
            where, "sigma_b2", sigma_b2, f"a bias variance at which {resolved.name} has an edge of chaos", reason
        )
    return value


def critical_line(activation: Any, sigma_b2_values) -> np.ndarray:
    """``critical_sigma_w2`` for each ``sigma_b2``; ``nan`` where no critical point exists.

    Args:
        activation: as for :class:`MeanField`.
        sigma_b2_values: 1-D array of bias variances (finite, >= 0).
    """
    where = "critical_line"
    resolved = resolve_activation(where, activation)
    values = np.atleast_1d(np.asarray(sigma_b2_values, dtype=float))
    if values.ndim != 1 or not np.all(np.isfinite(values)) or np.any(values < 0):
        raise bad_value(where, "sigma_b2_values", sigma_b2_values, "a 1-D array of finite bias variances >= 0")
    return np.array([_critical_point(resolved, float(value))[0] for value in values])
