"""The mean-field phase diagram as a figure (matplotlib, Agg backend; PNG or SVG by extension).

Left panel: the (sigma_w2, sigma_b2) plane coloured by phase (ordered, chaotic,
unbounded variance), the critical line chi_1 = 1 and contours of xi_c.  Right panel:
the trainable depth 6 xi_c against sigma_w2 at one sigma_b2, with the critical
sigma_w2 marked (Schoenholz et al. 2017, figs. 1 and 5). One legend for both
panels lies below them, so it covers no part of the diagram.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from initlab._extras import pyplot
from initlab._io import checked_target, write_atomically
from initlab.errors import bad_value
from initlab.theory import PhaseDiagram

FORMATS = (".png", ".svg")

_PHASE_COLOURS = {"ordered": "#cfe3f5", "chaotic": "#f7d6c8", "unbounded": "#d9d9d9"}


def plot_phase_diagram(
    diagram: PhaseDiagram,
    path: str | Path,
    *,
    sigma_b2: float,
    depth_curve: PhaseDiagram,
    critical_sigma_w2: float | None = None,
) -> Path:
    """Draw the phase diagram and the 6 xi_c trainable-depth curve into ``path``.

    Args:
        diagram: the phase diagram over the (sigma_w2, sigma_b2) plane.
        path: output file, ``.png`` or ``.svg``.
        sigma_b2: the bias variance of the trainable-depth curve.
        depth_curve: a phase diagram with that single sigma_b2 and a fine sigma_w2 grid.
        critical_sigma_w2: the critical weight variance at ``sigma_b2``, marked if given.

    Returns:
        The path written.
    """
    target = Path(path)
    if target.suffix.lower() not in FORMATS:
        raise bad_value("plot_phase_diagram", "path", str(path), "a file name ending in .png or .svg")
    checked_target(target, "theory", "--plot")
    plt = pyplot("theory --plot")
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    figure, (plane, curve) = plt.subplots(1, 2, figsize=(12, 5), constrained_layout=True)
    names = ["ordered", "chaotic", "unbounded"]
    codes = np.select([diagram.phase == name for name in names[:2]], [0, 1], default=2).T
    if np.any(diagram.phase == "critical"):
        codes[(diagram.phase == "critical").T] = 0
    extent = [diagram.sigma_w2[0], diagram.sigma_w2[-1], diagram.sigma_b2[0], diagram.sigma_b2[-1]]
    plane.imshow(
        codes,
        origin="lower",
        aspect="auto",
        extent=extent,
        interpolation="nearest",
        cmap=ListedColormap([_PHASE_COLOURS[name] for name in names]),
        vmin=0,
        vmax=2,
    )
    labels = ["ordered (chi_1 < 1)", "chaotic (chi_1 > 1)", "no fixed point (q* -> inf)"]
    handles = [
        Patch(color=_PHASE_COLOURS[name], label=label)
        for code, (name, label) in enumerate(zip(names, labels))
        if np.any(codes == code)
    ]
    w_grid, b_grid = np.meshgrid(diagram.sigma_w2, diagram.sigma_b2, indexing="ij")
    chi_1 = np.where(np.isfinite(diagram.chi_1), diagram.chi_1, np.nan)
    if np.nanmin(chi_1) < 1 < np.nanmax(chi_1):
        plane.contour(w_grid, b_grid, chi_1, levels=[1.0], colors="black", linewidths=2)
        handles.append(plt.Line2D([], [], color="black", linewidth=2, label="critical line chi_1 = 1"))
    xi_c = np.where(np.isfinite(diagram.xi_c), diagram.xi_c, np.nan)
    levels = [level for level in (2, 5, 10, 20, 50) if np.nanmin(xi_c, initial=np.inf) < level]
    if levels:
        lines = plane.contour(
            w_grid, b_grid, xi_c, levels=levels, colors="dimgray", linewidths=0.8, linestyles="dashed"
        )
        plane.clabel(lines, fmt="%g", fontsize=8, colors="#333333")  # dark: readable on both phase colours
        handles.append(plt.Line2D([], [], color="dimgray", linestyle="dashed", label="xi_c contours"))
    if critical_sigma_w2 is not None:
        plane.plot([critical_sigma_w2], [sigma_b2], marker="o", color="black", linestyle="none")
    plane.set_xlabel("sigma_w^2 (weight variance x fan-in)")
    plane.set_ylabel("sigma_b^2 (bias variance)")
    plane.set_title(f"{diagram.activation}: order-to-chaos phase diagram")

    depth = 6 * depth_curve.xi_c[:, 0]
    curve.semilogy(
        depth_curve.sigma_w2,
        np.where(np.isfinite(depth), depth, np.nan),
        color="tab:blue",
        label="trainable depth 6 xi_c",
    )
    if critical_sigma_w2 is not None:
        curve.axvline(
            critical_sigma_w2, color="black", linestyle=":", label=f"critical sigma_w^2 = {critical_sigma_w2:.4g}"
        )
    curve.set_xlabel("sigma_w^2")
    curve.set_ylabel("depth (layers)")
    curve.set_title(f"trainable depth at sigma_b^2 = {sigma_b2:g}")
    handles += curve.get_legend_handles_labels()[0]
    figure.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=8)  # below the panels, off the data
    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format=target.suffix.lower().lstrip("."))
    finally:
        plt.close(figure)
    return write_atomically(target, buffer.getvalue(), "theory", "--plot")
