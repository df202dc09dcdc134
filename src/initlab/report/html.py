"""Small helpers for self-contained HTML pages: escaping, inline figures, tables, the page shell.

A page built here loads nothing: no external scripts, styles, fonts or images. Figures
are PNGs inlined as ``data:`` URIs. Every user-provided string goes through
:func:`escape` (``<script>`` in a module name is shown as text, never run).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Sequence
from typing import Any

BASE_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em auto; max-width: 1200px;
       color: #1d1d1f; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { font-size: 1.25em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.6em 0; }
th, td { border: 1px solid #d0d0d5; padding: 0.25em 0.5em; text-align: right; }
th { background: #f2f2f5; } td.text, th.text { text-align: left; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; }
.muted { color: #666; font-size: 0.9em; }
"""


def escape(value: Any) -> str:
    """HTML-escape ``str(value)``, quotes included (safe in text and in attribute values)."""
    return html.escape(str(value), quote=True)


def figure_data_uri(figure: Any, *, dpi: int = 110) -> str:
    """A matplotlib figure as a ``data:image/png;base64,...`` URI; the figure is closed."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def figure_html(figure: Any, *, alt: str, caption: str, element_id: str) -> str:
    """``<figure>`` with the inlined PNG of a matplotlib figure and an escaped caption."""
    uri = figure_data_uri(figure)
    return (
        f'<figure id="{escape(element_id)}"><img src="{uri}" alt="{escape(alt)}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def table_html(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    text_columns: Sequence[int] = (),
    row_classes: Sequence[str] | None = None,
    element_id: str = "",
) -> str:
    """A ``<table>``; every header and cell is escaped; ``text_columns`` are left-aligned."""
    text = set(text_columns)

    def cell(tag: str, position: int, value: Any) -> str:
        klass = ' class="text"' if position in text else ""
        return f"<{tag}{klass}>{escape(value)}</{tag}>"

    head = "".join(cell("th", i, header) for i, header in enumerate(headers))
    body = []
    for number, row in enumerate(rows):
        klass = f' class="{escape(row_classes[number])}"' if row_classes else ""
        body.append(f"<tr{klass}>" + "".join(cell("td", i, value) for i, value in enumerate(row)) + "</tr>")
    identifier = f' id="{escape(element_id)}"' if element_id else ""
    return f"<table{identifier}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def page_html(title: str, body: str, *, css: str = "") -> str:
    """A complete HTML document with inline CSS only; ``title`` is escaped, ``body`` is trusted HTML."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{BASE_CSS}{css}</style></head>"
        f"<body>{body}</body></html>\n"
    )
