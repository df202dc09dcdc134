"""Phase-diagram speed: the vectorised ``phase_diagram`` vs a loop of scalar ``MeanField``s.

Workload: tanh (no closed-form moments or kernel: graded quadrature, Hermite series),
sigma_w2 in linspace(0.5, 5, 100) x sigma_b2 in linspace(0, 0.5, 100), 10,000
fixed-point problems with c* in the chaotic half.  Baseline, in the same process: the
same quantities point by point with :class:`initlab.theory.MeanField` on a 10 x 10
sub-grid, scaled to 10,000 points.  Best of 3 runs.

Prints JSON as its last line (format: DESIGN.md, "Conventions"); target
``phase_diagram_100x100_s <= 2``.
"""

from __future__ import annotations

import time

import numpy as np
from harness import best_time, emit, target

from initlab.theory import MeanField, phase_diagram

TARGET_SECONDS = 2.0


def scalar_loop(weights: np.ndarray, biases: np.ndarray) -> None:
    for sigma_w2 in weights:
        for sigma_b2 in biases:
            field = MeanField("tanh", sigma_w2, sigma_b2)
            field.xi_c  # noqa: B018 - evaluates q*, chi_1, c*, chi_c


def main() -> None:
    weights, biases = np.linspace(0.5, 5.0, 100), np.linspace(0.0, 0.5, 100)
    phase_diagram("tanh", weights[:5], biases[:5])  # warm caches (quadrature rules)
    vectorised = best_time(lambda: phase_diagram("tanh", weights, biases))
    relu = best_time(lambda: phase_diagram("relu", weights, biases))
    sub_w, sub_b = weights[::10], biases[::10]
    start = time.perf_counter()
    scalar_loop(sub_w, sub_b)
    per_point = (time.perf_counter() - start) / (sub_w.size * sub_b.size)
    loop_estimate = per_point * weights.size * biases.size
    print(f"phase_diagram tanh 100x100: {vectorised:.3f} s; relu: {relu:.4f} s; "
          f"scalar MeanField loop: {per_point * 1e3:.2f} ms/point (~{loop_estimate:.0f} s for the grid)")
    emit("theory", {
        "phase_diagram_100x100_s": round(vectorised, 4),
        "phase_diagram_relu_100x100_s": round(relu, 5),
        "scalar_mean_field_ms_per_point": round(per_point * 1e3, 3),
        "speedup_vs_scalar_loop": round(loop_estimate / vectorised, 1),
    }, {"phase_diagram_100x100_s": target(vectorised, "<=", TARGET_SECONDS)})

if __name__ == "__main__":
    main()
