"""The rules of :mod:`initlab.auditing.thresholds` applied to measured layers, with fixes in plain words.

Each rule reads a :class:`~initlab.auditing.result.LayerReport` and returns a
:class:`~initlab.auditing.result.Finding` or None. The fix names the scheme suited to the
activation that ends the layer (He for the ReLU family, LeCun normal for SELU, Glorot for
tanh/sigmoid-like and linear layers, variance scaling with the activation's forward gain
from :func:`initlab.gains.gain` otherwise) and, for Linear/Conv layers, the std that
scheme targets for this layer's fans next to the measured weight std.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

from initlab.activations import get_activation
from initlab.auditing.result import Finding, LayerReport
from initlab.auditing.thresholds import Thresholds
from initlab.errors import InitlabError
from initlab.fans import fans
from initlab.gains import gain
from initlab.schemes import Scheme, glorot_normal, he_normal, lecun_normal, variance_scaling

_CONV_TYPES = ("Conv1d", "Conv2d", "Conv3d")


def number(value: float | None) -> str:
    """A measured value with 3 significant digits (``"n/a"`` for None)."""
    return "n/a" if value is None else f"{value:.3g}"


@dataclass(frozen=True)
class Recommendation:
    """The scheme to use for a layer, how to say it, and the std it targets for the layer."""

    label: str
    scheme: Scheme
    target_std: float | None


def recommend(layer: LayerReport) -> Recommendation:
    """The scheme suited to the activation ending ``layer`` (see the module docstring)."""
    return _recommendation(
        layer.activation,
        tuple(sorted(layer.activation_params.items())),
        None if layer.weight_shape is None else tuple(layer.weight_shape),
        layer.module_type,
    )


@functools.lru_cache(maxsize=256)
def _recommendation(
    activation_name: str | None, activation_params: tuple, weight_shape: tuple[int, ...] | None, module_type: str
) -> Recommendation:
    """:func:`recommend` from what it reads of the layer (cached: a deep network's layers share it)."""
    activation = get_activation(activation_name, **dict(activation_params)) if activation_name else None
    family = activation.family if activation is not None else "linear"
    if family == "relu":
        slope = float(activation.params.get("negative_slope", 0.0))
        scheme, label = he_normal(negative_slope=slope), "He initialization (initlab.he_normal)"
    elif family == "selu":
        scheme, label = lecun_normal(), "LeCun normal initialization (initlab.lecun_normal)"
    elif family in ("saturating", "linear"):
        scheme, label = glorot_normal(), "Glorot/Xavier initialization (initlab.glorot_normal)"
    else:
        scale = gain(activation) ** 2
        scheme = variance_scaling(scale=scale)
        label = (
            f"variance scaling with the forward gain of {activation.name} (initlab.variance_scaling(scale={scale:.3g}))"
        )
    return Recommendation(label, scheme, _target_std(scheme, weight_shape, module_type))


def _target_std(scheme: Scheme, weight_shape: tuple[int, ...] | None, module_type: str) -> float | None:
    if weight_shape is None or len(weight_shape) < 2:
        return None
    if module_type not in _CONV_TYPES and module_type != "Linear":
        return None
    layout = "conv" if module_type in _CONV_TYPES else "linear"
    try:
        return scheme.target_std(fans(weight_shape, layout))
    except InitlabError:
        return None


def _init_advice(layer: LayerReport) -> str:
    advice = recommend(layer)
    if advice.target_std is None:
        return f"use {advice.label} for the weights feeding it"
    return f"use {advice.label}: std {number(advice.target_std)} for this layer (measured {number(layer.weight_std)})"


def describe(layer: LayerReport) -> str:
    """``"layer 7 'net.6' (Linear → ReLU)"``."""
    return f"layer {layer.index} '{layer.name}' ({layer.kind})"


@dataclass(frozen=True)
class Trends:
    """Geometric-mean change per layer of the signal std and of the gradient norm."""

    signal: float | None
    gradient: float | None

    def phrase(self) -> str:
        """``"the signal std changes ×0.1 per layer and the gradient norm ×0.1 per layer"``."""
        parts = []
        if self.signal is not None:
            parts.append(f"the signal std changes ×{number(self.signal)} per layer")
        if self.gradient is not None:
            parts.append(f"the gradient norm ×{number(self.gradient)} per layer")
        return " and ".join(parts)


def geometric_mean(values: list[float | None]) -> float | None:
    """Geometric mean of the finite positive values, or None if there are none."""
    logs = [math.log(v) for v in values if v is not None and math.isfinite(v) and v > 0]
    return math.exp(sum(logs) / len(logs)) if logs else None


def trends(layers: list[LayerReport]) -> Trends:
    """Per-layer trends over the layers that carry a weight."""
    weighted = [layer for layer in layers if layer.weight_shape is not None] or layers
    return Trends(
        geometric_mean([layer.gain for layer in weighted]), geometric_mean([layer.grad_growth for layer in weighted])
    )


Rule = Callable[[LayerReport, Thresholds, Trends], "Finding | None"]


def _finding(kind, layer, direction, rule, value, threshold, message, fix) -> Finding:
    return Finding(
        kind=kind,
        layer=layer.index,
        layer_name=layer.name,
        direction=direction,
        rule=rule,
        value=float(value),
        threshold=float(threshold),
        message=message,
        fix=fix,
    )


def non_finite_forward(layer: LayerReport, limits: Thresholds, _trends: Trends) -> Finding | None:
    """NaN/inf in the output (only the first such layer is kept by :func:`assess`)."""
    count = layer.output.non_finite
    if count == 0:
        return None
    return _finding(
        "non_finite",
        layer,
        "forward",
        f"non_finite_outputs={count} > 0",
        count,
        0,
        f"{describe(layer)} produces {count} NaN/inf values of {layer.output.numel} from a finite input",
        f"the values overflow or an operation is undefined here (finite values reach max |x| = "
        f"{number(max(abs(layer.output.min), abs(layer.output.max)))}); {_init_advice(layer)}, "
        "and check this layer's operation (log/sqrt/division) and dtype",
    )


def non_finite_backward(layer: LayerReport, limits: Thresholds, _trends: Trends) -> Finding | None:
    """The gradient becomes NaN/inf when passing back through this layer."""
    if layer.grad_input_norm is None or math.isfinite(layer.grad_input_norm):
        return None
    if layer.grad_output_norm is not None and not math.isfinite(layer.grad_output_norm):
        return None
    return _finding(
        "non_finite",
        layer,
        "backward",
        f"grad_input_norm={layer.grad_input_norm} is not finite",
        layer.grad_input_norm,
        0,
        f"{describe(layer)} turns a finite gradient (norm {number(layer.grad_output_norm)}) into NaN/inf",
        f"its backward pass overflows; {_init_advice(layer)}, and check this layer's operation and dtype",
    )


def symmetric(layer: LayerReport, limits: Thresholds, _trends: Trends) -> Finding | None:
    """Units with equal weight rows, outputs and gradients."""
    count = layer.symmetric_units
    if count is None or count < limits.symmetric_units_min:
        return None
    units = layer.weight_shape[0] if layer.weight_shape else count + 1
    return _finding(
        "symmetric",
        layer,
        "forward",
        f"symmetric_units={count} >= symmetric_units_min={limits.symmetric_units_min}",
        count,
        limits.symmetric_units_min,
        f"{describe(layer)} has {count} of {units} units identical to another unit "
        "(equal weights, outputs and gradients)",
        f"identical units receive identical updates and never become different; {_init_advice(layer)} "
        "instead of zero or constant weights",
    )


def dead(layer: LayerReport, limits: Thresholds, _trends: Trends) -> Finding | None:
    """More than ``dead_fraction_max`` of the units are <= 0 on the whole batch."""
    fraction = layer.dead_fraction
    if fraction is None or fraction <= limits.dead_fraction_max:
        return None
    pre = layer.pre_activation
    if pre is not None and pre.mean < -pre.std:
        cause = (
            f"the pre-activations sit below 0 (mean {number(pre.mean)}, std {number(pre.std)}): "
            "initialise the biases to zero (initlab.zeros) and "
        )
    else:
        cause = "check that the input is centred and "
    return _finding(
        "dead",
        layer,
        "forward",
        f"dead_fraction={fraction:.3g} > dead_fraction_max={limits.dead_fraction_max}",
        fraction,
        limits.dead_fraction_max,
        f"{describe(layer)} has {layer.dead_units} of {layer.units} units that output 0 for every sample "
        "(no gradient flows through them)",
        cause + _init_advice(layer),
    )


def saturated(layer: LayerReport, limits: Thresholds, _trends: Trends) -> Finding | None:
    """More than ``saturated_fraction_max`` of a bounded activation's outputs sit at a bound."""
    fraction = layer.saturated_fraction
    if fraction is None or fraction <= limits.saturated_fraction_max:
        return None
    pre_std = "" if layer.pre_activation is None else f" (pre-activation std {number(layer.pre_activation.std)})"
    return _finding(
        "saturated",
        layer,
        "forward",
        f"saturated_fraction={fraction:.3g} > saturated_fraction_max={limits.saturated_fraction_max}",
        fraction,
        limits.saturated_fraction_max,
        f"{describe(layer)} has {fraction:.0%} of its {layer.activation} outputs at a bound{pre_std}, "
        "where its derivative is ~0",
        f"the weights are too large; {_init_advice(layer)}",
    )


def _level(layer: LayerReport, direction: str, ratio: float) -> str:
    if direction == "forward":
        return f"has output std {number(layer.output.std)}, ×{number(ratio)} the reference std"
    return f"passes back a gradient of norm {number(layer.grad_input_norm)}, ×{number(ratio)} the output's"


def _growth_finding(
    kind: str,
    direction: str,
    layer: LayerReport,
    limits: Thresholds,
    trend: Trends,
    gain_value: float | None,
    ratio: float | None,
) -> Finding | None:
    """The exploding/vanishing rules for one direction (see the thresholds docstring)."""
    if gain_value is None or not math.isfinite(gain_value):
        return None
    what = "signal" if direction == "forward" else "gradient"
    if kind == "exploding" and gain_value > limits.layer_gain_max:
        way = "" if direction == "forward" else " on the way back"
        return _finding(
            kind,
            layer,
            direction,
            f"{what}_gain={gain_value:.3g} > layer_gain_max={limits.layer_gain_max}",
            gain_value,
            limits.layer_gain_max,
            f"{describe(layer)} multiplies the {what} by ×{number(gain_value)}{way}",
            _init_advice(layer),
        )
    if ratio is None or not math.isfinite(ratio):
        return None
    contribution = limits.contribution_factor
    if kind == "exploding" and ratio > limits.exploding_ratio and gain_value > contribution:
        rule = (
            f"{what}_ratio={ratio:.3g} > exploding_ratio={limits.exploding_ratio} and "
            f"{what}_gain={gain_value:.3g} > contribution_factor={contribution}"
        )
        return _finding(
            kind,
            layer,
            direction,
            rule,
            ratio,
            limits.exploding_ratio,
            f"{describe(layer)} {_level(layer, direction, ratio)}{_context(trend)}",
            _init_advice(layer),
        )
    if kind == "vanishing" and ratio < limits.vanishing_ratio and gain_value < 1 / contribution:
        rule = (
            f"{what}_ratio={ratio:.3g} < vanishing_ratio={limits.vanishing_ratio} and "
            f"{what}_gain={gain_value:.3g} < 1/contribution_factor={1 / contribution:.3g}"
        )
        return _finding(
            kind,
            layer,
            direction,
            rule,
            ratio,
            limits.vanishing_ratio,
            f"{describe(layer)} {_level(layer, direction, ratio)}{_context(trend)}",
            _init_advice(layer),
        )
    return None


def _context(trend: Trends) -> str:
    """``"; <trend phrase>"``, or nothing without trends (formatted only for a finding)."""
    phrase = trend.phrase()
    return f"; {phrase}" if phrase else ""


def exploding_forward(layer: LayerReport, limits: Thresholds, trend: Trends) -> Finding | None:
    """The signal std grows too much at this layer or has grown too much and still grows."""
    return _growth_finding("exploding", "forward", layer, limits, trend, layer.gain, layer.reference_ratio)


def exploding_backward(layer: LayerReport, limits: Thresholds, trend: Trends) -> Finding | None:
    """The gradient norm grows too much passing back through this layer, or has grown too much."""
    return _growth_finding("exploding", "backward", layer, limits, trend, layer.grad_growth, layer.grad_ratio)


def vanishing_forward(layer: LayerReport, limits: Thresholds, trend: Trends) -> Finding | None:
    """The signal std has shrunk below ``vanishing_ratio`` of its reference and still shrinks."""
    return _growth_finding("vanishing", "forward", layer, limits, trend, layer.gain, layer.reference_ratio)


def vanishing_backward(layer: LayerReport, limits: Thresholds, trend: Trends) -> Finding | None:
    """The gradient norm has shrunk below ``vanishing_ratio`` of the output's and still shrinks."""
    return _growth_finding("vanishing", "backward", layer, limits, trend, layer.grad_growth, layer.grad_ratio)


LOCAL_RULES: tuple[Rule, ...] = (
    symmetric,
    dead,
    saturated,
    exploding_forward,
    exploding_backward,
    vanishing_forward,
    vanishing_backward,
)
"""Rules applied to every layer (the non-finite rules fire at one layer only)."""


def assess(layers: list[LayerReport], limits: Thresholds) -> None:
    """Attach the findings of every rule to ``layers`` (in place).

    A NaN/inf is reported at the first layer (execution order) whose output holds one; a
    non-finite gradient, when the forward pass was finite, at the layer nearest the output
    where it appears. Other rules are skipped on layers whose output is not finite.
    """
    trend = trends(layers)
    first_bad = next((layer for layer in layers if layer.output.non_finite), None)
    if first_bad is not None:
        first_bad.findings.append(non_finite_forward(first_bad, limits, trend))
    else:
        for layer in reversed(layers):
            finding = non_finite_backward(layer, limits, trend)
            if finding is not None:
                layer.findings.append(finding)
                break
    for layer in layers:
        if layer.output.non_finite:
            continue
        layer.findings.extend(f for f in (rule(layer, limits, trend) for rule in LOCAL_RULES) if f is not None)
