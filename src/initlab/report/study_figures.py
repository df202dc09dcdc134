"""Matplotlib figures of the built-in studies (Agg backend), drawn from stored run rows.

:func:`figures` returns, for one study, a list of :class:`Figure` (a matplotlib figure, a
title-like caption and alt text). Rows are the store's run rows with their ``history``
(see :func:`initlab.lab.tour.with_histories`); every figure has a title, labelled axes
and a legend. Values that cannot be drawn on a log axis (0, inf, NaN) are left out of a
curve rather than clipped, and such gaps are named in the caption.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from initlab._extras import pyplot
from initlab.lab.claims import ClaimResult
from initlab.lab.study_claims import (
    bias_label,
    config_value,
    finished,
    fmt,
    group_by,
    init_label,
    mean,
    sigma_w2,
    theory_preact_std,
    trainable_depth,
)

Rows = Sequence[Mapping[str, Any]]

INIT_NAMES = {
    "zeros": "all zeros",
    "constant": "constant 0.5",
    "glorot_normal": "Xavier (normal)",
    "glorot_uniform": "Xavier normalized (uniform)",
    "he_normal": "He (normal)",
    "small_random": "small N(0, 0.01^2)",
    "large_random": "large N(0, 1)",
    "orthogonal": "orthogonal",
    "lsuv": "LSUV",
    "lecun_normal": "Gaussian N(0, 1/fan_in)",
    "variance_scaling": "standard U(+-1/sqrt(fan_in))",
}


@dataclass
class Figure:
    """One figure of a report: the matplotlib figure, its caption and its alt text."""

    figure: Any
    caption: str
    alt: str


def _pyplot():
    return pyplot("the study reports' figures")


def _subplots(columns: int, *, width: float, height: float):
    """A figure with ``columns`` panels in one row, laid out by matplotlib's constrained layout (so the
    legends placed outside the panels get room) and a list of its axes."""
    figure, axes_row = _pyplot().subplots(1, columns, figsize=(width, height), squeeze=False, layout="constrained")
    return figure, list(axes_row[0])


def name_of(label: str) -> str:
    """Readable name of an init label."""
    return INIT_NAMES.get(label, label)


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")
"""Marker shapes of the curves of one panel, in order: curves that coincide stay distinguishable."""


def series_style(index: int, points: int) -> dict[str, Any]:
    """Colour and hollow marker of the ``index``-th curve of a panel of ``points`` points.

    Markers are hollow and, on long curves, drawn on every k-th point with a start that
    depends on ``index``; so two curves that coincide still show both shapes.
    """
    every = max(1, math.ceil(points / 10))
    return {
        "color": f"C{index % 10}",
        "marker": MARKERS[index % len(MARKERS)],
        "markerfacecolor": "none",
        "markersize": 5,
        "markevery": (index % every, every),
    }


def _positive(xs: Sequence[float], ys: Sequence[Any]) -> tuple[list, list]:
    pairs = [(x, y) for x, y in zip(xs, ys) if isinstance(y, (int, float)) and math.isfinite(y) and y > 0]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _history_mean(rows: Rows, metric: str) -> tuple[list, list]:
    """Steps and the mean over runs of a scalar metric's history (runs aligned on their steps)."""
    histories = [row["history"] for row in rows if row.get("history", {}).get(metric)]
    if not histories:
        return [], []
    steps = min((h["step"] for h in histories), key=len)
    values = [mean(h[metric][i] for h in histories) for i in range(len(steps))]
    return list(steps), values


def _layer_mean(rows: Rows, metric: str) -> list[float]:
    """Per-layer mean over runs of a per-layer final metric (geometric where positive)."""
    lists = [row["summary"].get(metric) for row in rows if row["summary"].get(metric)]
    if not lists:
        return []
    result = []
    for layer in range(min(len(values) for values in lists)):
        column = [values[layer] for values in lists if values[layer] is not None]
        finite = [v for v in column if math.isfinite(v) and v > 0]
        result.append(
            math.exp(mean(math.log(v) for v in finite)) if len(finite) == len(column) and finite else mean(column)
        )
    return result


