"""The rules of :mod:`initlab.auditing.thresholds` applied to measured layers and end-to-end figures.

Layer rules (non-finite values, identical units, dead units, saturation, one weight layer
that multiplies its input) read one :class:`~initlab.auditing.result.LayerReport`; network
rules (vanishing or exploding signal and gradient, residual streams) read the
:class:`~initlab.auditing.propagation.Propagation` figures and report at the weight layer that
contributes most. Each returns a :class:`~initlab.auditing.result.Finding` or None, with the
cause in plain words in ``fix``; :mod:`initlab.auditing.fixes` then adds what to do, taken
from what ``initlab.init_`` would do for the layers concerned.
"""

from __future__ import annotations

import math

from initlab.auditing.propagation import Propagation
from initlab.auditing.result import Finding, LayerReport
from initlab.auditing.thresholds import Thresholds


def number(value: float | None) -> str:
    """A measured value with 3 significant digits (``"n/a"`` for None)."""
    return "n/a" if value is None else f"{value:.3g}"


def describe(layer: LayerReport) -> str:
    """``"layer 7 'net.6' (Linear → ReLU)"``."""
    return f"layer {layer.index} '{layer.name}' ({layer.kind})"


def _finding(kind, layer, direction, rule, value, threshold, message, cause, level="definite") -> Finding:
    return Finding(
        kind=kind,
        layer=layer.index,
        layer_name=layer.name,
        direction=direction,
        rule=rule,
        value=float(value),
        threshold=float(threshold),
        message=message,
        fix=cause,
        borderline=level == "borderline",
    )


# --------------------------------------------------------------------------- layer rules
def non_finite_forward(layer: LayerReport) -> Finding | None:
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
        f"{number(max(abs(layer.output.min), abs(layer.output.max)))})",
    )


def non_finite_backward(layer: LayerReport) -> Finding | None:
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
        "its backward pass overflows",
    )


def symmetric(layer: LayerReport, limits: Thresholds) -> Finding | None:
    """Units with equal weight rows, outputs and gradients (exact: no borderline)."""
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
        "identical units receive identical updates and never become different: use random weights, "
        "not zero or constant ones",
    )


def dead(layer: LayerReport, limits: Thresholds) -> Finding | None:
    """More than ``dead_fraction_max`` of the units are <= 0 on the whole batch."""
    fraction = layer.dead_fraction
    if fraction is None or not layer.units or layer.output.numel / layer.units < limits.dead_samples_min:
        return None
    level = limits.fraction_above(fraction, limits.dead_fraction_max)
    if level is None:
        return None
    pre = layer.pre_activation
    if pre is not None and pre.mean < -pre.std:
        cause = f"the pre-activations sit below 0 (mean {number(pre.mean)}, std {number(pre.std)}): biases or shifts push them there"
    else:
        cause = "the pre-activations of these units are <= 0 on every sample"
    return _finding(
        "dead",
        layer,
        "forward",
        f"dead_fraction={fraction:.3g} > dead_fraction_max={limits.dead_fraction_max}",
        fraction,
        limits.dead_fraction_max,
        f"{describe(layer)} has {layer.dead_units} of {layer.units} units that output 0 for every sample "
        "(no gradient flows through them)",
        cause,
        level,
    )


def saturated(layer: LayerReport, limits: Thresholds) -> Finding | None:
    """More than ``saturated_fraction_max`` of a bounded activation's outputs sit at a bound."""
    fraction = layer.saturated_fraction
    level = None if fraction is None else limits.fraction_above(fraction, limits.saturated_fraction_max)
    if level is None:
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
        "its pre-activations are too large for the activation",
    )


def exploding_layer(layer: LayerReport, limits: Thresholds) -> Finding | None:
    """A weight layer that multiplies the RMS of its input by more than ``layer_gain_max`` and
    whose output's RMS is beyond ``layer_gain_max`` x the reference of its input (the batch's
    scale when that reference is unknown). A layer ending in a bounded activation (a gate) is
    judged by the saturation rule instead."""
    value = layer.gain
    if not layer.carries_weights or value is None or not math.isfinite(value) or layer.saturated_fraction is not None:
        return None
    reference = layer.input_rms / layer.signal_ratio if layer.signal_ratio and layer.input_rms else 1.0
    size = layer.output.rms / reference
    level = limits.above(min(value, size), limits.layer_gain_max)
    if level is None:
        return None
    return _finding(
        "exploding",
        layer,
        "forward",
        f"signal_gain={value:.3g} > layer_gain_max={limits.layer_gain_max} and output RMS ×{size:.3g} its reference",
        value,
        limits.layer_gain_max,
        f"{describe(layer)} multiplies the RMS of its input by ×{number(value)} (output RMS {number(layer.output.rms)})",
        "its weights are too large for its fans",
        level,
    )


# --------------------------------------------------------------------------- network rules
def _culprit(layers: list[LayerReport], upto: int | None, attribute: str, kind: str) -> LayerReport | None:
    """The weight layer up to index ``upto`` whose own gain contributes most to ``kind``."""
    candidates = [
        layer
        for layer in layers
        if layer.carries_weights
        and (upto is None or layer.index <= upto)
        and getattr(layer, attribute) is not None
        and math.isfinite(getattr(layer, attribute))
        and getattr(layer, attribute) > 0
    ]
    if not candidates:
        return next((layer for layer in layers if layer.carries_weights), None)
    pick = min if kind == "vanishing" else max
    return pick(candidates, key=lambda layer: getattr(layer, attribute))


def _steady(level: str | None, per_layer: float | None, limits: Thresholds) -> str | None:
    """A definite network level stays definite only with a steady per-layer trend."""
    if level != "definite" or per_layer is None:
        return level
    steep = per_layer > limits.depth_trend_max or per_layer < 1 / limits.depth_trend_max
    return level if steep else "borderline"


