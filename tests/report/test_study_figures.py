"""Every built-in study's figures are readable (issue 19, point 5), checked on a real tiny tour.

For each figure: no two texts overlap (tick labels, titles, axis labels, legends), no legend covers
a drawn point of a line, bar or heat map, no curve lies hidden under another with the same marker,
heat-map cell labels contrast with their cell (WCAG 4.5:1) at 8 pt or more. Each check is shown to
fail on a figure that has the defect. The study pages show no training metrics for runs that took
no training step, and in Chromium every figure is shown at nearly its natural size.
"""

from __future__ import annotations

import contextlib
import io
import re

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from figure_checks import (  # noqa: E402
    hidden_lines,
    legends_over_data,
    overlapping_texts,
    problems_of,
    unreadable_cell_labels,
)

from initlab.cli import main  # noqa: E402
from initlab.lab import Store  # noqa: E402
from initlab.lab.tour import BUILTIN_STUDIES, stored_studies  # noqa: E402
from initlab.report import study_figures  # noqa: E402
from initlab.report.study_figures import contrast_ratio, label_colour  # noqa: E402
from initlab.report.study_html import runs_table_html  # noqa: E402
from initlab.report.tour import load_pages  # noqa: E402


@pytest.fixture(scope="module")
def tiny_pages(tmp_path_factory):
    """One ``initlab tour --size tiny`` (all ten studies); (the pages loaded from its store, report folder)."""
    patch = pytest.MonkeyPatch()
    patch.setenv("INITLAB_CACHE", str(tmp_path_factory.mktemp("initlab-cache")))
    folder = tmp_path_factory.mktemp("tour")
    store_path, out = folder / "runs.sqlite", folder / "reports"
    with contextlib.redirect_stdout(io.StringIO()):
        status = main(["tour", "--size", "tiny", "--store", str(store_path), "--out", str(out), "--workers", "1"])
    assert status == 0
    with Store(store_path) as store:
        pages = {page.name: page for page in load_pages(stored_studies(BUILTIN_STUDIES, "tiny", store), store)}
    yield pages, out
    patch.undo()


@pytest.mark.slow
@pytest.mark.parametrize("name", BUILTIN_STUDIES)
def test_every_figure_of_every_study_is_readable(tiny_pages, name):
    pages, _ = tiny_pages
    page = pages[name]
    drawn = study_figures.figures(name, page.rows, page.claim)
    assert drawn
    for number, item in enumerate(drawn, start=1):
        try:
            assert problems_of(item.figure) == [], f"{name} figure {number}"
        finally:
            plt.close(item.figure)


@pytest.mark.slow
def test_the_depth_signal_legend_no_longer_covers_the_sigmoid_curves(tiny_pages):
    pages, _ = tiny_pages
    page = pages["depth-signal"]
    drawn = study_figures.figures("depth-signal", page.rows, page.claim)
    try:
        preact = drawn[2].figure
        sigmoid = next(axes for axes in preact.axes if axes.get_title().startswith("sigmoid"))
        assert {line.get_label() for line in sigmoid.get_lines()} >= {"He (normal)", "Xavier (normal)"}
        assert legends_over_data(preact) == []
    finally:
        for item in drawn:
            plt.close(item.figure)


# ----------------------------------------------------------- the checks can fail
def test_overlapping_tick_labels_are_found():
    figure, axes = plt.subplots(figsize=(3, 2))
    axes.plot(range(30), range(30))
    axes.set_xticks(range(30), [f"long label {i}" for i in range(30)])
    try:
        assert any("x tick label" in problem for problem in overlapping_texts(figure))
    finally:
        plt.close(figure)


def test_a_legend_over_the_curves_is_found():
    figure, axes = plt.subplots(figsize=(4, 3))
    x = np.linspace(0, 1, 50)
    axes.plot(x, 1 - 0.1 * x, label="high curve")  # runs under an upper-right legend
    axes.plot(x, 0 * x, label="low curve")
    axes.legend(loc="upper right")
    try:
        assert any("'high curve'" in problem for problem in legends_over_data(figure))
        axes.get_legend().remove()
        figure.legend(loc="outside lower center")
        axes.figure.set_layout_engine("constrained")
        assert legends_over_data(figure) == []
    finally:
        plt.close(figure)


def test_a_curve_hidden_under_another_is_found_unless_their_markers_differ():
    figure, axes = plt.subplots(figsize=(4, 3))
    axes.plot([0, 1, 2], [1, 2, 3], "o-", label="first")
    second = axes.plot([0, 1, 2], [1, 2, 3], "o-", label="second")[0]
    try:
        assert hidden_lines(figure) == ["'first' and 'second' of '' coincide and share the marker 'o'"]
        second.set_marker("s")
        assert hidden_lines(figure) == []
    finally:
        plt.close(figure)