def _integer_ticks(axis) -> None:
    """Only whole numbers as ticks of ``axis`` (layers, depths)."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def _legend_beside(axes, columns: int = 1) -> None:
    """The legend of ``axes`` outside the panel, on its right, so it never covers the data."""
    handles, labels = axes.get_legend_handles_labels()
    if handles:
        axes.legend(
            handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=8, ncols=columns
        )


def _legend_below(figure, axes_list, columns: int) -> None:
    """One legend for panels that share their curves, below the panels (outside the data)."""
    seen: dict[str, Any] = {}
    for axes in axes_list:
        for handle, label in zip(*axes.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    if seen:
        figure.legend(list(seen.values()), list(seen), loc="outside lower center", ncols=columns, fontsize=8)


def _finish(figure, axes_list) -> None:
    for axes in axes_list:
        axes.grid(True, which="both", alpha=0.3)


def _loss_curves(
    axes,
    groups: Mapping[tuple, Rows],
    label: Callable[[tuple], str],
    metric="train_loss",
    styles: Callable[[tuple], dict] | None = None,
) -> None:
    for index, (key, members) in enumerate(groups.items()):
        steps, values = _history_mean(members, metric)
        if steps:
            style = series_style(index, len(steps)) | (styles(key) if styles else {})
            axes.plot(steps, values, label=label(key), **style)
    axes.set(xlabel="training step", ylabel=metric.replace("_", " "))


# ------------------------------------------------------------------ symmetry
def symmetry_figures(rows: Rows, claim: ClaimResult) -> list[Figure]:
    groups = group_by(finished(rows), init_label)
    figure, (curves, units) = _subplots(2, width=11.5, height=3.8)
    _loss_curves(curves, groups, lambda key: name_of(key[0]))
    curves.set_title("Training loss: symmetric inits stall")
    labels = [key[0] for key in groups]
    depth = max((len(r["summary"].get("distinct_units") or []) for r in rows), default=0)
    width = 0.8 / max(depth, 1)
    for layer in range(depth):
        counts = [
            mean((row["summary"].get("distinct_units") or [math.nan] * depth)[layer] for row in groups[(label,)])
            for label in labels
        ]
        units.bar(np.arange(len(labels)) + layer * width, counts, width, label=f"hidden layer {layer + 1}")
    units.set_xticks(np.arange(len(labels)) + width * (depth - 1) / 2)
    units.set_xticklabels([name_of(label) for label in labels])
    units.set(yscale="log", ylabel="distinct units after training", title="Distinct hidden units per layer")
    _finish(figure, (curves, units))
    _legend_beside(curves)
    _legend_beside(units)
    return [
        Figure(
            figure,
            "Left: training loss over steps (mean over seeds). Right: number of distinct "
            "units per hidden layer after training (log scale; 1 = all units identical).",
            "training loss curves and distinct-unit counts per init",
        )
    ]


# -------------------------------------------------------------- depth signal
DEPTH_PANELS = (
    ("act_std", "activation std per layer", "std of phi(z_l)", "activation std"),
    ("backprop_norm", "back-propagated gradient per layer", "||dL/dz_l||", "gradient ||dL/dz_l||"),
    (
        "preact_std",
        "pre-activation std: measured (solid, markers) vs mean-field theory (dashed)",
        "std of z_l",
        "pre-activation std",
    ),
    ("grad_norm", "weight-gradient norm per layer", "||dL/dW_l||", "||dL/dW_l||"),
)


def _depth_panel(axes, groups: Mapping[tuple, Rows], activation: str, metric: str) -> None:
    """One activation's per-layer curves of ``metric``, one per init (and the theory for ``preact_std``)."""
    chosen = [(label, members) for (act, label), members in groups.items() if act == activation]
    for index, (label, members) in enumerate(chosen):
        values = _layer_mean(members, metric)
        style = series_style(index, len(values))
        axes.plot(*_positive(range(1, len(values) + 1), values), label=name_of(label), lw=1.2, **style)
        if metric == "preact_std" and values:
            theory = theory_preact_std(members[0], values[0])
            if theory:
                axes.plot(*_positive(range(1, len(theory) + 1), theory), "--", color=style["color"], lw=1.6, alpha=0.8)
    _integer_ticks(axes.xaxis)


