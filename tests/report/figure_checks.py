"""Readability checks of a drawn matplotlib figure, in display (pixel) coordinates.

Each check returns a list of human-readable problems (empty: the figure passes):

* :func:`overlapping_texts`: two texts (tick labels, axis labels, titles, legends, annotations)
  whose boxes overlap;
* :func:`legends_over_data`: a legend whose box covers a drawn point of a line, a bar or an image;
* :func:`hidden_lines`: a line that lies entirely under another one with the same marker, so
  nothing of it can be seen;
* :func:`unreadable_cell_labels`: a text on a heat map whose contrast with its cell's colour is below
  WCAG's 4.5:1, or whose font is smaller than 8 points.
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
from matplotlib.colors import to_rgba
from matplotlib.transforms import Bbox

from initlab.report.study_figures import contrast_ratio

TOUCH_PX = 0.5
"""Boxes that only touch (within half a pixel) do not overlap."""


def draw(figure):
    """Lay out and draw ``figure`` (constrained layout runs at draw time); its renderer."""
    figure.canvas.draw()
    return figure.canvas.get_renderer()


def _shrunk(box: Bbox) -> Bbox:
    return Bbox.from_extents(box.x0 + TOUCH_PX, box.y0 + TOUCH_PX, box.x1 - TOUCH_PX, box.y1 - TOUCH_PX)


def _tick_labels(axes, renderer) -> list[tuple[str, Bbox]]:
    """The tick labels that are drawn: visible, non-empty and at a tick inside the axes' view."""
    boxes = []
    frame = axes.get_window_extent(renderer)
    for name, axis in (("x", axes.xaxis), ("y", axes.yaxis)):
        for tick in axis.get_major_ticks() + axis.get_minor_ticks():
            for label in (tick.label1, tick.label2):
                if not (label.get_visible() and tick.get_visible() and label.get_text()):
                    continue
                box = label.get_window_extent(renderer)
                centre = (box.x0 + box.x1) / 2 if name == "x" else (box.y0 + box.y1) / 2
                low, high = (frame.x0, frame.x1) if name == "x" else (frame.y0, frame.y1)
                if low - 1 <= centre <= high + 1:
                    boxes.append((f"{name} tick label {label.get_text()!r} of {axes.get_title()!r}", box))
    return boxes


def text_boxes(figure, renderer) -> list[tuple[str, Bbox]]:
    """Every drawn text of ``figure`` and its box; a legend counts as one box."""
    boxes = []
    for axes in figure.axes:
        boxes += _tick_labels(axes, renderer)
        for what, text in (("title", axes.title), ("x label", axes.xaxis.label), ("y label", axes.yaxis.label)):
            if text.get_visible() and text.get_text():
                boxes.append((f"{what} {text.get_text()!r}", text.get_window_extent(renderer)))
        for text in axes.texts:
            if text.get_visible() and text.get_text():
                boxes.append((f"text {text.get_text()!r} in {axes.get_title()!r}", text.get_window_extent(renderer)))
    for legend in _legends(figure):
        boxes.append((f"legend {[t.get_text() for t in legend.get_texts()]}", legend.get_window_extent(renderer)))
    return boxes


def overlapping_texts(figure) -> list[str]:
    """Pairs of texts whose boxes overlap."""
    renderer = draw(figure)
    boxes = text_boxes(figure, renderer)
    return [
        f"{first} overlaps {second}"
        for (first, a), (second, b) in combinations(boxes, 2)
        if _shrunk(a).overlaps(_shrunk(b))
    ]


def _legends(figure) -> list:
    return [axes.get_legend() for axes in figure.axes if axes.get_legend() is not None] + list(figure.legends)


def line_points(line, samples_per_segment: int = 25) -> np.ndarray:
    """Display coordinates of the drawn path of ``line`` (its segments sampled), inside its axes."""
    data = np.column_stack([np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)])
    points = line.get_transform().transform(data)
    points = points[np.all(np.isfinite(points), axis=1)]
    if len(points) > 1 and line.get_linestyle() not in ("None", "", " ", "none"):
        fractions = np.linspace(0.0, 1.0, samples_per_segment)[:, None]
        points = np.vstack([start + fractions * (end - start) for start, end in zip(points[:-1], points[1:])])
    frame = line.axes.bbox
    inside = (points[:, 0] >= frame.x0 - 1) & (points[:, 0] <= frame.x1 + 1)
    inside &= (points[:, 1] >= frame.y0 - 1) & (points[:, 1] <= frame.y1 + 1)
    return points[inside]


