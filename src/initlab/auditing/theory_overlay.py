"""Mean-field prediction of the per-layer pre-activation variance ``q^l`` of a plain MLP.

For a chain of Linear layers with one activation ``phi`` between them, mean-field theory
(Poole et al. 2016, eq. 3) predicts the second moment of the pre-activations
``h^l = W^l phi(h^{l-1}) + b^l``:

    q^1     = sigma_w2(1) * mean(x^2) + sigma_b2(1)
    q^{l+1} = sigma_w2(l+1) * E[phi(sqrt(q^l) z)^2] + sigma_b2(l+1),   z ~ N(0, 1)

with ``sigma_w2(l) = mean(W^l_ij^2) * fan_in`` and ``sigma_b2(l) = mean(b^l_i^2)`` read from
the model's own weights (so layers may differ), each step being
``initlab.theory.MeanField(phi, sigma_w2, sigma_b2).q_map``. The measured ``q^l`` is
``mean(h^l^2)`` over the batch and the units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from initlab.auditing.statistics import vector_norm
from initlab.errors import InitlabError

PASS_THROUGH = (nn.Flatten, nn.Identity)
"""Modules a plain MLP may contain besides Linear layers and activations."""


@dataclass(frozen=True)
class TheoryOverlay:
    """Predicted and measured ``q^l`` for each Linear layer of a plain MLP.

    Attributes:
        activation: canonical name of the MLP's activation.
        layers: report indices of the Linear layers.
        sigma_w2, sigma_b2: per layer, read from the weights and biases.
        q_input: ``mean(x^2)`` of the batch.
        predicted_q, measured_q: per layer.
    """

    activation: str
    layers: list[int]
    sigma_w2: list[float]
    sigma_b2: list[float]
    q_input: float
    predicted_q: list[float]
    measured_q: list[float]

    def to_dict(self) -> dict:
        """Plain-data form."""
        return {
            "activation": self.activation,
            "layers": list(self.layers),
            "sigma_w2": list(self.sigma_w2),
            "sigma_b2": list(self.sigma_b2),
            "q_input": self.q_input,
            "predicted_q": list(self.predicted_q),
            "measured_q": list(self.measured_q),
        }

    @classmethod
    def from_dict(cls, data: dict) -> TheoryOverlay:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


@dataclass(frozen=True)
class MLPLayer:
    """One Linear layer of a chain: its report index, module, measured ``q`` and activation name."""

    index: int
    module: nn.Linear
    measured_q: float
    activation: str | None


def _mean_square(tensor: torch.Tensor) -> float:
    """``mean(x^2) = ||x||^2 / n``, the norm in float64 (:func:`statistics.vector_norm`)."""
    return vector_norm(tensor) ** 2 / tensor.numel()


def _weight_variances(module: nn.Linear) -> tuple[float, float]:
    sigma_w2 = _mean_square(module.weight) * module.weight.shape[1]
    sigma_b2 = 0.0 if module.bias is None else _mean_square(module.bias)
    return sigma_w2, sigma_b2


def plain_mlp_activation(layers: list[MLPLayer]) -> str | None:
    """The activation shared by every hidden layer of the chain, or None if it is not a plain MLP
    (fewer than two Linear layers, a hidden layer without activation, or mixed activations)."""
    if len(layers) < 2:
        return None
    hidden = {layer.activation for layer in layers[:-1]}
    if len(hidden) != 1 or None in hidden:
        return None
    return hidden.pop()


def predict(layers: list[MLPLayer], activation: str, q_input: float) -> TheoryOverlay:
    """Mean-field ``q^l`` for the chain ``layers`` (see the module docstring).

    Raises:
        ImportError: ``initlab.theory`` is not installed.
        InitlabError: the theory rejects a layer's ``sigma_w2`` (e.g. all-zero weights).
    """
    from initlab.theory import MeanField
    from initlab.theory.mean_field import check_sigma_b2, check_sigma_w2

    variances = [_weight_variances(layer.module) for layer in layers]
    predicted: list[float] = []
    # q_map of MeanField(phi, sigma_w2, sigma_b2) is sigma_w2 * E[phi(sqrt(q) z)^2] + sigma_b2: the
    # activation's second moment, set up once, gives it for every layer.
    second_moment = None
    for position, (sigma_w2, sigma_b2) in enumerate(variances):
        if position == 0:
            predicted.append(sigma_w2 * q_input + sigma_b2)
            continue
        if sigma_w2 <= 0:
            raise InitlabError(
                f"theory overlay: sigma_w2={sigma_w2!r} of layer {layers[position].index} is invalid; "
                "expected > 0 (mean-field theory needs random weights)."
            )
        sigma_w2, sigma_b2 = check_sigma_w2("MeanField", sigma_w2), check_sigma_b2("MeanField", sigma_b2)
        if second_moment is None:
            second_moment = MeanField(activation, 1.0, 0.0).activation.second_moment
        moment = float(second_moment(predicted[-1]))
        if not math.isfinite(moment):
            raise InitlabError(
                f"theory overlay: E[phi(sqrt(q) z)^2] of {activation} at q={predicted[-1]!r} (layer "
                f"{layers[position].index}) is {moment!r}; expected a finite value: the activation grows "
                "too fast for Gaussian inputs."
            )
        predicted.append(sigma_w2 * moment + sigma_b2)
    return TheoryOverlay(
        activation=activation,
        layers=[layer.index for layer in layers],
        sigma_w2=[v[0] for v in variances],
        sigma_b2=[v[1] for v in variances],
        q_input=q_input,
        predicted_q=predicted,
        measured_q=[layer.measured_q for layer in layers],
    )
