"""The seed-level side-by-side section of the tour report: HTML, Markdown and terminal."""

from __future__ import annotations

import io

from initlab.report.markdown import tour_markdown
from initlab.report.tour import RECIPES_HEADING, index_html, print_recipes, recipes_markdown

ROWS = [
    {"scheme": "he_normal", "form": "numpy recipe", "call": "rng.standard_normal((256, 512)) * sqrt(2/512)",
     "expected": "normal, std 0.0625", "target_std": 0.0625, "std": 0.06258, "max_over_sigma": 4.732,
     "ks": 0.00194, "ks_bound": 0.0054},
    {"scheme": "he_normal", "form": "keras", "call": "keras.initializers.HeNormal(seed=0)((fan_in, fan_out))",
     "expected": "truncated normal, std 0.0625, cut at +-2 sigma (sigma 0.07105)", "target_std": 0.0625,
     "std": 0.06252, "max_over_sigma": 3.043, "ks": 0.0184, "ks_bound": 0.0054},
]


def test_index_page_carries_the_side_by_side_table_below_the_claims():
    page = index_html([], "initlab tour", recipes=ROWS)
    assert page.index('id="claims"') < page.index('id="recipes"')
    assert "keras.initializers.HeNormal(seed=0)" in page and "0.0184" in page and "cut at +-2 sigma" in page
    assert 'id="recipes"' not in index_html([], "initlab tour")


def test_summary_markdown_carries_the_section_and_terminal_prints_it():
    section = recipes_markdown(ROWS)
    assert section.startswith(f"## {RECIPES_HEADING}")
    assert "| he_normal | numpy recipe | rng.standard_normal((256, 512)) * sqrt(2/512) |" in section
    summary = tour_markdown([], [], "initlab tour", extra=section)
    assert RECIPES_HEADING in summary and recipes_markdown([]) == ""
    stream = io.StringIO()
    print_recipes(ROWS, stream, width=300)
    assert "HeNormal" in stream.getvalue() and "0.0184" in stream.getvalue()
