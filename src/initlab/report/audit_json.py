"""The audit report as JSON: a documented, versioned schema.

Schema, version 1 (``schema_version: 1``). Numbers are floats unless noted; a figure
that does not apply is ``null``; non-finite floats are written as the strings
``"nan"``, ``"inf"`` and ``"-inf"`` (JSON has no literal for them).

.. code-block:: text

    {
      "schema_version": 1,                    int; bumped on any breaking change
      "model": str,                           class name of the model
      "batch_shape": [int, ...],
      "backward": "loss" | "random_cotangent",
      "seed": int,
      "verdict": "healthy" | kind,            most specific kind found (see thresholds)
      "healthy": bool,
      "fixes": [str, ...],                    one sentence per kind found
      "thresholds": {name: number},           initlab.audit.Thresholds fields
      "notes": [str, ...],                    what was skipped and why
      "layers": [{                            execution order
          "index": int (1-based), "name": str, "kind": str, "module_type": str,
          "activation": str|null, "activation_params": {name: number}, "activation_name": str|null,
          "output": Summary, "pre_activation": Summary|null,
          "input_std", "gain", "reference_ratio", "saturated_fraction",
          "dead_units": int|null, "units": int|null, "symmetric_units": int|null,
          "grad_output_norm", "grad_output_std", "grad_input_norm", "grad_growth", "grad_ratio",
          "weight_shape": [int]|null, "weight_std", "weight_norm", "weight_grad_norm",
          "weight_grad_std", "grad_to_weight_ratio",
          "findings": [{"kind", "layer": int, "layer_name", "direction": "forward"|"backward",
                        "rule": str, "value", "threshold", "message": str, "fix": str}],
          "verdict": str }],
      "jacobian": null | {"method": "exact"|"lanczos", "samples": int, "input_dim": int,
          "output_dim": int, "singular_values": [[...] per sample],
          "mean_squared_singular_value", "squared_singular_value_variance",
          "max_singular_value", "min_singular_value"|null},
      "theory": null | {"activation": str, "layers": [int], "sigma_w2": [...], "sigma_b2": [...],
          "q_input", "predicted_q": [...], "measured_q": [...]}
    }

    Summary = {"numel": int, "non_finite": int, "mean", "std", "min", "max", "rms",
               "percentiles": {"p1", "p5", "p25", "p50", "p75", "p95", "p99"},
               "histogram": {"counts": [int x 40], "edges": [41 floats]}}
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from initlab.errors import InitlabError

_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_TEXT_KEYS = frozenset(
    {
        "model",
        "backward",
        "verdict",
        "fixes",
        "notes",
        "name",
        "kind",
        "module_type",
        "activation",
        "activation_name",
        "layer_name",
        "direction",
        "rule",
        "message",
        "fix",
        "method",
    }
)
"""Keys whose string values are text, never an encoded non-finite float."""


def _encode(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {key: _encode(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(item) for item in value]
    return value


def _decode(value: Any, key: str = "") -> Any:
    if isinstance(value, str) and value in _NON_FINITE and key not in _TEXT_KEYS:
        return _NON_FINITE[value]
    if isinstance(value, dict):
        return {k: _decode(item, k) for k, item in value.items()}
    if isinstance(value, list):
        return [_decode(item, key) for item in value]
    return value


def audit_to_json(report: Any) -> str:
    """The JSON text of ``report`` (indented, keys in schema order)."""
    return json.dumps(_encode(report.to_dict()), indent=2, allow_nan=False, ensure_ascii=False)


def write_audit_json(report: Any, path: str | Path | None = None) -> str:
    """:func:`audit_to_json`, also written to ``path`` (UTF-8) when given."""
    text = audit_to_json(report)
    if path is not None:
        Path(path).write_text(text + "\n", encoding="utf-8")
    return text


def read_audit_json(text: str):
    """Rebuild an :class:`~initlab.audit.AuditReport` from :func:`audit_to_json`'s text.

    Raises:
        InitlabError: not JSON, or a ``schema_version`` this version cannot read.
    """
    from initlab.audit.result import SCHEMA_VERSION, AuditReport

    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise InitlabError(f"read_audit_json: text is not JSON ({error}); expected audit_to_json's output.") from None
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version != SCHEMA_VERSION:
        raise InitlabError(f"read_audit_json: schema_version={version!r} is invalid; expected {SCHEMA_VERSION}.")
    return AuditReport.from_dict(_decode(data))