def _trend(per_layer: float | None, count: int) -> str:
    return "" if per_layer is None else f" (×{number(per_layer)} per weight layer over {count} weight layers)"


def network_signal(layers: list[LayerReport], figures: Propagation, limits: Thresholds) -> list[Finding]:
    """The signal entering some weight layer has vanished or exploded relative to its reference."""
    found = []
    for kind, value, where in (
        ("vanishing", figures.signal_min, figures.signal_min_layer),
        ("exploding", figures.signal_max, figures.signal_max_layer),
    ):
        if value is None:
            continue
        if kind == "vanishing":
            level, threshold, sign = limits.below(value, limits.vanishing_ratio), limits.vanishing_ratio, "<"
        else:
            level, threshold, sign = limits.above(value, limits.exploding_ratio), limits.exploding_ratio, ">"
        level = _steady(level, figures.signal_per_layer, limits)
        if level is None:
            continue
        # the first weight layer is measured against the batch itself: the culprits come before the layer read
        culprit = _culprit([layer for layer in layers if where is None or layer.index < where], None, "gain", kind)
        culprit = culprit or next(layer for layer in layers if layer.index == where)
        reader = next(layer for layer in layers if layer.index == where)
        found.append(
            _finding(
                kind,
                culprit,
                "forward",
                f"signal_ratio={value:.3g} {sign} {kind}_ratio={threshold}",
                value,
                threshold,
                f"the signal entering {describe(reader)} has RMS ×{number(value)} its reference"
                + _trend(figures.signal_per_layer, reader.signal_depth or 1),
                f"the weight layers before it {'shrink' if kind == 'vanishing' else 'grow'} the signal",
                level,
            )
        )
    return found


def network_gradient(layers: list[LayerReport], figures: Propagation, limits: Thresholds) -> list[Finding]:
    """The gradient reaching the first weight layer has vanished or exploded relative to the output's."""
    value = figures.gradient_ratio
    if value is None or figures.gradient_layer is None:
        return []
    low, high = limits.below(value, limits.vanishing_ratio), limits.above(value, limits.exploding_ratio)
    kind, level = ("vanishing", low) if low is not None else ("exploding", high)
    level = _steady(level, figures.gradient_per_layer, limits)
    if level is None:
        return []
    threshold = limits.vanishing_ratio if kind == "vanishing" else limits.exploding_ratio
    sign = "<" if kind == "vanishing" else ">"
    first = next(layer for layer in layers if layer.index == figures.gradient_layer)
    culprit = _culprit(layers, None, "grad_growth", kind) or first
    return [
        _finding(
            kind,
            culprit,
            "backward",
            f"gradient_ratio={value:.3g} {sign} {kind}_ratio={threshold}",
            value,
            threshold,
            f"the gradient reaching {describe(first)} is ×{number(value)} the gradient at the output"
            + _trend(figures.gradient_per_layer, figures.weight_layers),
            f"the layers after it {'shrink' if kind == 'vanishing' else 'grow'} the gradient on the way back",
            level,
        )
    ]


def network_streams(layers: list[LayerReport], figures: Propagation, limits: Thresholds) -> list[Finding]:
    """A residual stream that grows more than ``stream_growth_max``-fold over its blocks."""
    found = []
    for stream in figures.streams:
        level = limits.above(stream.growth, limits.stream_growth_max)
        if level is None:
            continue
        reader = next(layer for layer in layers if layer.index == stream.layer)
        found.append(
            _finding(
                "exploding",
                reader,
                "forward",
                f"stream_growth={stream.growth:.3g} > stream_growth_max={limits.stream_growth_max}",
                stream.growth,
                limits.stream_growth_max,
                f"the residual stream of '{stream.stack}' grows ×{number(stream.growth)} in RMS over its "
                f"{stream.blocks} blocks (read at {describe(reader)})",
                f"each of its {stream.branches} residual branches adds its full variance to the stream",
                level,
            )
        )
    return found


def assess(layers: list[LayerReport], limits: Thresholds, figures: Propagation) -> None:
    """Attach the findings of every rule to ``layers`` (in place).

    A NaN/inf is reported at the first layer (execution order) whose output holds one; a
    non-finite gradient, when the forward pass was finite, at the layer nearest the output
    where it appears. Other rules are skipped on layers whose output is not finite, and the
    network rules when any output is not finite.
    """
    first_bad = next((layer for layer in layers if layer.output.non_finite), None)
    if first_bad is not None:
        first_bad.findings.append(non_finite_forward(first_bad))  # type: ignore[arg-type]
    else:
        for layer in reversed(layers):
            finding = non_finite_backward(layer)
            if finding is not None:
                layer.findings.append(finding)
                break
    for layer in layers:
        if layer.output.non_finite:
            continue
        local = [symmetric(layer, limits), dead(layer, limits), saturated(layer, limits)]
        layer.findings.extend(f for f in local if f is not None)
        finding = exploding_layer(layer, limits)
        if finding is not None:
            layer.findings.append(finding)
    if first_bad is not None:
        return
    by_index = {layer.index: layer for layer in layers}
    network = network_signal(layers, figures, limits) + network_gradient(layers, figures, limits)
    for finding in network + network_streams(layers, figures, limits):
        _add(by_index[finding.layer], finding)


def _add(layer: LayerReport, finding: Finding) -> None:
    """Add a network finding unless the layer already has a definite one of that kind and direction."""
    for existing in layer.findings:
        if (existing.kind, existing.direction) == (finding.kind, finding.direction) and not existing.borderline:
            return
    layer.findings.append(finding)
