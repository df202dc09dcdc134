"""The HTML audit report in a real headless Chromium: it loads without console errors, every
figure has a non-zero size, injected markup stays text, and a screenshot is saved (issue 5, sec. 4)."""

from __future__ import annotations

import pytest
import torch
from models_for_audit import ConvNet, batch, mlp, normal_init
from torch import nn

from initlab.auditing import audit

pytestmark = pytest.mark.browser

HOSTILE = "<script>alert(1)</script>"


def hostile_mlp() -> nn.Module:
    model = mlp(6, 64, nn.Tanh, normal_init(0.05))
    model.add_module(HOSTILE, nn.Identity())  # registered, never called: its name must not be shown unescaped
    named = nn.Sequential()
    named.add_module(HOSTILE, model)
    return named


@pytest.mark.parametrize("name, build, make_batch", [
    ("mlp_with_markup_names", hostile_mlp, lambda: batch(32)),
    ("convnet_batchnorm", ConvNet, lambda: torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))),
])
def test_audit_html_renders_in_chromium(browser, tmp_path, name, build, make_batch):
    report = audit(build(), make_batch())
    page = tmp_path / f"{name}.html"
    report.to_html(page)
    seen = browser.check(page, screenshot_name=f"{name}.png")
    assert seen.console_errors == []
    assert seen.dialogs == []  # the <script> in module names did not run
    assert seen.title == f"initlab audit: {report.model}"
    images = [figure for figure in seen.figures if figure["tag"] == "img"]
    assert {figure["id"] for figure in images} == {"figure-depth", "figure-histograms", "figure-jacobian"}
    for figure in images:
        assert figure["complete"] and figure["natural_width"] > 0 and figure["natural_height"] > 0, figure
        assert figure["width"] > 100 and figure["height"] > 50, figure
    assert (HOSTILE in seen.text) == (name == "mlp_with_markup_names")  # shown as text
    assert seen.screenshot.stat().st_size > 10_000
    assert seen.screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_browser_check_does_see_errors_broken_figures_and_dialogs(browser, tmp_path):
    # the checks above can fail: a page with a broken image, a console error and an alert
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><head><title>broken</title></head><body>"
                    "<img id='gone' src='missing.png'><script>console.error('boom'); alert('ran')</script>"
                    "</body></html>")
    seen = browser.check(page)
    assert any("boom" in error for error in seen.console_errors)
    assert any("missing.png" in error for error in seen.console_errors)
    assert seen.dialogs == ["ran"]
    assert seen.figures[0]["natural_width"] == 0
