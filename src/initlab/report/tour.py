"""The tour's outputs, rendered from the result store: the claim table (terminal, HTML, Markdown),
one HTML page per study, ``index.html`` and ``summary.md``; and the tour's progress bar.

:func:`render_studies` never trains: it reads each study's runs from the store, computes
the claim with the study's check and writes the pages, so ``initlab report`` and a
second ``initlab tour`` only re-render.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TextIO

from initlab._io import make_folder, write_atomically
from initlab.lab.config import StudyConfig
from initlab.report import study_text
from initlab.report.html import escape, page_html, table_html
from initlab.report.markdown import tour_markdown
from initlab.report.study_html import CSS, StudyPage, study_page, write_study_html

INDEX_CSS = (
    CSS
    + """
table#claims td { vertical-align: top; } td.verdict-holds { color: #1b6b2a; font-weight: 700; }
td.verdict-fails { color: #9b1c1c; font-weight: 700; }
"""
)


def load_pages(studies: Sequence[StudyConfig], store) -> list[StudyPage]:
    """Each study's stored rows (with histories) and its claim computed from them."""
    from initlab.lab.tour import claim_from_store, with_histories

    pages = []
    for study in studies:
        rows = with_histories(store.study_runs(study), store)
        pages.append(study_page(study, rows, claim_from_store(study, store)))
    return pages


def claim_table(pages: Sequence[StudyPage]) -> list[dict[str, Any]]:
    """One row per study (number, study, claim, evidence, verdict, link), from stored results."""
    from initlab.lab.tour import BUILTIN_STUDIES

    return [
        {
            "number": BUILTIN_STUDIES.index(page.name) + 1,
            "study": page.name,
            "stored_as": page.stored_as,
            "claim": study_text.short_claim(page.name),
            "evidence": study_text.evidence(page.name, page.claim),
            "verdict": "holds" if page.claim.holds else "does not hold",
            "link": f"{page.name}.html",
            "runs": len(page.rows),
        }
        for page in pages
    ]


SMOKE_TEST_WARNING = (
    "tiny size: a smoke test of the machinery, far too small to show the claims; "
    "its verdicts are not evidence (run `initlab tour` for the tour size)."
)
"""Shown on the terminal and in the reports of a ``--size tiny`` tour."""


def index_html(
    table: Sequence[Mapping[str, Any]],
    heading: str,
    note: str = "",
    warning: str = "",
    recipes: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The tour index page: the claim table with a link to each study's page (``warning`` above it)."""
    cells = []
    for row in table:
        kind = "holds" if row["verdict"] == "holds" else "fails"
        cells.append(
            f'<tr><td>{row["number"]}</td><td class="text"><a href="{escape(row["link"])}">'
            f'{escape(row["study"])}</a></td><td class="text">{escape(row["claim"])}</td>'
            f'<td class="text">{escape(row["evidence"])}</td><td class="text verdict-{kind}">'
            f"{escape(row['verdict'])}</td><td>{row['runs']}</td></tr>"
        )
    table_text = (
        '<table id="claims"><thead><tr><th>#</th><th class="text">study</th>'
        '<th class="text">claim</th><th class="text">measured evidence</th>'
        '<th class="text">verdict</th><th>runs</th></tr></thead><tbody>' + "".join(cells) + "</tbody></table>"
    )
    intro = (
        "<p>Each row is a classic claim about initialization, tested on real data by training "
        "real networks. The verdict is computed from the stored runs by the study's check; "
        "follow a link for the figures, the numbers and an explanation.</p>"
    )
    extra = f'<p class="muted">{escape(note)}</p>' if note else ""
    alert = f'<p class="warning" id="size-warning"><strong>{escape(warning)}</strong></p>' if warning else ""
    body = f"<h1>{escape(heading)}</h1>{alert}{intro}{table_text}{extra}{recipes_html(recipes)}"
    return page_html(heading, body, css=INDEX_CSS)


RECIPES_HEADING = "The seed-level claims in numpy, initlab, torch and Keras"

RECIPES_INTRO = (
    "Xavier/Glorot: Var(W) = 2 / (fan_in + fan_out); He/Kaiming: Var(W) = 2 / fan_in (numpy: "
    "rng.standard_normal(n) * sqrt(2/n)). Each form below samples the same (256, 512) weight "
    "(torch's Linear(512, 256); Keras's kernel is its transpose) and is measured against the "
    "formula's N(0, target std^2): the sample std, the largest |w| / target std and the "
    "Kolmogorov-Smirnov statistic (a sample of the formula's normal exceeds the KS bound with "
    "probability about 0.001). 'expected' is what initlab.compare_conventions says the form samples."
)

RECIPE_COLUMNS = (
    "scheme",
    "form",
    "call",
    "expected (compare_conventions)",
    "target std",
    "std",
    "max|w|/sigma",
    "KS",
    "KS bound",
)


def recipe_cells(row: Mapping[str, Any]) -> list[str]:
    """One measured form as table cells."""
    return [
        row["scheme"],
        row["form"],
        row["call"],
        row["expected"],
        f"{row['target_std']:.4g}",
        f"{row['std']:.4g}",
        f"{row['max_over_sigma']:.3g}",
        f"{row['ks']:.3g}",
        f"{row['ks_bound']:.2g}",
    ]


def recipes_html(rows: Sequence[Mapping[str, Any]]) -> str:
    """The side-by-side section of the tour's index page."""
    if not rows:
        return ""
    return f"<h2>{escape(RECIPES_HEADING)}</h2><p>{escape(RECIPES_INTRO)}</p>" + table_html(
        list(RECIPE_COLUMNS), [recipe_cells(row) for row in rows], text_columns=(0, 1, 2, 3), element_id="recipes"
    )


def recipes_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The side-by-side section of ``summary.md``."""
    if not rows:
        return ""
    from initlab.report.markdown import markdown_table

    return (
        f"## {RECIPES_HEADING}\n\n{RECIPES_INTRO}\n\n"
        + markdown_table(RECIPE_COLUMNS, [recipe_cells(r) for r in rows])
        + "\n"
    )


def print_recipes(rows: Sequence[Mapping[str, Any]], stream: TextIO | None = None, *, width: int = 140) -> None:
    """The side-by-side table in the terminal (rich)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=stream or sys.stdout, width=width)
    rich_table = Table(title=RECIPES_HEADING)
    for column in RECIPE_COLUMNS:
        rich_table.add_column(column, overflow="fold")
    for row in rows:
        rich_table.add_row(*recipe_cells(row))
    console.print(rich_table)


def render_studies(
    studies: Sequence[StudyConfig],
    store,
    out_dir: str | Path,
    *,
    heading: str,
    note: str = "",
    force: bool = True,
    warning: str = "",
    recipes: Sequence[Mapping[str, Any]] = (),
) -> list[dict[str, Any]]:
    """Write every study's page, ``index.html`` and ``summary.md`` into ``out_dir``; the claim table.

    ``warning`` (e.g. :data:`SMOKE_TEST_WARNING`) is shown above the claim table of both;
    ``recipes`` (:func:`initlab.lab.recipes.seed_level_rows` as dicts) below it.

    ``force=False`` keeps study pages whose stored runs and claim have not changed
    (see :func:`initlab.report.study_html.write_study_html`).
    """
    directory = Path(out_dir)
    make_folder(directory, "tour report", "--out")
    pages = load_pages(studies, store)
    for page in pages:
        write_study_html(page, directory, force=force)
    table = claim_table(pages)
    write_atomically(
        directory / "index.html", index_html(table, heading, note, warning, recipes), "tour report", "--out"
    )
    markdown = tour_markdown(pages, table, heading, warning, recipes_markdown(recipes))
    write_atomically(directory / "summary.md", markdown, "tour report", "--out")
    return table


def print_claim_table(table: Sequence[Mapping[str, Any]], stream: TextIO | None = None, *, width: int = 140) -> None:
    """The claim table in the terminal (rich)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=stream or sys.stdout, width=width)
    rich_table = Table(title="initlab tour: the claims, measured", show_lines=True)
    columns: tuple[tuple[str, Literal["left", "right"]], ...] = (
        ("#", "right"),
        ("study", "left"),
        ("claim", "left"),
        ("measured evidence", "left"),
        ("verdict", "left"),
    )
    for column, style in columns:
        rich_table.add_column(column, justify=style, overflow="fold")
    for row in table:
        colour = "green" if row["verdict"] == "holds" else "red"
        rich_table.add_row(
            str(row["number"]), row["study"], row["claim"], row["evidence"], f"[{colour}]{row['verdict']}[/{colour}]"
        )
    console.print(rich_table)


class TourProgress:
    """One progress display over all the tour's runs (a rich bar on a TTY, lines otherwise).

    Implements the runner's progress protocol (``start``/``advance``/``note``/``finish``
    per study); the bar's total is the number of runs of every study together.
    """

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.total, self.done, self.study = total, 0, ""
        self.started = time.monotonic()
        self.bar = None
        if self.stream.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("[bold]tour"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                TextColumn("{task.description}"),
                console=Console(file=self.stream),
            )
            self.task = self.bar.add_task("", total=total)
            self.bar.start()

    def start(self, study: str, total: int, done: int) -> None:
        self.study = study
        self._move(done, f"{study}: {total - done} run(s) to train, {done} stored")

    def advance(self, result: dict[str, Any], description: str) -> None:
        self._move(1, f"{self.study}: {result.get('status', '?')} {description}", line=False)

    def _move(self, count: int, text: str, line: bool = True) -> None:
        self.done += count
        if self.bar is not None:
            self.bar.update(self.task, advance=count, description=text)
        elif line:
            elapsed = time.monotonic() - self.started
            print(f"[tour {self.done}/{self.total} runs, {elapsed:.0f} s] {text}", file=self.stream, flush=True)

    def note(self, message: str) -> None:
        print(f"[{self.study}] {message}", file=self.stream, flush=True)

    def finish(self) -> None:
        """Per study: nothing (the bar runs across studies; see :meth:`close`)."""
        if self.bar is None:
            elapsed = time.monotonic() - self.started
            print(
                f"[tour {self.done}/{self.total} runs, {elapsed:.0f} s] {self.study} done", file=self.stream, flush=True
            )

    def close(self) -> None:
        """Stop the bar."""
        if self.bar is not None:
            self.bar.stop()
