"""Claims: named checks over a study's results.

A claim is registered with :func:`register_claim` as a ``validate(params)``
function (raises :class:`~initlab.errors.InitlabError` on bad parameters) and
a ``check(params, results) -> ClaimResult`` function over the stored run
rows of a study (``{"key", "status", "config", "point", "summary"}`` dicts).
One generic claim is built in:

``compare``: the mean of a final metric over the runs matching ``a`` is
greater (``op = ">"``) or smaller (``op = "<"``) than over the runs matching
``b``; ``a`` and ``b`` map grid keys (``"model.activation"``) to values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from initlab.errors import InitlabError

NO_EVIDENCE = "no evidence"
"""The state of a claim that no stored run (or no finite metric) bears on: neither holds nor fails."""


@dataclass(frozen=True)
class ClaimResult:
    """Outcome of a claim: whether it holds, why, and the numbers it used.

    ``evidence`` is False when no run bears on the claim (its selector matched
    no run, or no matched run has a finite value of the metric): then
    ``holds`` is False and :attr:`state` is ``"no evidence"``, not ``"does not hold"``.
    """

    name: str
    holds: bool
    detail: str
    values: dict[str, Any] = field(default_factory=dict)
    evidence: bool = True

    @property
    def state(self) -> str:
        """``"holds"``, ``"does not hold"`` or ``"no evidence"``."""
        if not self.evidence:
            return NO_EVIDENCE
        return "holds" if self.holds else "does not hold"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "holds": self.holds,
            "state": self.state,
            "detail": self.detail,
            "values": self.values,
        }


def no_evidence(name: str, detail: str, values: Mapping[str, Any] | None = None) -> ClaimResult:
    """The result of claim ``name`` when no run bears on it (``detail`` says which runs were missing)."""
    return ClaimResult(name, False, f"{NO_EVIDENCE}: {detail}", dict(values or {}), evidence=False)


Validator = Callable[[Mapping[str, Any]], None]
Checker = Callable[[Mapping[str, Any], Sequence[Mapping[str, Any]]], ClaimResult]
_CLAIMS: dict[str, tuple[Validator, Checker]] = {}


def register_claim(name: str, validate: Validator, check: Checker) -> None:
    """Make the claim ``name`` available to studies."""
    _CLAIMS[name] = (validate, check)


def known_claims() -> list[str]:
    return sorted(_CLAIMS)


def validate_claim(name: str, params: Mapping[str, Any]) -> None:
    """Raise InitlabError if ``name`` is unknown or its params are invalid."""
    if name not in _CLAIMS:
        raise InitlabError(f"claim.name={name!r} is invalid; expected one of {', '.join(known_claims())}.")
    _CLAIMS[name][0](params)


def evaluate_claim(name: str, params: Mapping[str, Any], results: Sequence[Mapping[str, Any]]) -> ClaimResult:
    """Check the claim ``name`` over a study's run rows."""
    validate_claim(name, params)
    return _CLAIMS[name][1](params, results)


# ------------------------------------------------------------------ compare
def _validate_compare(params: Mapping[str, Any]) -> None:
    allowed = {"metric", "a", "b", "op"}
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise InitlabError(f"claim.params: unknown key(s) {unknown}; compare accepts {sorted(allowed)}.")
    if not isinstance(params.get("metric"), str):
        raise InitlabError(f"claim.params.metric={params.get('metric')!r} is invalid; expected a metric name.")
    if params.get("op", ">") not in (">", "<"):
        raise InitlabError(f"claim.params.op={params.get('op')!r} is invalid; expected '>' or '<'.")
    for side in ("a", "b"):
        if not isinstance(params.get(side), Mapping) or not params[side]:
            raise InitlabError(
                f"claim.params.{side}={params.get(side)!r} is invalid; expected a table of grid "
                f"key = value selecting runs."
            )


def _matches(row: Mapping[str, Any], selector: Mapping[str, Any]) -> bool:
    return all(row["point"].get(key) == value for key, value in selector.items())


def _mean_metric(rows: Sequence[Mapping[str, Any]], metric: str) -> float:
    values = [row["summary"].get(metric) for row in rows]
    finite = [float(value) for value in values if isinstance(value, (int, float)) and math.isfinite(value)]
    return sum(finite) / len(finite) if finite else math.nan


def _check_compare(params: Mapping[str, Any], results: Sequence[Mapping[str, Any]]) -> ClaimResult:
    metric, op = params["metric"], params.get("op", ">")
    side_a = [row for row in results if _matches(row, params["a"])]
    side_b = [row for row in results if _matches(row, params["b"])]
    mean_a, mean_b = _mean_metric(side_a, metric), _mean_metric(side_b, metric)
    empty = [
        f"{side}={dict(params[side])} matches {len(rows)} run(s), none with a finite {metric}"
        for side, rows, mean in (("a", side_a, mean_a), ("b", side_b, mean_b))
        if math.isnan(mean)
    ]
    if empty:
        return no_evidence("compare", "; ".join(empty), {"a": None, "b": None})
    holds = (mean_a > mean_b) if op == ">" else (mean_a < mean_b)
    detail = (
        f"mean {metric}: {mean_a:.4g} over {len(side_a)} run(s) {dict(params['a'])} "
        f"{op} {mean_b:.4g} over {len(side_b)} run(s) {dict(params['b'])}: "
        f"{'holds' if holds else 'does not hold'}"
    )
    return ClaimResult("compare", bool(holds), detail, {"a": mean_a, "b": mean_b})


register_claim("compare", _validate_compare, _check_compare)
