"""Audit a PyTorch model's initialization on a real batch: per-layer forward/backward
statistics, verdicts with the rule that fired and a fix, Jacobian spectrum, theory overlay.

Returns plain data (:class:`AuditReport`, with its JSON form); rendering lives in :mod:`initlab.report`.
"""

from initlab.audit.core import audit
from initlab.audit.jacobian import JacobianStats
from initlab.audit.json_form import SCHEMA_VERSION
from initlab.audit.result import AuditReport, Finding, LayerReport
from initlab.audit.statistics import Summary
from initlab.audit.theory_overlay import TheoryOverlay
from initlab.audit.thresholds import HEALTHY, VERDICTS, Thresholds

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