def depth_signal_figures(rows: Rows, claim: ClaimResult) -> list[Figure]:
    groups = group_by(finished(rows), lambda r: config_value(r, "model.activation"), init_label)
    activations = sorted({key[0] for key in groups}, key=["tanh", "sigmoid", "relu"].index)
    result = []
    for metric, what, ylabel, short in DEPTH_PANELS:
        figure, axes_row = _subplots(len(activations), width=3.8 * len(activations), height=4.2)
        for axes, activation in zip(axes_row, activations):
            _depth_panel(axes, groups, activation, metric)
            xlabel = "weight layer (output last)" if metric == "grad_norm" else "hidden layer"
            axes.set(yscale="log", xlabel=xlabel, ylabel=ylabel, title=f"{activation}: {short}")
        _finish(figure, axes_row)
        if metric == "preact_std":
            axes_row[0].plot([], [], "--", color="gray", label="mean-field theory (same colour)")
        _legend_below(figure, axes_row, columns=5)
        if metric == "grad_norm":
            caption = (
                "Weight-gradient norms per layer at initialisation: for ReLU they stay flat at any "
                "scale and hide the vanishing/exploding signal shown above."
            )
        else:
            caption = (
                f"{what.capitalize()} at initialisation (float64, log scale; mean over "
                f"seeds). Points that are 0, infinite or NaN are not drawn."
            )
        result.append(Figure(figure, caption, f"{what} for each activation and init"))
    return result


# ---------------------------------------------------------------- saturation
def saturation_figures(rows: Rows, claim: ClaimResult) -> list[Figure]:
    runs = finished(rows)
    at_init = group_by(
        [r for r in runs if config_value(r, "training.steps") == 0],
        lambda r: config_value(r, "model.activation"),
        init_label,
    )
    trained = group_by(
        [r for r in runs if config_value(r, "training.steps") > 0],
        lambda r: config_value(r, "model.activation"),
        init_label,
    )
    figure, (saturation, accuracy) = _subplots(2, width=11.5, height=3.8)
    for index, ((activation, label), members) in enumerate(at_init.items()):
        values = _layer_mean(members, "saturated_fraction")
        style = series_style(index, len(values)) | {"linestyle": "-" if activation == "tanh" else ":"}
        saturation.plot(range(1, len(values) + 1), values, label=f"{activation}, {name_of(label)}", **style)
    saturation.set(
        xlabel="hidden layer",
        ylabel="fraction of saturated units",
        ylim=(-0.03, 1.03),
        title="Saturated units at initialisation",
    )
    _integer_ticks(saturation.xaxis)
    _loss_curves(
        accuracy,
        trained,
        lambda key: f"{key[0]}, {name_of(key[1])}",
        metric="test_accuracy",
        styles=lambda key: {"linestyle": "-" if key[0] == "tanh" else ":"},
    )
    targets = {config_value(r, "training.target_accuracy") for r in runs if config_value(r, "training.steps") > 0}
    for target in targets - {None}:
        accuracy.axhline(target, color="k", lw=0.8, ls="--", label=f"target {target:g}")
    accuracy.set(title="Test accuracy during training")
    _finish(figure, (saturation, accuracy))
    _legend_beside(saturation)
    _legend_beside(accuracy)
    return [
        Figure(
            figure,
            "Left: fraction of units with |phi(z)| within 1% of the activation's bounds, "
            "per layer, at initialisation. Right: test accuracy over training steps.",
            "saturated fraction per layer and test accuracy curves",
        )
    ]


# ------------------------------------------------------------------- pairing
def _init_short(label: str) -> str:
    return "He" if label == "he_normal" else "Xavier" if label.startswith("glorot") else name_of(label)


