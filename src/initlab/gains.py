"""The gain of an activation under a named criterion.

A gain g scales a fan-based standard deviation, ``std = g / sqrt(fan)``.  Criteria:

* ``"torch"`` — exactly ``torch.nn.init.calculate_gain``'s table: linear and
  convolutions 1, sigmoid 1, tanh 5/3, relu sqrt(2), leaky_relu
  sqrt(2 / (1 + a^2)) (a = 0.01 by default), selu 3/4.  Other activations are an
  error: torch has no value for them.
* ``"forward"`` — ``1 / sqrt(E[phi(z)^2])``, z ~ N(0, 1): with
  ``Var(W) = g^2 / fan_in`` a pre-activation of second moment 1 keeps second
  moment 1 in the next layer (relu -> sqrt(2), linear -> 1; He et al. 2015, eq. 10,
  generalised).
* ``"critical"`` — ``sigma_w`` at the edge of chaos, chi_1 = 1, for a bias variance
  ``sigma_b2`` (default 0), from :func:`initlab.theory.critical_sigma_w2`
  (Poole et al. 2016; Schoenholz et al. 2017).

This module imports the theory lazily; :mod:`initlab.theory` never imports it.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from initlab.activations import Activation, get_activation
from initlab.errors import InitlabError, bad_value

CRITERIA = ("torch", "forward", "critical")
"""The criteria :func:`gain` understands."""

TORCH_KNOWN = ("linear", "sigmoid", "tanh", "relu", "leaky_relu", "selu")
"""Canonical activations ``torch.nn.init.calculate_gain`` has a value for (convolutions map to linear)."""


def torch_gain(activation: Activation) -> float:
    """``torch.nn.init.calculate_gain`` for an activation torch knows, computed the same way.

    Raises:
        InitlabError: the activation is not in torch's table.
    """
    if activation.name == "leaky_relu":
        return math.sqrt(2.0 / (1 + activation.params["negative_slope"] ** 2))
    table = {"linear": 1.0, "sigmoid": 1.0, "tanh": 5.0 / 3, "relu": math.sqrt(2.0), "selu": 3.0 / 4}
    if activation.name not in table:
        raise bad_value(
            "gain",
            "activation",
            activation.name,
            f"one of {', '.join(TORCH_KNOWN)} (or a conv layer name) for criterion='torch'",
            "torch.nn.init.calculate_gain has no value for it; use criterion='forward'.",
        )
    return table[activation.name]


def forward_gain(activation: Activation) -> float:
    """``1 / sqrt(E[phi(z)^2])`` for z ~ N(0, 1): preserves the pre-activation second moment.

    Raises:
        InitlabError: ``E[phi(z)^2]`` is 0 or not finite.
    """
    second_moment = float(activation.second_moment(1.0))
    if not (math.isfinite(second_moment) and second_moment > 0):
        raise bad_value(
            "gain",
            "activation",
            activation.name,
            "an activation with a finite, positive E[phi(z)^2] for criterion='forward'",
            f"E[phi(z)^2] = {second_moment!r}.",
        )
    return math.sqrt(1 / second_moment)


def critical_gain(activation: Activation, sigma_b2: float = 0.0) -> float:
    """``sigma_w = sqrt(sigma_w^2)`` with chi_1 = sigma_w^2 E[phi'(sqrt(q*) z)^2] = 1 at the fixed point q*.

    Raises:
        InitlabError: ``sigma_b2`` is not a finite number >= 0, or the theory module is
            not available yet.
    """
    if (
        isinstance(sigma_b2, bool)
        or not isinstance(sigma_b2, numbers.Real)
        or not (math.isfinite(sigma_b2) and sigma_b2 >= 0)
    ):
        raise bad_value("gain", "sigma_b2", sigma_b2, "a finite number >= 0 (the bias variance)")
    try:
        from initlab.theory import critical_sigma_w2
    except ImportError as error:
        raise InitlabError(
            f"gain: criterion='critical' is not available yet: the theory module "
            f"initlab.theory.critical_sigma_w2 cannot be imported ({error}). "
            "Use criterion='forward' or criterion='torch'."
        ) from None
    return math.sqrt(float(critical_sigma_w2(activation, float(sigma_b2))))


def gain(activation: Any, *, criterion: str = "forward", **params: Any) -> float:
    """The gain of ``activation`` under ``criterion``.

    Args:
        activation: anything :func:`initlab.activations.get_activation` accepts: a name,
            an Activation, a torch module or function, or a numpy callable.
        criterion: ``"torch"``, ``"forward"`` or ``"critical"`` (see the module docstring).
        **params: activation parameters (``negative_slope``, ``alpha``, ...) and, for
            ``"critical"`` only, ``sigma_b2`` (bias variance, default 0).

    Returns:
        The gain, a float.

    Examples:
        >>> gain("relu") == 2 ** 0.5
        True
        >>> gain("tanh", criterion="torch")
        1.6666666666666667

    Raises:
        InitlabError: unknown criterion or activation, a parameter that does not fit,
            an activation torch has no value for (``"torch"``), or ``"critical"``
            before the theory module exists.
    """
    if criterion not in CRITERIA:
        raise bad_value("gain", "criterion", criterion, f"one of {', '.join(CRITERIA)}")
    sigma_b2 = params.pop("sigma_b2", None)
    if sigma_b2 is not None and criterion != "critical":
        raise bad_value(
            "gain",
            "sigma_b2",
            sigma_b2,
            "no sigma_b2 unless criterion='critical'",
            f"criterion={criterion!r} does not depend on the bias variance.",
        )
    resolved = get_activation(activation, **params)
    if criterion == "torch":
        return torch_gain(resolved)
    if criterion == "forward":
        return forward_gain(resolved)
    return critical_gain(resolved, 0.0 if sigma_b2 is None else sigma_b2)
