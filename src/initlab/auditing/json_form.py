"""The JSON form of an audit report (:meth:`AuditReport.to_json <initlab.auditing.AuditReport.to_json>`,
:meth:`AuditReport.from_json <initlab.auditing.AuditReport.from_json>`): a documented, versioned schema.

This module turns the report's plain-data form (``AuditReport.to_dict()``) into strict JSON
text and back; it knows nothing of the report classes.

Schema, version 2 (``schema_version: 2``; version 1 had no borderline state, no fix
parameters, no propagation figures and no ``init``, and computed the Jacobian without a bound
on its cost: version 2 estimates it with at most a fixed number of products, stating
``products`` and ``mean_squared_singular_value_error``). Numbers are floats unless noted; a figure
that does not apply is ``null``; non-finite floats are written as the strings
``"nan"``, ``"inf"`` and ``"-inf"`` (JSON has no literal for them).

.. code-block:: text

    {
      "schema_version": 2,                    int; bumped on any breaking change
      "model": str,                           class name of the model
      "batch_shape": [int, ...],
      "backward": "loss" | "random_cotangent",
      "seed": int,
      "init": str|null,                       what initialised the model (the command's --init)
      "verdict": "healthy" | "borderline" | kind,  most specific definite kind found (see thresholds),
                                              else "borderline" when a figure is near its threshold
      "healthy": bool,                        no definite finding (borderline ones are warnings)
      "fixes": [str, ...],                    one sentence per kind found, then "borderline ..." warnings
      "thresholds": {name: number},           initlab.auditing.Thresholds fields
      "notes": [str, ...],                    what was skipped and why
      "layers": [{                            execution order
          "index": int (1-based), "name": str, "kind": str, "module_type": str,
          "activation": str|null, "activation_params": {name: number}, "activation_name": str|null,
          "output": Summary, "pre_activation": Summary|null,
          "input_std", "input_rms", "carries_weights": bool, "gain", "signal_ratio", "signal_depth": int|null,
          "saturated_fraction",
          "dead_units": int|null, "units": int|null, "symmetric_units": int|null,
          "grad_output_norm", "grad_output_std", "grad_input_norm", "grad_growth", "grad_ratio",
          "weight_shape": [int]|null, "weight_std", "weight_norm", "weight_grad_norm",
          "weight_grad_std", "grad_to_weight_ratio",
          "findings": [{"kind", "layer": int, "layer_name", "direction": "forward"|"backward",
                        "rule": str, "value", "threshold", "message": str, "fix": str,
                        "borderline": bool, "fix_params": [str], "fix_residual": [str],
                        "fix_branches": int|null}],
          "verdict": str }],
      "jacobian": null | {"method": "exact"|"lanczos"|"hutchinson", "samples": int (batch size),
          "input_dim": int, "output_dim": int, "products": int (Jacobian-vector products spent),
          "singular_values": [[...] per sample (exact) | one row of Ritz values (lanczos) | none],
          "mean_squared_singular_value", "mean_squared_singular_value_error" (standard error; 0 exact),
          "squared_singular_value_variance"|null, "max_singular_value" (a lower bound unless exact),
          "min_singular_value"|null},
      "theory": null | {"activation": str, "layers": [int], "sigma_w2": [...], "sigma_b2": [...],
          "q_input", "predicted_q": [...], "measured_q": [...]},
      "propagation": null | {"weight_layers": int, "signal_min", "signal_min_layer": int|null,
          "signal_max", "signal_max_layer": int|null, "gradient_ratio", "gradient_layer": int|null,
          "signal_per_layer", "gradient_per_layer",
          "streams": [{"stack": str, "blocks": int, "first_rms", "last_rms", "growth", "layer": int,
                       "branch_globs": [str], "branches": int, "branch_params": [str]}]}
    }

    Summary = {"numel": int, "non_finite": int, "mean", "std", "min", "max", "rms",
               "percentiles": {"p1", "p5", "p25", "p50", "p75", "p95", "p99"},
               "histogram": {"counts": [int x 40], "edges": [41 floats]}}
"""

from __future__ import annotations

import json
import math
from typing import Any

from initlab.errors import InitlabError

SCHEMA_VERSION = 2
"""Version of the JSON form; bumped on any breaking change."""

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
        "init",
        "stack",
        "fix_params",
        "fix_residual",
        "branch_globs",
        "branch_params",
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


def to_json_text(data: dict) -> str:
    """Strict JSON text (indented, keys in the order given, non-finite floats as strings) of
    a report's plain-data form."""
    return json.dumps(_encode(data), indent=2, allow_nan=False, ensure_ascii=False)


def from_json_text(text: str) -> dict:
    """The plain-data form of a report back from :func:`to_json_text`'s text.

    Raises:
        InitlabError: not JSON, or a ``schema_version`` other than :data:`SCHEMA_VERSION`.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise InitlabError(
            f"AuditReport.from_json: text is not JSON ({error}); expected the text of AuditReport.to_json."
        ) from None
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version != SCHEMA_VERSION:
        raise InitlabError(f"AuditReport.from_json: schema_version={version!r} is invalid; expected {SCHEMA_VERSION}.")
    return _decode(data)