def pairing_figures(rows: Rows, claim: ClaimResult) -> list[Figure]:
    groups = group_by(
        finished(rows),
        lambda r: config_value(r, "model.activation"),
        lambda r: config_value(r, "model.depth"),
        init_label,
    )
    activations = sorted({key[0] for key in groups})
    figure, axes_row = _subplots(len(activations) + 1, width=3.9 * (len(activations) + 1), height=4.4)
    for axes, activation in zip(axes_row, activations):
        chosen = {key: members for key, members in groups.items() if key[0] == activation}
        _loss_curves(
            axes,
            chosen,
            lambda key: f"depth {key[1]}, {name_of(key[2])}",
            styles=lambda key: {"linestyle": "-" if key[2] == "he_normal" else "--"},
        )
        axes.axhline(math.log(10), color="k", lw=0.8, ls=":", label="chance ln 10")
        axes.set(title=f"{activation}: training loss (momentum SGD)")
    bars = axes_row[-1]
    outer = sorted({key[:2] for key in groups})
    inits = sorted({key[2] for key in groups}, key=lambda label: label != "he_normal")
    width = 0.8 / max(len(inits), 1)
    for offset, label in enumerate(inits):
        values = [mean(r["summary"].get("test_accuracy") for r in groups.get((*o, label), [])) for o in outer]
        bars.bar(np.arange(len(outer)) + offset * width, values, width, label=_init_short(label))
    bars.set_xticks(np.arange(len(outer)) + width * (len(inits) - 1) / 2)
    bars.set_xticklabels([f"{activation}\ndepth {depth}" for activation, depth in outer])
    bars.axhline(0.1, color="k", lw=0.8, ls=":", label="chance 0.1")
    bars.set(ylabel="final test accuracy", title="Final test accuracy")
    _finish(figure, axes_row)
    _legend_below(figure, axes_row, columns=4)
    return [
        Figure(
            figure,
            "Training loss over steps for each activation, depth and init (He solid, Xavier dashed), "
            "and the final test accuracy (mean over seeds).",
            "pairing loss curves and accuracies",
        )
    ]


# ------------------------------------------------------------ regularization
def regularization_figures(rows: Rows, claim: ClaimResult) -> list[Figure]:
    groups = group_by(finished(rows), lambda r: config_value(r, "training.l2"))
    lambdas = sorted(key[0] for key in groups)
    positions = np.arange(len(lambdas))

    def mean_of(metric: str) -> list[float]:
        return [mean(r["summary"].get(metric) for r in groups[(l2,)]) for l2 in lambdas]

    figure, (norms, accuracies, gaps) = _subplots(3, width=11.5, height=3.8)
    weight_norms = mean_of("weight_norm")
    norms.plot(positions, weight_norms, "o-", color="C0")
    spread = _positive(positions.tolist(), weight_norms)[1]
    wide = bool(spread) and max(spread) > 10 * min(spread)
    norms.set(yscale="log" if wide else "linear", ylabel="sqrt(sum ||W||^2)", title="Final weight norm")
    for index, (name, metric) in enumerate((("train", "train_accuracy"), ("test", "test_accuracy"))):
        accuracies.plot(positions, mean_of(metric), label=name, **series_style(index, len(lambdas)))
    accuracies.set(ylabel="accuracy", title="Final train and test accuracy")
    gaps.plot(positions, mean_of("train_test_gap"), "s--", color="tab:red")
    gaps.set(ylabel="train - test accuracy", title="Train/test gap")
    for axes in (norms, accuracies, gaps):
        axes.set_xticks(positions)
        axes.set_xticklabels([f"{l2:g}" for l2 in lambdas])
        axes.set_xlabel("L2 penalty lambda")
    _finish(figure, (norms, accuracies, gaps))
    _legend_beside(accuracies)
    return [
        Figure(
            figure,
            "Digits, 64-256-256-10 ReLU started from N(0, 1) weights, Adam lr 1e-2, against the L2 "
            "penalty: the final weight norm (left), train and test accuracy (middle) and their gap (right).",
            "weight norm, accuracies and train-test gap against the L2 penalty",
        )
    ]


