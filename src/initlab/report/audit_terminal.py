"""The audit report in the terminal: a rich table, one row per layer, verdicts coloured,
then the overall verdict, the fixes and the notes."""

from __future__ import annotations

import sys
from typing import Any

from initlab.report.audit_columns import HEADERS, TEXT_COLUMNS, VERDICT_COLOURS, layer_cells


def audit_table(report: Any):
    """The per-layer :class:`rich.table.Table`."""
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=Text(f"initlab audit: {report.model} on a batch of shape {tuple(report.batch_shape)}"),
        title_justify="left",
    )
    for position, header in enumerate(HEADERS):
        table.add_column(
            header,
            justify="left" if position in TEXT_COLUMNS else "right",
            overflow="fold",
            no_wrap=position not in TEXT_COLUMNS,
        )
    for layer in report.layers:
        cells = [Text(cell) for cell in layer_cells(layer)]
        cells[-1].stylize(f"bold {VERDICT_COLOURS.get(layer.verdict, '')}".strip())
        table.add_row(*cells)
    return table


def print_audit(report: Any, *, file: Any = None, width: int | None = None) -> None:
    """Print the table, the overall verdict, one fix per kind found, and the notes."""
    from rich.console import Console
    from rich.text import Text

    console = Console(file=file or sys.stdout, width=width or 160, highlight=False)
    console.print(audit_table(report))
    verdict = Text(f"overall: {report.verdict}", style=f"bold {VERDICT_COLOURS.get(report.verdict, '')}".strip())
    console.print(verdict)
    for fix in report.fixes:
        console.print(Text(f"- {fix}"))
    if report.jacobian is not None:
        console.print(Text(jacobian_line(report.jacobian)))
    for note in report.notes:
        console.print(Text(f"note: {note}", style="dim"))


def jacobian_line(stats: Any) -> str:
    """The Jacobian's figures with their uncertainty, then how they were obtained."""
    error = "" if stats.exact else f" ± {stats.mean_squared_singular_value_error:.2g}"
    variance = stats.squared_singular_value_variance
    spread = "" if variance is None else f", var sigma^2 = {variance:.3g}"
    bound = "=" if stats.exact else ">="
    return (
        f"Jacobian: mean sigma^2 = {stats.mean_squared_singular_value:.3g}{error}{spread}, "
        f"max sigma {bound} {stats.max_singular_value:.3g} ({stats.describe()})"
    )
