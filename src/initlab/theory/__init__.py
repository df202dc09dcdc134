"""Mean-field signal propagation for any activation: fixed points, chi_1, depth scales,
the edge of chaos, per-layer predictions and Jacobian spectrum moments.

Pure numpy/scipy (no torch); uses :mod:`initlab.activations` and :mod:`initlab.quadrature`.

References: Poole et al. (2016); Schoenholz, Gilmer, Ganguli, Sohl-Dickstein (2017);
Pennington, Schoenholz, Ganguli (2017); Klambauer et al. (2017).
"""

from initlab.theory.mean_field import (
    CRITICAL_TOLERANCE,
    JacobianSpectrum,
    MeanField,
    Propagation,
    critical_line,
    critical_sigma_w2,
)
from initlab.theory.phase import PHASES, PhaseDiagram, phase_diagram

__all__ = [
    "CRITICAL_TOLERANCE",
    "PHASES",
    "JacobianSpectrum",
    "MeanField",
    "PhaseDiagram",
    "Propagation",
    "critical_line",
    "critical_sigma_w2",
    "phase_diagram",
]
