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


def name_of(label: str) -> str:
    """Readable name of an init label."""
    return INIT_NAMES.get(label, label)


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


def _finish(figure, axes_list) -> None:
    for axes in axes_list:
        axes.grid(True, which="both", alpha=0.3)
        handles, _ = axes.get_legend_handles_labels()
        if handles:
            axes.legend(fontsize=7)
    figure.subplots_adjust(wspace=0.32)


def _loss_curves(
    axes,
    groups: Mapping[tuple, Rows],
    label: Callable[[tuple], str],
    metric="train_loss",
    styles: Callable[[tuple], dict] | None = None,
) -> None:
    for key, members in groups.items():
        steps, values = _history_mean(members, metric)
        if steps:
            axes.plot(steps, values, label=label(key), **(styles(key) if styles else {}))
    axes.set(xlabel="training step", ylabel=metric.replace("_", " "))


# ------------------------------------------------------------------ symmetry
def symmetry_figures(rows: Rows, claim: ClaimResult) -> list[Figure]:
    plt = _pyplot()
    groups = group_by(finished(rows), init_label)
    figure, (curves, units) = plt.subplots(1, 2, figsize=(11, 3.8))
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
    return [
        Figure(
            figure,
            "Left: training loss over steps (mean over seeds). Right: number of distinct "
            "units per hidden layer after training (log scale; 1 = all units identical).",
            "training loss curves and distinct-unit counts per init",
        )
    ]


# -------------------------------------------------------------- depth signal
def depth_signal_figures(rows: Rows, claim: ClaimResult) -> list[Figure]:
    plt = _pyplot()
    groups = group_by(finished(rows), lambda r: config_value(r, "model.activation"), init_label)
    activations = sorted({key[0] for key in groups}, key=["tanh", "sigmoid", "relu"].index)
    result = []
    panels = (
        ("act_std", "activation std per layer", "std of phi(z_l)", "activation std"),
        ("backprop_norm", "back-propagated gradient per layer", "||dL/dz_l||", "gradient ||dL/dz_l||"),
        (
            "preact_std",
            "pre-activation std: measured (solid) vs mean-field theory (dashed)",
            "std of z_l",
            "pre-activation std",
        ),
    )
    for metric, what, ylabel, short in panels:
        figure, axes_row = plt.subplots(1, len(activations), figsize=(4.2 * len(activations), 3.6), squeeze=False)
        for axes, activation in zip(axes_row[0], activations):
            for (act, label), members in groups.items():
                if act != activation:
                    continue
                values = _layer_mean(members, metric)
                (line,) = axes.plot(*_positive(range(1, len(values) + 1), values), label=name_of(label))
                if metric == "preact_std" and values:
                    theory = theory_preact_std(members[0], values[0])
                    if theory:
                        axes.plot(*_positive(range(1, len(theory) + 1), theory), "--", color=line.get_color(), lw=1)
            axes.set(yscale="log", xlabel="hidden layer", ylabel=ylabel, title=f"{activation}: {short}")
        _finish(figure, axes_row[0])
        result.append(
            Figure(
                figure,
                f"{what.capitalize()} at initialisation (float64, log scale; mean over "
                f"seeds). Points that are 0, infinite or NaN are not drawn.",
                f"{what} for each activation and init",
            )
        )
    figure, axes_row = plt.subplots(1, len(activations), figsize=(4.2 * len(activations), 3.4), squeeze=False)
    for axes, activation in zip(axes_row[0], activations):
        for (act, label), members in groups.items():
            if act == activation:
                values = _layer_mean(members, "grad_norm")
                axes.plot(*_positive(range(1, len(values) + 1), values), label=name_of(label))
        axes.set(
            yscale="log", xlabel="weight layer (output last)", ylabel="||dL/dW_l||", title=f"{activation}: ||dL/dW_l||"
        )
    _finish(figure, axes_row[0])
    result.append(
        Figure(
            figure,
            "Weight-gradient norms per layer: for ReLU they stay flat at any scale and "
            "hide the vanishing/exploding signal shown above.",
            "weight gradient norms per layer",
        )
    )
    return result


