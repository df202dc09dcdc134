"""Rendering of stored runs: the ``initlab runs`` table, one run in detail, CSV/Parquet export.

Export flattens one run per row: ``key, study, status, ...``, then the
resolved config as dotted columns (``config.model.width``), the grid values
(``point.training.seed``), and the final metrics (``summary.test_accuracy``;
a per-layer metric becomes ``summary.act_std[0]``, ``summary.act_std[1]``...).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from initlab._io import write_atomically
from initlab._json import dumps
from initlab.errors import InitlabError

_HEADLINE = ("test_accuracy", "test_mse", "train_loss", "weight_norm")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _value_text(value: Any) -> str:
    """A grid value as shown in a table: a scheme dict as ``name(key=value, ...)``."""
    if isinstance(value, dict):
        name = value.get("label") or value.get("scheme") or ""
        params = ", ".join(f"{key}={_fmt(item)}" for key, item in value.items() if key not in ("label", "scheme"))
        return f"{name}({params})" if params else str(name)
    return _fmt(value)


def differing_keys(rows: Sequence[dict[str, Any]]) -> dict[str, list[str]]:
    """Per study, the grid keys whose value differs between its runs (in grid order)."""
    seen: dict[str, dict[str, set[str]]] = {}
    for row in rows:
        study = seen.setdefault(row["study"], {})
        for key, value in row["point"].items():
            study.setdefault(key, set()).add(json.dumps(value, sort_keys=True))
    return {study: [key for key, values in keys.items() if len(values) > 1] for study, keys in seen.items()}


def _point(point: dict[str, Any], keys: Sequence[str]) -> str:
    """The grid values named by ``keys`` (all of the point's when none differ)."""
    shown = [key for key in keys if key in point] or list(point)
    return ", ".join(f"{key.split('.')[-1]}={_value_text(point[key])}" for key in shown)


def print_runs(rows: Sequence[dict[str, Any]], stream: TextIO) -> None:
    """The ``initlab runs list`` table: every grid value that differs between runs of a study is shown."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    keys = differing_keys(rows)
    table = Table(title=f"{len(rows)} run(s)")
    for column in ("key", "study", "status", "grid values", "steps", *_HEADLINE, "seconds"):
        table.add_column(column)
    for row in rows:
        summary = row["summary"]
        table.add_row(
            row["key"][:12],
            Text(row["study"]),
            row["status"],
            Text(_point(row["point"], keys.get(row["study"], []))),
            _fmt(summary.get("steps_done")),
            *(_fmt(summary.get(name)) for name in _HEADLINE),
            f"{row['duration']:.2f}",
        )
    Console(file=stream, width=200).print(table)


def print_run(row: dict[str, Any], stream: TextIO) -> None:
    """One run in detail: status, config, final metrics, and the history of scalar metrics."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=stream, width=160)
    console.print(
        f"run {row['key']}  status={row['status']}  study={row['study']}  "
        f"code={row['code_version']}  trained_by={row['trained_by']}  {row['duration']:.2f}s"
    )
    if row["error"]:
        console.print(f"error: {row['error']}")
    console.print("config:", dumps(row["config"], indent=2, sort_keys=True), markup=False)
    console.print("summary:", dumps(row["summary"], indent=2), markup=False)
    history = row.get("history") or {}
    scalars = [
        name for name, values in history.items() if name != "step" and values and not isinstance(values[0], list)
    ]
    if history.get("step"):
        table = Table(title="history")
        for column in ("step", *scalars):
            table.add_column(column)
        for index, step in enumerate(history["step"]):
            table.add_row(str(step), *(_fmt(history[name][index]) for name in scalars))
        console.print(table)


def flatten(row: dict[str, Any]) -> dict[str, Any]:
    """One export row: identity columns, ``config.*``, ``point.*``, ``summary.*``."""
    flat: dict[str, Any] = {
        name: row[name] for name in ("key", "study", "status", "code_version", "duration", "finished_at", "error")
    }
    _walk("config", row["config"], flat)
    for key, value in row["point"].items():
        flat[f"point.{key}"] = json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value
    for name, value in row["summary"].items():
        if isinstance(value, list):
            for index, item in enumerate(value):
                flat[f"summary.{name}[{index}]"] = item
        else:
            flat[f"summary.{name}"] = value
    return flat


def _walk(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _walk(f"{prefix}.{key}", item, out)
    elif isinstance(value, list):
        out[prefix] = json.dumps(value)
    else:
        out[prefix] = value


def _columns(rows: Iterable[dict[str, Any]]) -> list[str]:
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    return list(columns)


def export_csv(rows: Sequence[dict[str, Any]], path: str | Path) -> int:
    """Write one CSV row per run; the number of rows written."""
    flat = [flatten(row) for row in rows]
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=_columns(flat), restval="")
    writer.writeheader()
    writer.writerows(flat)
    write_atomically(path, text.getvalue(), "runs export", "--csv")
    return len(flat)


def export_parquet(rows: Sequence[dict[str, Any]], path: str | Path) -> int:
    """Write one Parquet row per run (needs the optional dependency ``pyarrow``)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise InitlabError(
            "runs export: --parquet needs the optional dependency pyarrow, which is not installed; "
            "install it (pip install 'initlab[parquet]') or use --csv."
        ) from None
    flat = [flatten(row) for row in rows]
    columns = _columns(flat)
    table = pa.table({name: [_parquet_cell(row.get(name)) for row in flat] for name in columns})
    pq.write_table(table, path)
    return len(flat)


def _parquet_cell(value: Any) -> Any:
    return value if value is None or isinstance(value, (int, float, str, bool)) else json.dumps(value)


def print_plan(plan: dict[str, Any], stream: TextIO) -> None:
    """The ``initlab run --dry-run`` output: every run's grid values and the work estimate."""
    runs = plan["runs"]
    print(
        f"study {plan['study']}: {len(runs)} run(s) in {plan['groups']} batched group(s), "
        f"about {plan['gflop']:.3g} GFLOP of training and evaluation",
        file=stream,
    )
    for run in runs:
        print(f"  {run['key'][:12]}  {_point(run['point'], list(run['point'])) or '(base config)'}", file=stream)