def _data_lines(axes) -> list:
    return [line for line in axes.get_lines() if line.get_visible() and len(line.get_xdata()) > 0]


def _inside(box: Bbox, points: np.ndarray) -> np.ndarray:
    return (points[:, 0] > box.x0) & (points[:, 0] < box.x1) & (points[:, 1] > box.y0) & (points[:, 1] < box.y1)


def legends_over_data(figure) -> list[str]:
    """Legends whose box covers a drawn line point, a bar or an image of any panel."""
    renderer = draw(figure)
    problems = []
    for legend in _legends(figure):
        box = _shrunk(legend.get_window_extent(renderer))
        for axes in figure.axes:
            for line in _data_lines(axes):
                points = line_points(line)
                if len(points) and np.any(_inside(box, points)):
                    problems.append(f"legend covers line {line.get_label()!r} of {axes.get_title()!r}")
            for patch in axes.patches:
                if box.overlaps(patch.get_window_extent(renderer)):
                    problems.append(f"legend covers patch {patch.get_label()!r} of {axes.get_title()!r}")
            for image in axes.images:
                if box.overlaps(image.get_window_extent(renderer)):
                    problems.append(f"legend covers the image of {axes.get_title()!r}")
    return problems


def _distance_to(points: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Distance of each of ``points`` to the nearest of ``other``."""
    from scipy.spatial import cKDTree

    return cKDTree(other).query(points)[0]


def hidden_lines(figure, tolerance_px: float = 2.0) -> list[str]:
    """Lines drawn entirely within ``tolerance_px`` of another line of the same panel that has the
    same marker: the two cannot be told apart (different hollow markers keep both visible)."""
    draw(figure)
    problems = []
    for axes in figure.axes:
        for first, second in combinations(_data_lines(axes), 2):
            a, b = line_points(first), line_points(second)
            if len(a) == 0 or len(b) == 0 or first.get_marker() != second.get_marker():
                continue
            if np.all(_distance_to(a, b) < tolerance_px) or np.all(_distance_to(b, a) < tolerance_px):
                problems.append(
                    f"{first.get_label()!r} and {second.get_label()!r} of {axes.get_title()!r} coincide and share "
                    f"the marker {first.get_marker()!r}"
                )
    return problems


def _cell_value(image, x: float, y: float) -> float:
    """The image's value under data point (x, y) (``imshow`` with an explicit extent)."""
    values = np.asarray(image.get_array())
    left, right, bottom, top = image.get_extent()
    rows, columns = values.shape[:2]
    column = min(columns - 1, max(0, math.floor((x - left) / (right - left) * columns)))
    row = min(rows - 1, max(0, math.floor((y - bottom) / (top - bottom) * rows)))
    if image.origin == "upper":
        row = rows - 1 - row
    return float(values[row, column])


def unreadable_cell_labels(figure, minimum_ratio: float = 4.5, minimum_points: float = 8.0) -> list[str]:
    """Texts on heat maps with too little contrast against their cell, or too small a font."""
    problems = []
    for axes in figure.axes:
        for image in axes.images:
            for text in axes.texts:
                x, y = text.get_position()
                background = image.to_rgba(_cell_value(image, x, y))
                ratio = contrast_ratio(to_rgba(text.get_color()), background)
                if ratio < minimum_ratio:
                    problems.append(f"cell label {text.get_text()!r}: contrast {ratio:.2f} < {minimum_ratio}")
                if text.get_fontsize() < minimum_points:
                    problems.append(f"cell label {text.get_text()!r}: font {text.get_fontsize()} pt")
    return problems


def problems_of(figure) -> list[str]:
    """Every readability problem of ``figure``."""
    return overlapping_texts(figure) + legends_over_data(figure) + hidden_lines(figure) + unreadable_cell_labels(figure)
