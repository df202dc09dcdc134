"""Matplotlib figures of an audit report (Agg backend; each function returns a Figure).

* :func:`depth_curves` — per-layer output/pre-activation std and gradient norms over depth,
  log scale, with the mean-field ``sqrt(q^l)`` overlay for plain MLPs.
* :func:`stacked_histograms` — each layer's activation histogram, stacked like
  Glorot & Bengio (2010), fig. 6.
* :func:`jacobian_histogram` — the singular values of the input-output Jacobian.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from initlab._extras import pyplot

MAX_HISTOGRAM_LAYERS = 24
"""At most this many layers (evenly spaced) in the stacked histograms."""

LABEL_CHARACTERS = 32
"""Longest histogram label; longer layer names keep their start and end around an ellipsis."""


def _pyplot():
    return pyplot("the audit report's figures")


def _positive(xs: list[int], ys: list[float | None]) -> tuple[list[int], list[float]]:
    pairs = [(x, y) for x, y in zip(xs, ys) if y is not None and math.isfinite(y) and y > 0]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def depth_curves(report: Any):
    """Two panels over the layer index: activation std (log) and gradient norms (log)."""
    plt = _pyplot()
    figure, (forward, backward) = plt.subplots(1, 2, figsize=(11, 3.8))
    index = [layer.index for layer in report.layers]
    forward.plot(*_positive(index, [layer.output.std for layer in report.layers]), "o-", ms=3, label="output std")
    forward.plot(
        *_positive(index, [layer.pre_activation.std if layer.pre_activation else None for layer in report.layers]),
        "s--",
        ms=3,
        label="pre-activation std",
    )
    if report.theory is not None:
        theory = report.theory
        forward.plot(
            *_positive(theory.layers, [math.sqrt(q) for q in theory.predicted_q]),
            "k:",
            lw=2,
            label=f"mean-field sqrt(q) ({theory.activation})",
        )
        forward.plot(
            *_positive(theory.layers, [math.sqrt(q) for q in theory.measured_q]),
            "x",
            color="k",
            label="measured sqrt(q)",
        )
    forward.set(yscale="log", xlabel="layer (execution order)", ylabel="std", title="Forward: activation std per layer")
    backward.plot(
        *_positive(index, [layer.grad_output_norm for layer in report.layers]), "o-", ms=3, label="||dL/d output||"
    )
    backward.plot(
        *_positive(index, [layer.weight_grad_norm for layer in report.layers]), "s--", ms=3, label="||dL/d weight||"
    )
    backward.set(
        yscale="log", xlabel="layer (execution order)", ylabel="norm", title="Backward: gradient norms per layer"
    )
    for axes in (forward, backward):
        axes.grid(True, which="both", alpha=0.3)
        if axes.get_lines():
            axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def _histogram_layers(report: Any) -> list[Any]:
    layers = [layer for layer in report.layers if layer.activation is not None] or list(report.layers)
    if len(layers) <= MAX_HISTOGRAM_LAYERS:
        return layers
    picks = np.unique(np.linspace(0, len(layers) - 1, MAX_HISTOGRAM_LAYERS).round().astype(int))
    return [layers[i] for i in picks]


def histogram_label(index: int, name: str, limit: int = LABEL_CHARACTERS) -> str:
    """``"12 encoder.layers.3.linear1"``; a longer label keeps its start and its end (the part
    that tells sibling layers apart) around an ellipsis: ``"12 encoder.lay…3.linear1"``."""
    label = f"{index} {name}"
    if len(label) <= limit:
        return label
    tail = (limit - 1) * 3 // 5
    return f"{label[: limit - 1 - tail]}…{label[-tail:]}"


def stacked_histograms(report: Any):
    """Per-layer output histograms (layers ending in an activation, else all), one ridge per layer."""
    plt = _pyplot()
    layers = _histogram_layers(report)
    figure, axes = plt.subplots(figsize=(9, 1.2 + 0.45 * max(len(layers), 1)))
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, max(len(layers), 1)))
    for offset, (layer, colour) in enumerate(zip(layers, colours)):
        counts = np.asarray(layer.output.histogram_counts, dtype=float)
        edges = np.asarray(layer.output.histogram_edges, dtype=float)
        if counts.sum() == 0 or not np.all(np.isfinite(edges)):
            continue
        heights = 0.9 * counts / counts.max()
        centres = (edges[:-1] + edges[1:]) / 2
        base = -offset
        axes.fill_between(centres, base, base + heights, color=colour, alpha=0.55, step="mid")
        axes.plot(centres, base + heights, color=colour, lw=1, drawstyle="steps-mid")
    axes.set_yticks([-i + 0.35 for i in range(len(layers))])  # beside the middle of each ridge
    axes.set_yticklabels([histogram_label(layer.index, layer.name) for layer in layers], fontsize=9)
    axes.tick_params(axis="y", length=0)
    axes.set(xlabel="activation value", title="Activation histograms per layer (Glorot & Bengio 2010, fig. 6)")
    axes.grid(True, axis="x", alpha=0.3)
    figure.tight_layout()
    return figure


def jacobian_histogram(report: Any):
    """The Jacobian's singular values: a histogram when exact; for an estimate, the Ritz values
    (the largest a lower bound of the top singular value) and the root-mean-square singular value
    with a band of two standard errors."""
    plt = _pyplot()
    stats = report.jacobian
    values = np.concatenate([np.asarray(row, dtype=float) for row in stats.singular_values] or [np.zeros(0)])
    values = values[np.isfinite(values)]
    positive = values[values > 0]
    figure, axes = plt.subplots(figsize=(6, 3.4))
    if stats.exact:
        if positive.size:
            low, high = positive.min(), positive.max()
            bins = np.geomspace(low, high * 1.0001, 30) if high > low else 10
            axes.hist(positive, bins=bins, color="#4c72b0", alpha=0.8)
        axes.set(ylabel="count", title=f"Jacobian spectrum (exact, {stats.samples} samples)")
    else:
        _estimate_strip(axes, stats, positive)
    if positive.size and positive.max() > positive.min():
        axes.set_xscale("log")
    axes.axvline(1.0, color="k", ls=":", lw=1, label="isometry (sigma = 1)")
    axes.set(xlabel="singular value of dF(x)/dx")
    axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def _estimate_strip(axes: Any, stats: Any, ritz: np.ndarray) -> None:
    """Ritz values as ticks and the rms singular value with its two-standard-error band."""
    mean, error = stats.mean_squared_singular_value, stats.mean_squared_singular_value_error
    if mean > 0:
        low, high = math.sqrt(max(mean - 2 * error, 0.0)), math.sqrt(mean + 2 * error)
        axes.axvspan(
            max(low, math.sqrt(mean) / 10), high, color="#dd8452", alpha=0.3, label="rms sigma ± 2 std. errors"
        )
        axes.axvline(math.sqrt(mean), color="#dd8452", lw=2, label="rms sigma (estimate)")
    for position, value in enumerate(ritz):
        axes.axvline(
            value,
            color="#4c72b0",
            lw=1.5,
            label="Ritz values (largest: a lower bound of max sigma)" if position == 0 else None,
        )
    axes.set_yticks([])
    axes.set(title=f"Jacobian spectrum (estimated, {stats.method}, {stats.samples} samples)")
