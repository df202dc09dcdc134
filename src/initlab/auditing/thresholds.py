"""Every threshold the audit's verdicts use, in one place.

What is measured. Signal and gradient propagation are read between the layers that
carry a weight matrix (Linear, Conv, transposed Conv, attention, recurrent layers:
:func:`initlab.nn.layers.layer_kind`); layers without one (norms, softmax, rotary
embeddings, pooling, dropout, gates, containers) are never judged for the gain their job
implies. Signal sizes are root mean squares (second moments, ``sqrt(mean(x^2))``), so a
tensor with a large mean and a small spread (pooled features) has its true size.

=================  ==========================================================================
verdict            rule (defaults below)
=================  ==========================================================================
``non_finite``     the layer's output holds NaN/inf although its input was finite (forward),
                   or the gradient w.r.t. its input is non-finite although the gradient
                   w.r.t. its output was finite (backward, checked only when the forward
                   pass was finite). Reported at the first layer where it appears.
``symmetric``      at least ``symmetric_units_min`` units of a Linear/Conv layer duplicate
                   another unit: equal weight rows (and bias), equal outputs on the batch and,
                   when gradients exist, equal gradients, each within
                   ``symmetry_rtol`` x the largest magnitude of the compared values. Such
                   units receive equal updates and never differ (Rumelhart et al. 1986).
``dead``           more than ``dead_fraction_max`` of the units of a layer ending in ReLU (or
                   ReLU6) are <= 0 for every sample and position of the batch (per unit: a
                   feature or channel).
``saturated``      more than ``saturated_fraction_max`` of the outputs of a bounded
                   activation (tanh, sigmoid, hardtanh, softsign, erf) lie within
                   ``saturation_margin`` x (upper - lower bound) of a bound, where its
                   derivative is ~0 (Glorot & Bengio 2010, sec. 3).
``exploding``      whole network: the signal entering a weight layer is more than
                   ``exploding_ratio`` x its reference, or the gradient at the input of the
                   first weight layer is more than ``exploding_ratio`` x the gradient at the
                   model's output; one layer: a weight layer multiplies the RMS of its input
                   by more than ``layer_gain_max`` and its output's RMS is more than
                   ``layer_gain_max`` x the reference of its input (a layer that restores a
                   scale shrunk before it, as T5's readout does, is not blamed); residual
                   stream: the RMS of the stream read by the norm layers of a stack of blocks
                   grows more than ``stream_growth_max``-fold from the second read (after
                   the first branch) to the last (branches added without residual scaling).
``vanishing``      whole network: the signal entering a weight layer is below
                   ``vanishing_ratio`` x its reference, or the gradient at the input of the
                   first weight layer is below ``vanishing_ratio`` x the gradient at the
                   model's output.
=================  ==========================================================================

The *reference* of the signal entering a layer is the RMS where that signal started: the
batch, the output of a normalization layer or embedding (whose output scale is set by their
own parameters), or the output of an operation the audit does not record (a residual
addition, an attention product, a gate), whose RMS is taken as measured. A whole-network
ratio beyond its threshold is definite only when the per-weight-layer trend is steeper than
``depth_trend_max`` (or its inverse); a ratio reached by one drop is borderline. Dead units
are judged only where each unit is seen on at least ``dead_samples_min`` values (a healthy
ReLU unit is <= 0 on all n of them with probability ``2**-n``).

``borderline``. A figure within a factor ``borderline_factor`` of its threshold (on either
side; for the two fractions, within ``borderline_margin`` of it) is not a verdict either way:
the finding is marked borderline, the report's verdict is ``borderline`` when nothing is
definite, and ``AuditReport.healthy`` stays True (exit status 0) with a warning line. A
definite verdict needs the figure beyond the threshold by that factor (or margin), so
sampling noise of the batch and seed cannot flip it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from initlab.errors import InitlabError

VERDICTS = ("non_finite", "symmetric", "dead", "saturated", "exploding", "vanishing")
"""Unhealthy verdicts, most specific first (the order a layer's verdict is chosen in)."""

BORDERLINE = "borderline"
"""The verdict when some figure is near its threshold and none is beyond it."""

HEALTHY = "healthy"

STATES = (*VERDICTS, BORDERLINE, HEALTHY)
"""Every verdict a layer or a report can have."""


@dataclass(frozen=True)
class Thresholds:
    """The numbers behind the verdicts (see the module docstring for each rule).

    Attributes:
        vanishing_ratio: signal or gradient below this fraction of its reference has vanished.
        exploding_ratio: signal or gradient above this multiple of its reference has exploded.
        layer_gain_max: one weight layer multiplying the RMS (or gradient norm) by more is exploding.
        stream_growth_max: a residual stream growing more than this factor is exploding.
        borderline_factor: a ratio within this factor of its threshold is borderline.
        depth_trend_max: a whole-network ratio beyond its threshold is definite only when it
            changes by more than this factor per weight layer on average (a steady trend with
            depth, not one drop such as pooling or a cross-attention link); else borderline.
        saturation_margin: distance to a bound, as a fraction of the output range, that
            counts as saturated (0.005 -> ``|tanh| > 0.99``).
        saturated_fraction_max: fraction of saturated outputs above which a layer is saturated.
        dead_fraction_max: fraction of dead units above which a layer is dead.
        dead_samples_min: values per unit (samples x positions) needed to judge dead units.
        borderline_margin: a fraction within this distance of its threshold is borderline.
        symmetric_units_min: duplicated units from which a layer is symmetric.
        symmetry_rtol: relative tolerance of "equal" for weight rows, outputs and gradients.
    """

    vanishing_ratio: float = 1e-3
    exploding_ratio: float = 1e3
    layer_gain_max: float = 10.0
    stream_growth_max: float = 5.0
    borderline_factor: float = 2.0
    depth_trend_max: float = 1.33
    saturation_margin: float = 0.005
    saturated_fraction_max: float = 0.2
    dead_fraction_max: float = 0.5
    dead_samples_min: int = 16
    borderline_margin: float = 0.1
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
        for name in ("layer_gain_max", "stream_growth_max", "borderline_factor", "depth_trend_max"):
            if getattr(self, name) <= 1:
                raise InitlabError(f"Thresholds: {name}={getattr(self, name)!r} is invalid; expected a number > 1.")
        for name in ("saturation_margin", "saturated_fraction_max", "dead_fraction_max", "borderline_margin"):
            if getattr(self, name) >= 1:
                raise InitlabError(f"Thresholds: {name}={getattr(self, name)!r} is invalid; expected a fraction < 1.")

    def above(self, value: float, threshold: float) -> str | None:
        """``"definite"`` when ``value > threshold * borderline_factor``, ``"borderline"`` when it is
        within that factor of ``threshold`` (either side), else None."""
        if value > threshold * self.borderline_factor:
            return "definite"
        return "borderline" if value > threshold / self.borderline_factor else None

    def below(self, value: float, threshold: float) -> str | None:
        """The mirror of :meth:`above` for a figure that must not fall below ``threshold``."""
        if value < threshold / self.borderline_factor:
            return "definite"
        return "borderline" if value < threshold * self.borderline_factor else None

    def fraction_above(self, value: float, threshold: float) -> str | None:
        """:meth:`above` for a fraction, with the additive ``borderline_margin``."""
        if value > threshold + self.borderline_margin:
            return "definite"
        return "borderline" if value > threshold - self.borderline_margin else None

    def to_dict(self) -> dict:
        """Plain-data form (field name -> number)."""
        return asdict(self)
