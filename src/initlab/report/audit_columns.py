"""The per-layer columns shared by the terminal and HTML tables of an audit report."""

from __future__ import annotations

from typing import Any

HEADERS = (
    "#",
    "layer",
    "kind",
    "out std",
    "pre std",
    "gain",
    "sat",
    "dead",
    "sym",
    "|dL/dout|",
    "growth",
    "|dW|/|W|",
    "verdict",
)
TEXT_COLUMNS = (1, 2, 12)
"""Left-aligned (text) columns."""

VERDICT_COLOURS = {
    "healthy": "#1a7f37",
    "borderline": "#bf8700",
    "non_finite": "#8250df",
    "symmetric": "#bc4c00",
    "dead": "#6e7781",
    "saturated": "#9a6700",
    "exploding": "#cf222e",
    "vanishing": "#0969da",
}
"""Colour of each verdict (terminal and HTML)."""


def short(value: float | None) -> str:
    """3 significant digits, ``-`` for None."""
    return "-" if value is None else f"{value:.3g}"


def percent(value: float | None) -> str:
    """``"68%"``, ``-`` for None."""
    return "-" if value is None else f"{value:.0%}"


def layer_cells(layer: Any) -> list[str]:
    """One row of :data:`HEADERS` for a :class:`~initlab.auditing.LayerReport`."""
    dead = "-" if layer.units is None else f"{layer.dead_units}/{layer.units}"
    symmetric = "-" if layer.symmetric_units is None else str(layer.symmetric_units)
    return [
        str(layer.index),
        layer.name,
        layer.kind,
        short(layer.output.std),
        short(layer.pre_activation.std if layer.pre_activation else None),
        short(layer.gain),
        percent(layer.saturated_fraction),
        dead,
        symmetric,
        short(layer.grad_output_norm),
        short(layer.grad_growth),
        short(layer.grad_to_weight_ratio),
        layer.verdict,
    ]