# ---------------------------------------------------------------- saturation
def saturation_figures(rows: Rows, claim: ClaimResult) -> list[Figure]:
    plt = _pyplot()
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
    figure, (saturation, accuracy) = plt.subplots(1, 2, figsize=(11, 3.8))
    for (activation, label), members in at_init.items():
        values = _layer_mean(members, "saturated_fraction")
        saturation.plot(range(1, len(values) + 1), values, "o-", label=f"{activation}, {name_of(label)}")
    saturation.set(
        xlabel="hidden layer",
        ylabel="fraction of saturated units",
        ylim=(-0.03, 1.03),
        title="Saturated units at initialisation",
    )
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
    return [
        Figure(
            figure,
            "Left: fraction of units with |phi(z)| within 1% of the activation's bounds, "
            "per layer, at initialisation. Right: test accuracy over training steps.",
            "saturated fraction per layer and test accuracy curves",
        )
    ]


# ------------------------------------------------------------------- pairing
def pairing_figures(rows: Rows, claim: ClaimResult) -> list[Figure]:
    plt = _pyplot()
    groups = group_by(
        finished(rows),
        lambda r: config_value(r, "model.activation"),
        lambda r: config_value(r, "model.depth"),
        init_label,
    )
    activations = sorted({key[0] for key in groups})
    figure, axes_row = plt.subplots(1, len(activations) + 1, figsize=(5 * (len(activations) + 1), 3.8), squeeze=False)
    for axes, activation in zip(axes_row[0], activations):
        chosen = {key: members for key, members in groups.items() if key[0] == activation}
        _loss_curves(
            axes,
            chosen,
            lambda key: f"depth {key[1]}, {name_of(key[2])}",
            styles=lambda key: {"linestyle": "-" if key[2] == "he_normal" else "--"},
        )
        axes.axhline(math.log(10), color="k", lw=0.8, ls=":", label="chance ln 10")
        axes.set(title=f"{activation}: training loss (momentum SGD)")
    bars = axes_row[0][-1]
    keys = sorted(groups)
    bars.bar(
        range(len(keys)),
        [mean(r["summary"].get("test_accuracy") for r in groups[k]) for k in keys],
        color=["#4c72b0" if k[2] == "he_normal" else "#dd8452" for k in keys],
    )
    bars.set_xticks(range(len(keys)))
    bars.set_xticklabels([f"{k[0]} d{k[1]}\n{'He' if k[2] == 'he_normal' else 'Xavier'}" for k in keys], fontsize=7)
    bars.axhline(0.1, color="k", lw=0.8, ls=":", label="chance 0.1")
    bars.set(ylabel="final test accuracy", title="Final test accuracy (blue He, orange Xavier)")
    _finish(figure, axes_row[0])
    return [
        Figure(
            figure,
            "Training loss over steps for each activation, depth and init, and the final "
            "test accuracy (mean over seeds).",
            "pairing loss curves and accuracies",
        )
    ]