# ---------------------------------------------------------------------- bias
def _bar_groups(axes, groups: Mapping[tuple, Rows], metric: str, ylabel: str, title: str) -> None:
    outer = sorted({key[0] for key in groups})
    inner = list(dict.fromkeys(key[1] for key in groups))
    width = 0.8 / max(len(inner), 1)
    for offset, name in enumerate(inner):
        values = [mean(r["summary"].get(metric) for r in groups.get((o, name), [])) for o in outer]
        axes.bar(np.arange(len(outer)) + offset * width, values, width, label=name_of(name))
    axes.set_xticks(np.arange(len(outer)) + width * (len(inner) - 1) / 2)
    axes.set_xticklabels(outer)
    axes.set(ylabel=ylabel, title=title)


def bias_figures(rows: Rows, claim: ClaimResult) -> list[Figure]:
    groups = group_by(finished(rows), lambda r: config_value(r, "model.activation"), bias_label)
    figure, (bars, curves) = _subplots(2, width=11.5, height=3.8)
    _bar_groups(bars, groups, "test_accuracy", "final test accuracy", "Test accuracy by bias init")
    _loss_curves(
        curves,
        groups,
        lambda key: f"{key[0]}, bias {key[1]}",
        styles=lambda key: {"linestyle": "-" if key[0] == "relu" else "--"},
    )
    curves.set_title("Training loss by bias init")
    _finish(figure, (bars, curves))
    _legend_beside(bars)
    _legend_beside(curves)
    return [
        Figure(
            figure,
            "Final test accuracy (left) and training loss (right) for zero, constant and "
            "random biases (mean over seeds).",
            "bias init comparison",
        )
    ]


# -------------------------------------------------------------- glorot table
def glorot_figures(rows: Rows, claim: ClaimResult) -> list[Figure]:
    runs = [r for r in finished(rows) if init_label(r) in ("variance_scaling", "glorot_uniform")]
    groups = group_by(runs, lambda r: config_value(r, "model.activation"), init_label)
    figure, (ours, paper) = _subplots(2, width=11.5, height=3.8)
    outer = ["tanh", "softsign", "sigmoid"]
    for offset, label in enumerate(("variance_scaling", "glorot_uniform")):
        values = [
            100 * (1 - mean(r["summary"].get("test_accuracy") for r in groups.get((a, label), []))) for a in outer
        ]
        ours.bar(np.arange(3) + offset * 0.4, values, 0.4, label=name_of(label))
    ours.set_xticks(np.arange(3) + 0.2)
    ours.set_xticklabels(outer)
    ours.set(ylabel="test error (%)", ylim=(0, 100), title="Ours: MNIST-1D, 5 hidden layers")
    table = claim.values.get("paper", {})
    columns, paper_rows = table.get("columns", []), table.get("rows", {})
    for offset, kind in enumerate(("standard", "normalized")):
        values = [paper_rows.get(f"{a}/{kind}", [math.nan])[0] for a in outer]
        paper.bar(
            np.arange(3) + offset * 0.4, values, 0.4, label="standard" if kind == "standard" else "normalized (N)"
        )
        for position, value in enumerate(values):
            if not math.isfinite(value):
                paper.text(position + offset * 0.4, 1, "no row", ha="center", va="bottom", rotation=90, fontsize=8)
    paper.set_xlim(-0.5, 2.9)
    paper.set_xticks(np.arange(3) + 0.2)
    paper.set_xticklabels(outer)
    paper.set(
        ylabel="test error (%)", ylim=(0, 100), title=f"Glorot & Bengio 2010, Table 1 ({columns[0] if columns else ''})"
    )
    _finish(figure, (ours, paper))
    _legend_beside(ours)
    _legend_beside(paper)
    return [
        Figure(
            figure,
            "Test error of standard vs normalized initialisation per activation: ours (left) "
            "and the paper's Shapeset column (right; the paper has no Sigmoid N row).",
            "test errors, ours and Glorot & Bengio's",
        )
    ]


