"""What every benchmark script shares: timing and the one JSON line it prints last.

Format (DESIGN.md, "Conventions"): ``{"benchmark": topic, "machine": {"cores",
"torch", ...}, "figures": {...}, "targets": {name: {"value", "op",
"threshold", "met"}}}``. A missed target is reported with ``"met": false``.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import time
from collections.abc import Callable
from typing import Any


def best_time(function: Callable[[], Any], repeats: int = 3) -> float:
    """The fastest of ``repeats`` wall-clock runs of ``function`` (seconds)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def target(value: float | None, op: str, threshold: float) -> dict[str, Any]:
    """One target entry; ``value=None`` (not measured) is reported as not met."""
    if op not in (">=", "<="):
        raise ValueError(f"target: op={op!r} is invalid; expected '>=' or '<='.")
    met = value is not None and (value >= threshold if op == ">=" else value <= threshold)
    shown = None if value is None else round(float(value), 4)
    return {"value": shown, "op": op, "threshold": threshold, "met": bool(met)}


def machine(**extra: Any) -> dict[str, Any]:
    """Cores this process may use and the installed torch version (plus ``extra``)."""
    try:
        torch_version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        torch_version = None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cores": cores, "torch": torch_version, **extra}


def emit(benchmark: str, figures: dict[str, Any], targets: dict[str, dict[str, Any]], **machine_extra: Any) -> None:
    """Print the benchmark's JSON line (always the script's last line of output)."""
    print(json.dumps({"benchmark": benchmark, "machine": machine(**machine_extra),
                      "figures": figures, "targets": targets}), flush=True)