# ------------------------------------------------------------ regularization
def regularization_figures(rows: Rows, claim: ClaimResult) -> list[Figure]:
    plt = _pyplot()
    groups = group_by(finished(rows), lambda r: config_value(r, "training.l2"))
    lambdas = sorted(key[0] for key in groups)
    positions = np.arange(len(lambdas))
    figure, (norms, gaps) = plt.subplots(1, 2, figsize=(11, 3.8))
    norms.plot(
        positions,
        [mean(r["summary"].get("weight_norm") for r in groups[(l2,)]) for l2 in lambdas],
        "o-",
        label="total weight norm sqrt(sum ||W||^2)",
    )
    norms.set(yscale="log", ylabel="final weight norm", title="Weight norm after training vs lambda")
    for name, metric in (("train accuracy", "train_accuracy"), ("test accuracy", "test_accuracy")):
        gaps.plot(
            positions, [mean(r["summary"].get(metric) for r in groups[(l2,)]) for l2 in lambdas], "o-", label=name
        )
    gap_axes = gaps.twinx()
    gap_axes.plot(
        positions,
        [mean(r["summary"].get("train_test_gap") for r in groups[(l2,)]) for l2 in lambdas],
        "s--",
        color="tab:red",
        label="train-test gap (right axis)",
    )
    gap_axes.set_ylabel("train - test accuracy")
    gap_axes.legend(fontsize=7, loc="lower right")
    gaps.set(ylabel="accuracy", title="Accuracy and the train/test gap vs lambda")
    for axes in (norms, gaps):
        axes.set_xticks(positions)
        axes.set_xticklabels([f"{l2:g}" for l2 in lambdas])
        axes.set_xlabel("L2 penalty lambda")
    _finish(figure, (norms, gaps))
    return [
        Figure(
            figure,
            "Digits, 64-256-256-10 ReLU started from N(0, 1) weights, Adam lr 1e-2: the final "
            "weight norm (left, log scale) and train/test accuracy with their gap (right).",
            "weight norm and train-test gap against the L2 penalty",
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
    plt = _pyplot()
    groups = group_by(finished(rows), lambda r: config_value(r, "model.activation"), bias_label)
    figure, (bars, curves) = plt.subplots(1, 2, figsize=(11, 3.8))
    _bar_groups(bars, groups, "test_accuracy", "final test accuracy", "Test accuracy by bias init")
    _loss_curves(
        curves,
        groups,
        lambda key: f"{key[0]}, bias {key[1]}",
        styles=lambda key: {"linestyle": "-" if key[0] == "relu" else "--"},
    )
    curves.set_title("Training loss by bias init")
    _finish(figure, (bars, curves))
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
    plt = _pyplot()
    runs = [r for r in finished(rows) if init_label(r) in ("variance_scaling", "glorot_uniform")]
    groups = group_by(runs, lambda r: config_value(r, "model.activation"), init_label)
    figure, (ours, paper) = plt.subplots(1, 2, figsize=(11, 3.8))
    outer = ["tanh", "softsign", "sigmoid"]
    for offset, label in enumerate(("variance_scaling", "glorot_uniform")):
        values = [
            100 * (1 - mean(r["summary"].get("test_accuracy") for r in groups.get((a, label), []))) for a in outer
        ]
        ours.bar(np.arange(3) + offset * 0.4, values, 0.4, label=name_of(label))
    ours.set_xticks(np.arange(3) + 0.2)
    ours.set_xticklabels(outer)
    ours.set(ylabel="test error (%)", title="Ours: MNIST-1D, 5 hidden layers")
    table = claim.values.get("paper", {})
    columns, paper_rows = table.get("columns", []), table.get("rows", {})
    for offset, kind in enumerate(("standard", "normalized")):
        values = [paper_rows.get(f"{a}/{kind}", [math.nan])[0] for a in outer]
        paper.bar(
            np.arange(3) + offset * 0.4, values, 0.4, label="standard" if kind == "standard" else "normalized (N)"
        )
    paper.set_xticks(np.arange(3) + 0.2)
    paper.set_xticklabels(outer)
    paper.set(ylabel="test error (%)", title=f"Glorot & Bengio 2010, Table 1 ({columns[0] if columns else ''})")
    _finish(figure, (ours, paper))
    return [
        Figure(
            figure,
            "Test error of standard vs normalized initialisation per activation: ours (left) "
            "and the paper's Shapeset column (right; the paper has no Sigmoid N row).",
            "test errors, ours and Glorot & Bengio's",
        )
    ]


# ------------------------------------------------------------- edge of chaos
def edge_figures(rows: Rows, claim: ClaimResult) -> list[Figure]:
    plt = _pyplot()
    runs = finished(rows)
    groups = group_by(runs, lambda r: round(sigma_w2(r), 6), lambda r: config_value(r, "model.depth"))
    grid = sorted({key[0] for key in groups})
    depths = sorted({key[1] for key in groups})
    matrix = np.array(
        [[mean(r["summary"].get("train_accuracy") for r in groups.get((w, d), [])) for w in grid] for d in depths]
    )
    figure, axes = plt.subplots(figsize=(8, 4.5))
    image = axes.imshow(
        matrix, origin="lower", aspect="auto", cmap="viridis", extent=(-0.5, len(grid) - 0.5, -0.5, len(depths) - 0.5)
    )
    figure.colorbar(image, ax=axes, label="train accuracy after training")
    for i in range(len(depths)):
        for j in range(len(grid)):
            axes.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7, color="white")
    sigma_b2 = config_value(runs[0], "model.bias_init").get("std", 0.0) ** 2 if runs else 0.05
    fine = np.linspace(grid[0], grid[-1], 200) if grid else np.array([])
    predicted = np.array([trainable_depth(w, sigma_b2) for w in fine])
    x_positions = np.interp(fine, grid, np.arange(len(grid)))
    y_positions = np.interp(predicted, depths, np.arange(len(depths)), left=-0.5, right=len(depths) - 0.5)
    axes.plot(x_positions, y_positions, color="white", lw=2, label="theory: 6 xi_c")
    critical = claim.values.get("critical")
    if critical is not None and grid:
        axes.axvline(
            float(np.interp(critical, grid, np.arange(len(grid)))),
            color="red",
            ls=":",
            label=f"critical sigma_w^2 = {critical:.3g}",
        )
    axes.set_xticks(range(len(grid)))
    axes.set_xticklabels([f"{w:g}" for w in grid])
    axes.set_yticks(range(len(depths)))
    axes.set_yticklabels([str(d) for d in depths])
    axes.set(
        xlabel="sigma_w^2 (weight variance x fan-in)",
        ylabel="depth (hidden layers)",
        title=f"tanh trainability, sigma_b^2 = {sigma_b2:.3g}",
    )
    axes.legend(fontsize=7, loc="upper right")
    return [
        Figure(
            figure,
            "Train accuracy over weight variance and depth (cells; chance is 0.1), with the "
            "mean-field trainable depth 6 xi_c (white curve, clipped to the grid's depth range) "
            "and the critical sigma_w^2 (red). Axes are grid positions.",
            "trainability heat map with the 6 xi_c curve",
        )
    ]


# ---------------------------------------------------------------------- lsuv
def lsuv_figures(rows: Rows, claim: ClaimResult) -> list[Figure]:
    plt = _pyplot()
    groups = group_by(finished(rows), lambda r: config_value(r, "model.kind"), init_label)
    figure, (bars, curves) = plt.subplots(1, 2, figsize=(11, 3.8))
    _bar_groups(bars, groups, "test_accuracy", "final test accuracy", "Test accuracy by init")
    _loss_curves(
        curves,
        groups,
        lambda key: f"{key[0]}, {name_of(key[1])}",
        styles=lambda key: {"linestyle": "-" if key[0] == "mlp" else "--"},
    )
    curves.set_title("Training loss")
    _finish(figure, (bars, curves))
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
    plt = _pyplot()
    groups = group_by(finished(rows), init_label, lambda r: config_value(r, "model.depth"))
    figure, (steps_axes, curves) = plt.subplots(1, 2, figsize=(11, 3.8))
    for label in sorted({key[0] for key in groups}):
        depths = sorted(d for (i, d) in groups if i == label)
        values = [claim.values.get("steps", {}).get(f"{label}/{d}", math.nan) for d in depths]
        limit = max(config_value(r, "training.steps") for r in rows)
        steps_axes.plot(depths, [v if math.isfinite(v) else limit for v in values], "o-", label=name_of(label))
    steps_axes.set(
        xscale="log",
        xlabel="depth (linear layers)",
        ylabel="steps to the loss threshold",
        title="Learning time vs depth (never reached: drawn at the step budget)",
    )
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
    return [
        Figure(
            figure,
            "Steps until the training loss first falls below the threshold, per depth (left), "
            "and the loss curves (right).",
            "learning time against depth",
        )
    ]


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
