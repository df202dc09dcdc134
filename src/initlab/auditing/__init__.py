"""Audit a PyTorch model's initialization on a real batch: per-layer forward/backward
statistics, end-to-end propagation figures, verdicts with the rule that fired and a fix taken
from ``initlab.init_``'s plan, Jacobian spectrum, theory overlay.

Returns plain data (:class:`AuditReport`, with its JSON form); rendering lives in :mod:`initlab.report`.
"""

from initlab.auditing.core import audit
from initlab.auditing.jacobian import JacobianStats
from initlab.auditing.json_form import SCHEMA_VERSION
from initlab.auditing.propagation import Propagation, Stream
from initlab.auditing.result import AuditReport, Finding, LayerReport
from initlab.auditing.statistics import Summary
from initlab.auditing.theory_overlay import TheoryOverlay
from initlab.auditing.thresholds import BORDERLINE, HEALTHY, STATES, VERDICTS, Thresholds

__all__ = [
    "BORDERLINE",
    "HEALTHY",
    "STATES",
    "SCHEMA_VERSION",
    "VERDICTS",
    "AuditReport",
    "Finding",
    "JacobianStats",
    "LayerReport",
    "Propagation",
    "Stream",
    "Summary",
    "TheoryOverlay",
    "Thresholds",
    "audit",
]