def test_white_labels_on_a_bright_cell_and_tiny_fonts_are_found():
    figure, axes = plt.subplots(figsize=(4, 3))
    image = axes.imshow(np.array([[0.0, 1.0]]), cmap="viridis", extent=(-0.5, 1.5, -0.5, 0.5))
    axes.text(0, 0, "dark cell", color="white", fontsize=9)
    axes.text(1, 0, "yellow cell", color="white", fontsize=9)
    try:
        problems = unreadable_cell_labels(figure)
        assert len(problems) == 1 and "'yellow cell'" in problems[0]
        axes.texts[1].set_color(label_colour(image.to_rgba(1.0)))
        axes.texts[0].set_fontsize(6)
        assert unreadable_cell_labels(figure) == ["cell label 'dark cell': font 6.0 pt"]
    finally:
        plt.close(figure)


def test_contrast_ratio_matches_wcag():
    assert contrast_ratio((0, 0, 0), (1, 1, 1)) == pytest.approx(21.0)
    assert contrast_ratio((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)) == pytest.approx(1.0)
    # #777777 on white is WCAG's classic borderline grey: 4.48
    assert contrast_ratio((0x77 / 255,) * 3, (1, 1, 1)) == pytest.approx(4.48, abs=0.01)
    assert label_colour((1, 1, 0)) == "black" and label_colour((0.1, 0, 0.3)) == "white"


# ------------------------------------------------------------ zero-step runs
TRAINING_HEADERS = ("test accuracy", "train accuracy", "train loss", "train test gap", "steps to target")


def _headers(table: str) -> list[str]:
    return re.findall(r"<th[^>]*>([^<]*)</th>", table)


@pytest.mark.slow
def test_runs_with_zero_steps_list_no_training_metrics(tiny_pages):
    pages, _ = tiny_pages
    rows = pages["depth-signal"].rows
    assert {row["config"]["training"]["steps"] for row in rows} == {0}
    headers = _headers(runs_table_html(rows))
    assert not [h for h in headers if h.startswith(TRAINING_HEADERS)], headers
    assert "training steps" in headers and "at init: activation std, last hidden layer" in headers


@pytest.mark.slow
def test_mixed_studies_blank_training_metrics_of_zero_step_runs_only(tiny_pages):
    pages, _ = tiny_pages
    rows = pages["saturation"].rows
    table = runs_table_html(rows)
    headers = _headers(table)
    accuracy = headers.index("test accuracy")
    body = [re.findall(r"<td[^>]*>([^<]*)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", table)[1:]]
    zero = [cells for cells in body if cells[2] == "0"]
    trained = [cells for cells in body if cells[2] != "0"]
    assert zero and trained
    assert all(cells[accuracy] == "-" for cells in zero)
    assert all(cells[accuracy] != "-" for cells in trained)


@pytest.mark.slow
@pytest.mark.browser
def test_every_figure_is_shown_near_its_natural_size_in_chromium(tiny_pages, browser):
    _, out = tiny_pages
    for name in BUILTIN_STUDIES:
        check = browser.check(out / f"{name}.html", screenshot_name=f"{name}.png")
        assert check.console_errors == []
        for figure in check.figures:
            assert figure["complete"], (name, figure)
            # shrunk by at most 15%: 8-point legend text stays above 10 CSS pixels
            assert figure["width"] >= 0.85 * figure["natural_width"], (name, figure)
    page = (out / "depth-signal.html").read_text()
    assert "train loss</th>" not in page and "test accuracy</th>" not in page


# ------------------------------------------------------- the phase diagram
@pytest.mark.parametrize("activation, critical", [("tanh", 1.76), ("relu", 2.0), ("erf", None)])
def test_the_phase_diagram_is_readable(activation, critical, tmp_path, monkeypatch):
    from initlab.report.theory_plot import plot_phase_diagram
    from initlab.theory import phase_diagram

    drawn = []
    monkeypatch.setattr(plt, "close", drawn.append)  # keep the figure the function closes after saving
    weights = np.linspace(0.5, 4, 60)
    diagram = phase_diagram(activation, weights, np.linspace(0, 0.5, 60))
    curve = phase_diagram(activation, np.linspace(0.5, 4, 200), [0.05])
    plot_phase_diagram(diagram, tmp_path / "phase.png", sigma_b2=0.05, depth_curve=curve, critical_sigma_w2=critical)
    (figure,) = drawn
    try:
        assert figure.axes[0].texts, "the xi_c contours are labelled"
        assert problems_of(figure) == []
    finally:
        monkeypatch.undo()
        plt.close(figure)