# ------------------------------------------------------------- edge of chaos
def relative_luminance(rgb: Sequence[float]) -> float:
    """WCAG 2 relative luminance of an sRGB colour with channels in [0, 1]."""
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb[:3]]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_ratio(first: Sequence[float], second: Sequence[float]) -> float:
    """WCAG 2 contrast ratio (1 to 21) of two sRGB colours."""
    lighter, darker = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def label_colour(background: Sequence[float]) -> str:
    """Black or white, whichever contrasts more with ``background`` (a cell's colour)."""
    black, white = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    return "black" if contrast_ratio(background, black) >= contrast_ratio(background, white) else "white"


def edge_figures(rows: Rows, claim: ClaimResult) -> list[Figure]:
    from matplotlib import patheffects

    runs = finished(rows)
    groups = group_by(runs, lambda r: round(sigma_w2(r), 6), lambda r: config_value(r, "model.depth"))
    grid = sorted({key[0] for key in groups})
    depths = sorted({key[1] for key in groups})
    matrix = np.array(
        [[mean(r["summary"].get("train_accuracy") for r in groups.get((w, d), [])) for w in grid] for d in depths]
    )
    figure, (axes,) = _subplots(1, width=8.5, height=5.2)
    image = axes.imshow(
        matrix, origin="lower", aspect="auto", cmap="viridis", extent=(-0.5, len(grid) - 0.5, -0.5, len(depths) - 0.5)
    )
    figure.colorbar(image, ax=axes, label="train accuracy after training")
    for i in range(len(depths)):
        for j in range(len(grid)):
            cell = image.to_rgba(matrix[i, j])
            axes.text(
                j,
                i,
                fmt(matrix[i, j]),
                ha="center",
                va="center",
                fontsize=9,
                color=label_colour(cell),
                zorder=4,
                bbox={"facecolor": cell, "edgecolor": "none", "pad": 1.5},
            )
    sigma_b2 = config_value(runs[0], "model.bias_init").get("std", 0.0) ** 2 if runs else 0.05
    fine = np.linspace(grid[0], grid[-1], 200) if grid else np.array([])
    predicted = np.array([trainable_depth(w, sigma_b2) for w in fine])
    x_positions = np.interp(fine, grid, np.arange(len(grid)))
    y_positions = np.interp(predicted, depths, np.arange(len(depths)), left=-0.5, right=len(depths) - 0.5)
    axes.plot(
        x_positions,
        y_positions,
        color="black",
        lw=1.2,
        ls="--",
        label="theory: trainable depth 6 xi_c",
        path_effects=[patheffects.withStroke(linewidth=3.5, foreground="white")],
    )
    critical = claim.values.get("critical")
    if critical is not None and grid:
        axes.axvline(
            float(np.interp(critical, grid, np.arange(len(grid)))),
            color="red",
            ls=":",
            lw=2,
            label=f"critical sigma_w^2 = {critical:.3g}",
        )
    axes.set_xticks(range(len(grid)))
    axes.set_xticklabels([f"{w:g}" for w in grid])
    axes.set_yticks(range(len(depths)))
    axes.set_yticklabels([str(d) for d in depths])
    axes.set(
        xlim=(-0.5, len(grid) - 0.5),
        ylim=(-0.5, len(depths) - 0.5),
        xlabel="sigma_w^2 (weight variance x fan-in)",
        ylabel="depth (hidden layers)",
        title=f"tanh trainability, sigma_b^2 = {sigma_b2:.3g}",
    )
    handles, labels = axes.get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=8)
    return [
        Figure(
            figure,
            "Train accuracy over weight variance and depth (cells; chance is 0.1), with the "
            "mean-field trainable depth 6 xi_c (dashed curve, clipped to the grid's depth range) "
            "and the critical sigma_w^2 (red). Axes are grid positions.",
            "trainability heat map with the 6 xi_c curve",
        )
    ]


