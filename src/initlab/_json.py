"""Valid JSON always: non-finite numbers become ``null`` (JSON has no NaN or Infinity)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any


def plain(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (dicts, lists and tuples walked)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def dumps(value: Any, **options: Any) -> str:
    """``json.dumps`` of :func:`plain` ``(value)`` with ``allow_nan=False``: always valid JSON."""
    return json.dumps(plain(value), allow_nan=False, **options)
