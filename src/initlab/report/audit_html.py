"""The audit report as one self-contained HTML page (and a fragment for notebooks).

Contents: the overall verdict and fixes, per-layer activation-std and gradient-norm curves
over depth (log scale, with the mean-field overlay for plain MLPs), stacked activation
histograms (Glorot & Bengio 2010, fig. 6), the Jacobian spectrum, and the verdict table
with every finding. Figures are inline PNGs; no script, external style or font is used;
every string that comes from the model (module and class names) is escaped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from initlab._io import write_atomically
from initlab.report import audit_figures
from initlab.report.audit_columns import HEADERS, TEXT_COLUMNS, VERDICT_COLOURS, layer_cells, short
from initlab.report.html import escape, figure_html, page_html, table_html

_CSS = (
    "".join(
        f".audit tr.v-{kind} td:last-child {{ color: {colour}; font-weight: 600; }}\n"
        for kind, colour in VERDICT_COLOURS.items()
    )
    + ".audit .verdict { font-size: 1.2em; font-weight: 700; }\n.audit li { margin: 0.3em 0; }\n"
)


BACKWARD_TEXT = {
    "loss": "gradients back-propagated from the loss",
    "random_cotangent": "gradients back-propagated from random unit-variance values at the output (no loss given)",
}
"""The backward pass's origin in plain words."""


def init_text(init: str | None) -> str:
    """Which initialisation the audited model had, in plain words."""
    if init is None:
        return "as given to initlab.audit (not recorded)"
    if init == "model's own":
        return "the model's own (no --init)"
    if init == "auto":
        return "--init auto (initlab's auto plan, from the activations the batch reached)"
    return f"--init {init} (the weights of every Linear/Conv layer; zero biases; the auto plan elsewhere)"


def _summary_html(report: Any) -> str:
    colour = VERDICT_COLOURS.get(report.verdict, "#000")
    lines = [f'<p class="verdict" style="color: {colour}">overall: {escape(report.verdict)}</p>']
    lines.append(
        f'<p class="muted">model {escape(report.model)}, batch shape {escape(tuple(report.batch_shape))}, '
        f"seed {escape(report.seed)}; initialisation: {escape(init_text(report.init))}; "
        f"{escape(BACKWARD_TEXT.get(report.backward, report.backward))}</p>"
    )
    if report.fixes:
        lines.append("<ul>" + "".join(f"<li>{escape(fix)}</li>" for fix in report.fixes) + "</ul>")
    return "".join(lines)


_FINDING_HEADERS = ["#", "layer", "verdict", "direction", "rule", "fix"]


def _finding_rows(findings: list) -> list[list]:
    return [[f.layer, f.layer_name, f.kind, f.direction, f.rule, f.fix] for f in findings]


def _findings_html(report: Any) -> str:
    """The definite findings, then the borderline ones (warnings), or a line saying there are none."""
    if not report.findings and not report.borderline:
        return "<p>No finding: every layer is healthy.</p>"
    parts = []
    if report.findings:
        parts.append(
            table_html(
                _FINDING_HEADERS, _finding_rows(report.findings), text_columns=(1, 2, 3, 4, 5), element_id="findings"
            )
        )
    else:
        parts.append("<p>No definite finding.</p>")
    if report.borderline:
        parts.append(
            "<h3>Borderline (warnings, not verdicts)</h3>"
            '<p class="muted">These figures lie within the borderline band of their thresholds: '
            "the audit does not call them unhealthy, and a gate passes.</p>"
            + table_html(
                _FINDING_HEADERS,
                _finding_rows(report.borderline),
                text_columns=(1, 2, 3, 4, 5),
                element_id="borderline",
            )
        )
    return "".join(parts)


def _jacobian_html(report: Any) -> str:
    stats = report.jacobian
    if stats is None:
        return ""
    figure = ""
    if any(stats.singular_values):
        figure = figure_html(
            audit_figures.jacobian_histogram(report),
            alt="Jacobian singular values",
            caption="Singular values (sigma) of the input-output Jacobian; dynamical isometry puts them near 1.",
            element_id="figure-jacobian",
        )
    variance = stats.squared_singular_value_variance
    facts = (
        f"<p>mean sigma^2 = {escape(short(stats.mean_squared_singular_value))}"
        f"{'' if stats.exact else ' ± ' + escape(short(stats.mean_squared_singular_value_error))}, "
        f"var sigma^2 = {escape(short(variance))}, "
        f"max sigma {'=' if stats.exact else '≥'} {escape(short(stats.max_singular_value))}"
        f"{', min sigma = ' + escape(short(stats.min_singular_value)) if stats.exact else ''}</p>"
        f'<p class="muted">How: {escape(stats.describe().replace("+/-", "±"))}.</p>'
    )
    return "<h2>Jacobian spectrum</h2>" + facts + figure


def audit_html_fragment(report: Any) -> str:
    """The report's body (no ``<html>`` shell), wrapped in ``<div class="audit">`` with its own style."""
    curves = figure_html(
        audit_figures.depth_curves(report),
        alt="std and gradient norms per layer",
        caption="Activation std and gradient norms per layer (log scale)",
        element_id="figure-depth",
    )
    histograms = figure_html(
        audit_figures.stacked_histograms(report),
        alt="activation histograms per layer",
        caption="Activation histograms, one per layer, stacked from the first (top) to the last",
        element_id="figure-histograms",
    )
    table = table_html(
        HEADERS,
        [layer_cells(layer) for layer in report.layers],
        text_columns=TEXT_COLUMNS,
        row_classes=[f"v-{layer.verdict}" for layer in report.layers],
        element_id="layers",
    )
    notes = "".join(f'<p class="muted">note: {escape(note)}</p>' for note in report.notes)
    return (
        f'<div class="audit"><style>{_CSS}</style>'
        f"<h1>initlab audit: {escape(report.model)}</h1>{_summary_html(report)}"
        f"<h2>Signal and gradients over depth</h2>{curves}{histograms}{_jacobian_html(report)}"
        f"<h2>Layers</h2>{table}<h2>Findings</h2>{_findings_html(report)}{notes}</div>"
    )


def audit_html(report: Any) -> str:
    """A complete, self-contained HTML page of the report."""
    return page_html(f"initlab audit: {report.model}", audit_html_fragment(report))


def write_audit_html(report: Any, path: str | Path | None = None) -> str:
    """:func:`audit_html`, also written to ``path`` (UTF-8) when given."""
    text = audit_html(report)
    if path is not None:
        write_atomically(path, text, "audit report", "path")
    return text
