"""Audit a PyTorch model's initialization on a real batch: per-layer forward/backward
statistics, verdicts with the rule that fired and a fix, Jacobian spectrum, theory overlay.

Returns plain data (:class:`AuditReport`, with its JSON form); rendering lives in :mod:`initlab.report`.
"""

from initlab.auditing.core import audit
from initlab.auditing.jacobian import JacobianStats
from initlab.auditing.json_form import SCHEMA_VERSION
from initlab.auditing.result import AuditReport, Finding, LayerReport
from initlab.auditing.statistics import Summary
from initlab.auditing.theory_overlay import TheoryOverlay
from initlab.auditing.thresholds import HEALTHY, VERDICTS, Thresholds

__all__ = [
    "HEALTHY",
    "SCHEMA_VERSION",
    "VERDICTS",
    "AuditReport",
    "Finding",
    "JacobianStats",
    "LayerReport",
    "Summary",
    "TheoryOverlay",
    "Thresholds",
    "audit",
]
