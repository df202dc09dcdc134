"""One built-in study as a self-contained HTML page, rendered from the result store.

The page states the claim, the verdict (computed by the study's claim check from the
stored runs), each condition with its measured numbers, the figures (inline PNGs with
titles, labelled axes and legends), a table of every run's final numbers, a short
explanation for a learner and the set-up. Nothing is trained here: ``initlab report``
re-renders from the store.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from initlab._io import make_folder, write_atomically
from initlab.lab.claims import ClaimResult
from initlab.lab.config import StudyConfig
from initlab.lab.study_claims import GLOROT_BENGIO_TABLE1, GLOROT_SETTING_DIFFERENCES, fmt
from initlab.report import study_figures, study_text
from initlab.report.html import escape, figure_html, page_html, table_html

CSS = """
.verdict { font-size: 1.15em; font-weight: 700; padding: 0.4em 0.7em; display: inline-block; border-radius: 4px; }
.verdict.holds { background: #e3f4e5; color: #1b6b2a; } .verdict.fails { background: #fbe4e4; color: #9b1c1c; }
.claim { font-size: 1.05em; border-left: 4px solid #4c72b0; padding-left: 0.8em; }
tr.fails td { color: #9b1c1c; } tr.holds td:last-child { color: #1b6b2a; }
nav a { margin-right: 1em; }
"""

SUMMARY_COLUMNS = (
    "test_accuracy",
    "train_accuracy",
    "train_loss",
    "train_test_gap",
    "weight_norm",
    "steps_to_target_accuracy",
    "steps_to_target_loss",
)


@dataclass
class StudyPage:
    """What a study page shows (plain data; built by :func:`study_page`)."""

    name: str
    stored_as: str
    study: StudyConfig
    rows: list[dict[str, Any]]
    claim: ClaimResult

    @property
    def title(self) -> str:
        return study_text.title(self.name)


def study_page(study: StudyConfig, rows: Sequence[Mapping[str, Any]], claim: ClaimResult) -> StudyPage:
    """Bundle a study, its stored rows (with histories) and its claim result."""
    from initlab.lab.tour import base_name

    return StudyPage(base_name(study.name), study.name, study, [dict(row) for row in rows], claim)


def verdict_html(claim: ClaimResult) -> str:
    """The verdict badge."""
    kind, text = ("holds", "HOLDS") if claim.holds else ("fails", "DOES NOT HOLD")
    return f'<p><span class="verdict {kind}">Verdict: the claim {text}</span></p>'


def conditions_html(claim: ClaimResult) -> str:
    """Every condition of the check, whether it holds, as a table."""
    items = claim.values.get("conditions", [])
    rows = [[item["condition"], "yes" if item["holds"] else "NO"] for item in items]
    return table_html(
        ["condition (measured numbers)", "holds"],
        rows,
        text_columns=(0,),
        row_classes=["holds" if item["holds"] else "fails" for item in items],
        element_id="conditions",
    ) + observations_html(claim)


def observations_html(claim: ClaimResult) -> str:
    """The check's observations (reported beside the verdict, not part of it), as a list."""
    items = claim.values.get("observations", [])
    if not items:
        return ""
    listed = "".join(f"<li>{escape(item['observation'])}</li>" for item in items)
    return f'<p>Observations (not part of the verdict):</p><ul id="observations">{listed}</ul>'


def value_text(value: Any) -> str:
    """A grid value in a few characters: a scheme table as ``name(arg=value)``."""
    if isinstance(value, Mapping):
        arguments = ",".join(f"{k}={fmt(v)}" for k, v in value.items() if k not in ("scheme", "mode", "distribution"))
        return f"{value.get('scheme', '?')}({arguments})" if arguments else str(value.get("scheme", "?"))
    return fmt(value)


def point_text(point: Mapping[str, Any]) -> str:
    """A run's grid values, e.g. ``activation=tanh, weight_init=glorot_normal, seed=0``."""
    return ", ".join(f"{key.split('.')[-1]}={value_text(value)}" for key, value in point.items())


INIT_COLUMNS = (
    ("act_std", "activation std, last hidden layer", lambda values: values[-1]),
    ("backprop_norm", "||dL/dz||, first hidden layer", lambda values: values[0]),
    ("saturated_fraction", "saturated fraction, mean over layers", lambda values: sum(values) / len(values)),
)
"""Per-layer measurements at initialisation shown for runs with zero training steps:
(summary key, column header, the number taken from the per-layer list)."""


def trained(row: Mapping[str, Any]) -> bool:
    """Whether a run was configured to take at least one training step."""
    return row["config"]["training"]["steps"] > 0


def _init_value(row: Mapping[str, Any], key: str, pick) -> Any:
    values = row["summary"].get(key)
    if trained(row) or not values or any(v is None for v in values):
        return None
    return pick(values)


def runs_table_html(rows: Sequence[Mapping[str, Any]]) -> str:
    """One row per run: its grid values, status, training steps and final numbers.

    A run with zero training steps measured the network at initialisation: its training
    metrics (loss, accuracies, steps to a target) are not shown, and a column that no
    trained run fills is left out; such runs show their per-layer measurements instead
    (:data:`INIT_COLUMNS`).
    """
    columns = [c for c in SUMMARY_COLUMNS if any(trained(row) and row["summary"].get(c) is not None for row in rows)]
    init_columns = [
        column for column in INIT_COLUMNS if any(_init_value(row, column[0], column[2]) is not None for row in rows)
    ]
    ordered = sorted(rows, key=lambda row: point_text(row["point"]))

    def cell(value: Any) -> str:
        return "-" if value is None else fmt(value)

    body = [
        [
            point_text(row["point"]),
            row["status"],
            row["config"]["training"]["steps"],
            *(cell(row["summary"].get(c) if trained(row) else None) for c in columns),
            *(cell(_init_value(row, key, pick)) for key, _, pick in init_columns),
            row["key"][:10],
        ]
        for row in ordered
    ]
    headers = [
        "run (grid values)",
        "status",
        "training steps",
        *[c.replace("_", " ") for c in columns],
        *[f"at init: {header}" for _, header, _ in init_columns],
        "key",
    ]
    return table_html(headers, body, text_columns=(0, 1, len(headers) - 1), element_id="runs")


def paper_table_html(claim: ClaimResult) -> str:
    """Glorot & Bengio (2010) Table 1 beside our test errors (glorot-table only)."""
    ours = claim.values.get("test_error", {})
    columns = cast("Sequence[str]", GLOROT_BENGIO_TABLE1["columns"])
    paper_rows = cast("Mapping[tuple[str, str], Sequence[float]]", GLOROT_BENGIO_TABLE1["rows"])
    rows = []
    for activation in ("softsign", "tanh", "sigmoid"):
        for kind in ("standard", "normalized"):
            paper = paper_rows.get((activation, kind))
            label = activation.capitalize() + (" N" if kind == "normalized" else "")
            paper_cells = [f"{v:g}" for v in paper] if paper else ["-"] * len(columns)
            rows.append([label, *paper_cells, fmt(ours.get(f"{activation}/{kind}", math.nan))])
    table = table_html(
        ["type", *(f"paper: {c}" for c in columns), "ours: MNIST-1D"], rows, text_columns=(0,), element_id="paper-table"
    )
    return (
        "<h2>Glorot &amp; Bengio (2010), Table 1, beside our numbers</h2>"
        '<p>Test error (%) of networks with 5 hidden layers; "N" marks the normalized '
        "initialization. The paper has no Sigmoid N row.</p>"
        + table
        + f'<p class="muted">Setting: {escape(GLOROT_SETTING_DIFFERENCES)}.</p>'
    )


def setup_html(study: StudyConfig, rows: Sequence[Mapping[str, Any]]) -> str:
    """Dataset, model, training and grid of the study, and how to re-render it."""
    model, training = study.model, study.training
    dataset: Any = study.dataset  # one of the dataset configs, each with its ``name``
    grid = "; ".join(f"{key} in {len(values)} value(s)" for key, values in study.grid.items()) or "none"
    statuses = {status: sum(row["status"] == status for row in rows) for status in ("done", "diverged", "failed")}
    items = [
        f"dataset: {dataset.name}",
        f"model: {model.kind}, depth {model.depth}, width {model.width}, activation {model.activation} "
        f"(grid values override these)",
        f"training: {training.optimizer}, lr {training.lr:g}, batch {training.batch_size}, "
        f"{training.steps} steps, {training.dtype}",
        f"grid: {grid}; cases: {len(study.cases) or 'none'}",
        f"runs in the store: {len(rows)} ({', '.join(f'{v} {k}' for k, v in statuses.items() if v)})",
        f"stored as study '{study.name}'; re-render with: initlab report {study.name.split('.')[0]} "
        f"--size {study.name.split('.')[1] if '.' in study.name else 'full'}",
    ]
    return "<ul>" + "".join(f"<li>{escape(item)}</li>" for item in items) + "</ul>"


def study_html(page: StudyPage, *, index_link: str | None = "index.html") -> str:
    """The complete self-contained HTML page of one study."""
    parts = []
    if index_link:
        parts.append(f'<nav><a href="{escape(index_link)}">&larr; tour index</a></nav>')
    parts.append(f"<h1>{escape(page.title)}</h1>")
    parts.append(f'<p class="claim"><b>Claim.</b> {escape(page.study.description)}</p>')
    parts.append(verdict_html(page.claim))
    parts.append(f"<p>{escape(study_text.verdict_sentence(page.name, page.claim))}</p>")
    parts.append("<h2>The check, computed from the stored runs</h2>" + conditions_html(page.claim))
    parts.append("<h2>What we measured</h2>")
    for number, item in enumerate(study_figures.figures(page.name, page.rows, page.claim), start=1):
        parts.append(
            figure_html(
                item.figure, alt=item.alt, caption=f"Figure {number}. {item.caption}", element_id=f"figure-{number}"
            )
        )
    if page.name == "glorot-table":
        parts.append(paper_table_html(page.claim))
    parts.append(f"<h2>Why</h2><p>{escape(study_text.explanation(page.name))}</p>")
    parts.append("<h2>Every run</h2>" + runs_table_html(page.rows))
    parts.append("<h2>Set-up</h2>" + setup_html(page.study, page.rows))
    return page_html(f"initlab study: {page.title}", "".join(parts), css=CSS)


RENDERER_VERSION = "2"
"""Bumped when a page's content changes for the same stored runs (invalidates :func:`fingerprint`)."""


def fingerprint(page: StudyPage) -> str:
    """SHA-256 (16 hex digits) of what a page shows: its runs (key, status, finish time), the claim
    result, the study config and :data:`RENDERER_VERSION`."""
    payload = json.dumps(
        {
            "runs": sorted((row["key"], row["status"], row["finished_at"]) for row in page.rows),
            "claim": page.claim.to_dict(),
            "study": page.study.model_dump(mode="json"),
            "renderer": RENDERER_VERSION,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def write_study_html(page: StudyPage, directory: str | Path, *, force: bool = True) -> Path:
    """Write ``<directory>/<study>.html``; the path written.

    With ``force=False`` a page whose file already carries this page's
    :func:`fingerprint` is left as it is (nothing it shows has changed), so a
    second tour does not redraw its figures.
    """
    target = Path(directory) / f"{page.name}.html"
    mark = f"<!-- initlab-fingerprint: {fingerprint(page)} -->"
    if not force and target.is_file() and mark in target.read_text(encoding="utf-8"):
        return target
    make_folder(target.parent, "study report", "--out")
    write_atomically(target, study_html(page).replace("<body>", f"<body>{mark}", 1), "study report", "--out")
    return target
