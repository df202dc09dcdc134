"""The audit report in the terminal: a rich table, one row per layer, verdicts coloured,
then the overall verdict, the fixes, the Jacobian and the notes.

The table fits the width it is given: every row stays on one line. When the columns do not
fit, the least telling ones (:data:`DROP_ORDER`) are left out, and a line says which; long
layer names and kinds are shortened with an ellipsis. Sentences wrap between words.
"""

from __future__ import annotations

import io
import sys
from typing import Any

from initlab.report.audit_columns import HEADERS, TEXT_COLUMNS, VERDICT_COLOURS, layer_cells

DROP_ORDER = ("sym", "pre std", "|dW|/|W|", "sat", "growth", "dead", "|dL/dout|", "kind")
"""Columns left out, in this order, until the table fits the width."""

NAME_MIN_WIDTH = 8
"""The layer and kind columns are never shortened below this many characters."""


def _table(report: Any, headers: tuple[str, ...]):
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=Text(f"initlab audit: {report.model} on a batch of shape {tuple(report.batch_shape)}"),
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    positions = [HEADERS.index(header) for header in headers]
    for position in positions:
        text = position in TEXT_COLUMNS
        table.add_column(
            HEADERS[position],
            justify="left" if text else "right",
            no_wrap=True,
            overflow="ellipsis" if text else "fold",
            min_width=NAME_MIN_WIDTH if text else None,
        )
    for layer in report.layers:
        cells = layer_cells(layer)
        row = [Text(cells[position]) for position in positions]
        row[-1].stylize(f"bold {VERDICT_COLOURS.get(layer.verdict, '')}".strip())
        table.add_row(*row)
    return table


def audit_table(report: Any, width: int | None = None):
    """The per-layer :class:`rich.table.Table` with the columns that fit ``width`` (all when
    None), and the headers left out."""
    from rich.console import Console

    headers = tuple(HEADERS)
    dropped: list[str] = []
    table = _table(report, headers)
    if width is None:
        return table, dropped
    console = Console(width=width, file=io.StringIO())
    for header in DROP_ORDER:
        if _natural_width(console, table) <= width:
            break
        headers = tuple(h for h in headers if h != header)
        dropped.append(header)
        table = _table(report, headers)
    return table, dropped


def _natural_width(console: Any, table: Any) -> int:
    """The width the table needs with no cell shortened (names counted at their full length)."""
    from rich.measure import Measurement

    return Measurement.get(console, console.options.update(width=10**6), table).maximum


def render_audit(report: Any, *, width: int | None = None, terminal: bool = False) -> str:
    """The terminal report as text: ``width`` columns (default: the terminal's, or ``COLUMNS``,
    else 80); colours when ``terminal``."""
    from rich.console import Console
    from rich.text import Text

    buffer = io.StringIO()
    console = Console(file=buffer, width=width, highlight=False, force_terminal=terminal, soft_wrap=False)
    table, dropped = audit_table(report, console.width)
    console.print(table)
    if dropped:
        console.print(Text(f"(columns left out at this width: {', '.join(dropped)}; see --html or --json)", "dim"))
    verdict = Text(f"overall: {report.verdict}", style=f"bold {VERDICT_COLOURS.get(report.verdict, '')}".strip())
    console.print(verdict)
    for fix in report.fixes:
        console.print(Text(f"- {fix}"))
    if report.jacobian is not None:
        console.print(Text(jacobian_line(report.jacobian)))
    for note in report.notes:
        console.print(Text(f"note: {note}", style="dim"))
    return buffer.getvalue()


def print_audit(report: Any, *, file: Any = None, width: int | None = None) -> None:
    """Print :func:`render_audit` to ``file`` (standard output by default)."""
    stream = file or sys.stdout
    terminal = bool(getattr(stream, "isatty", lambda: False)())
    stream.write(render_audit(report, width=width, terminal=terminal))


def jacobian_line(stats: Any) -> str:
    """The Jacobian's figures with their uncertainty, then how they were obtained."""
    error = "" if stats.exact else f" +/- {stats.mean_squared_singular_value_error:.2g}"
    variance = stats.squared_singular_value_variance
    spread = "" if variance is None else f", var sigma^2 = {variance:.3g}"
    bound = "=" if stats.exact else ">="
    return (
        f"Jacobian: mean sigma^2 = {stats.mean_squared_singular_value:.3g}{error}{spread}, "
        f"max sigma {bound} {stats.max_singular_value:.3g} ({stats.describe()})"
    )