# ---------------------------------------------------------------------- lsuv
def lsuv_figures(rows: Rows, claim: ClaimResult) -> list[Figure]:
    groups = group_by(finished(rows), lambda r: config_value(r, "model.kind"), init_label)
    figure, (bars, curves) = _subplots(2, width=11.5, height=3.8)
    _bar_groups(bars, groups, "test_accuracy", "final test accuracy", "Test accuracy by init")
    _loss_curves(
        curves,
        groups,
        lambda key: f"{key[0]}, {name_of(key[1])}",
        styles=lambda key: {"linestyle": "-" if key[0] == "mlp" else "--"},
    )
    curves.set_title("Training loss")
    _finish(figure, (bars, curves))
    _legend_beside(bars)
    _legend_beside(curves)
    return [
        Figure(
            figure,
            "LSUV against Xavier, He and orthogonal on a deep MLP and a 1-D CNN: final test "
            "accuracy (left) and training loss (right).",
            "LSUV comparison",
        )
    ]


# ---------------------------------------------------------- orthogonal depth
def orthogonal_figures(rows: Rows, claim: ClaimResult) -> list[Figure]:
    groups = group_by(finished(rows), init_label, lambda r: config_value(r, "model.depth"))
    figure, (steps_axes, curves) = _subplots(2, width=11.5, height=3.8)
    limit = max((config_value(r, "training.steps") for r in rows), default=0)
    all_depths = sorted({key[1] for key in groups})
    for index, label in enumerate(sorted({key[0] for key in groups})):
        depths = sorted(d for (i, d) in groups if i == label)
        values = [claim.values.get("steps", {}).get(f"{label}/{d}", math.nan) for d in depths]
        style = series_style(index, len(depths)) | {"linestyle": "-" if label == "orthogonal" else "--"}
        steps_axes.plot(depths, [v if math.isfinite(v) else limit for v in values], label=name_of(label), **style)
    steps_axes.axhline(limit, color="k", lw=0.8, ls=":", label=f"step budget {limit} (never reached)")
    steps_axes.set(
        xscale="log",
        xlabel="depth (linear layers)",
        ylabel="steps to the loss threshold",
        title="Learning time vs depth",
        ylim=(0, 1.08 * limit if limit else None),
    )
    steps_axes.set_xticks(all_depths, [str(d) for d in all_depths])
    steps_axes.xaxis.set_minor_locator(_null_locator())
    _loss_curves(
        curves,
        groups,
        lambda key: f"{name_of(key[0])}, depth {key[1]}",
        styles=lambda key: {"linestyle": "-" if key[0] == "orthogonal" else "--"},
    )
    thresholds = {config_value(r, "training.target_loss") for r in rows}
    for threshold in thresholds - {None}:
        curves.axhline(threshold, color="k", lw=0.8, ls=":", label=f"threshold {threshold:g}")
    curves.set_title("Training loss of deep linear networks")
    _finish(figure, (steps_axes, curves))
    _legend_beside(steps_axes)
    _legend_beside(curves)
    return [
        Figure(
            figure,
            "Steps until the training loss first falls below the threshold, per depth (left; a "
            "depth that never reached it is drawn at the step budget), and the loss curves (right).",
            "learning time against depth",
        )
    ]


def _null_locator():
    from matplotlib.ticker import NullLocator

    return NullLocator()


FIGURES: dict[str, Callable[[Rows, ClaimResult], list[Figure]]] = {
    "symmetry": symmetry_figures,
    "depth-signal": depth_signal_figures,
    "saturation": saturation_figures,
    "pairing": pairing_figures,
    "regularization": regularization_figures,
    "bias": bias_figures,
    "glorot-table": glorot_figures,
    "edge-of-chaos": edge_figures,
    "lsuv": lsuv_figures,
    "orthogonal-depth": orthogonal_figures,
}


def figures(name: str, rows: Rows, claim: ClaimResult) -> list[Figure]:
    """The figures of built-in study ``name`` from its rows (with histories) and its claim."""
    return FIGURES[name](rows, claim)
