"""Every threshold the audit's verdicts use, in one place.

A layer's verdict is the first of these kinds whose rule fires (most specific
first); a layer where none fires is ``healthy``.

=================  ==========================================================================
verdict            rule (per layer ``l`` in execution order; defaults below)
=================  ==========================================================================
``non_finite``     the layer's output holds NaN/inf although its input was finite (forward),
                   or the gradient w.r.t. its input is non-finite although the gradient
                   w.r.t. its output was finite (backward, checked only when the forward
                   pass was finite). Reported at the first layer where it appears.
``symmetric``      at least ``symmetric_units_min`` units of a Linear/Conv layer duplicate
                   another unit: equal weight rows (and bias), equal outputs on the batch and,
                   when gradients exist, equal gradients, each within
                   ``symmetry_rtol`` x the largest magnitude of the compared values (for the
                   outputs: of the layer's whole output). Such units
                   receive equal updates and never differ (Rumelhart et al. 1986).
``dead``           more than ``dead_fraction_max`` of the units of a layer ending in ReLU (or
                   ReLU6) are <= 0 for every sample and position of the batch (counted per
                   unit: a feature or channel, not per element; fastai counts elements).
``saturated``      more than ``saturated_fraction_max`` of the outputs of a bounded
                   activation (tanh, sigmoid, hardtanh, softsign, erf) lie within
                   ``saturation_margin`` x (upper - lower bound) of a bound, where its
                   derivative is ~0 (Glorot & Bengio 2010, sec. 3).
``exploding``      forward: the layer multiplies the std of its input by more than
                   ``layer_gain_max``, or the std of its output is more than
                   ``exploding_ratio`` x the reference std and the layer itself grows the
                   signal by more than ``contribution_factor``; backward: the same two rules
                   for the gradient norm, read from the output back to the input.
``vanishing``      forward: the std of the output is below ``vanishing_ratio`` x the
                   reference std and the layer itself shrinks the signal by more than
                   ``contribution_factor``; backward: the gradient norm at the layer's input
                   is below ``vanishing_ratio`` x the gradient norm at the model's output and
                   the layer itself shrinks the gradient by more than ``contribution_factor``.
=================  ==========================================================================

The *reference std* is the std of the batch, reset to the output std of every
normalization layer (BatchNorm, LayerNorm, GroupNorm, InstanceNorm, RMSNorm) and
embedding, whose output scale is set by their own parameters. A layer's *gain* is
``std(output) / std(input)``; its *gradient growth* is
``||dL/d input|| / ||dL/d output||``. A layer "contributes" when its gain (or growth)
is beyond ``contribution_factor`` in the direction of the problem, so a layer that
merely passes on an already vanished signal is not blamed for it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from initlab.errors import InitlabError

VERDICTS = ("non_finite", "symmetric", "dead", "saturated", "exploding", "vanishing")
"""Unhealthy verdicts, most specific first (the order a layer's verdict is chosen in)."""

HEALTHY = "healthy"


@dataclass(frozen=True)
class Thresholds:
    """The numbers behind the verdicts (see the module docstring for each rule).

    Attributes:
        vanishing_ratio: signal or gradient below this fraction of its reference has vanished.
        exploding_ratio: signal or gradient above this multiple of its reference has exploded.
        layer_gain_max: one layer multiplying the std (or gradient norm) by more is exploding.
        contribution_factor: a layer contributes to a trend when its own gain is beyond
            this factor (``> f`` for exploding, ``< 1/f`` for vanishing).
        saturation_margin: distance to a bound, as a fraction of the output range, that
            counts as saturated (0.005 -> ``|tanh| > 0.99``).
        saturated_fraction_max: fraction of saturated outputs above which a layer is saturated.
        dead_fraction_max: fraction of dead units above which a layer is dead.
        symmetric_units_min: duplicated units from which a layer is symmetric.
        symmetry_rtol: relative tolerance of "equal" for weight rows, outputs and gradients.
    """

    vanishing_ratio: float = 1e-2
    exploding_ratio: float = 1e2
    layer_gain_max: float = 10.0
    contribution_factor: float = 2.0
    saturation_margin: float = 0.005
    saturated_fraction_max: float = 0.2
    dead_fraction_max: float = 0.5
    symmetric_units_min: int = 1
    symmetry_rtol: float = 1e-5

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise InitlabError(f"Thresholds: {field.name}={value!r} is invalid; expected a finite number > 0.")
        if not self.vanishing_ratio < 1 < self.exploding_ratio:
            raise InitlabError(
                f"Thresholds: vanishing_ratio={self.vanishing_ratio!r} and exploding_ratio="
                f"{self.exploding_ratio!r} are invalid; expected vanishing_ratio < 1 < exploding_ratio."
            )
        if self.contribution_factor <= 1 or self.layer_gain_max <= 1:
            raise InitlabError(
                f"Thresholds: contribution_factor={self.contribution_factor!r}, layer_gain_max="
                f"{self.layer_gain_max!r} are invalid; expected both > 1."
            )
        for name in ("saturation_margin", "saturated_fraction_max", "dead_fraction_max"):
            if getattr(self, name) >= 1:
                raise InitlabError(f"Thresholds: {name}={getattr(self, name)!r} is invalid; expected a fraction < 1.")

    def to_dict(self) -> dict:
        """Plain-data form (field name -> number)."""
        return asdict(self)
