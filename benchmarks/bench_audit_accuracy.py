"""Accuracy of the audit's verdicts on the labelled suite (issue 17): the confusion matrix.

Cases: ``tests/audit/labelled_cases.py`` (real architectures built from config, healthy with
their reference init and with initlab's auto plan; the classic init mistakes, each with its
verdict). Every case is audited (``jacobian=False``) on 5 batch seeds with 1 and then 2 torch
threads (the thread count is set here and restored afterwards); then every fix the audit gives
is applied (``initlab.init_`` on ``fix_params``, residual scaling on ``fix_residual``) and the
model re-audited.

Printed: the confusion matrix (expected verdict x verdict got, seed 0, one thread), the cases
that got another verdict, then the JSON line. A borderline verdict on a healthy case is a
warning (exit status 0), not a false alarm; it is counted separately.

Targets: ``false_alarms == 0`` (healthy cases with a definite verdict), ``detected_fraction >=
0.95`` (unhealthy cases with the expected verdict), ``fixes_verified_fraction == 1`` (fixes given
that leave the re-audited model without a definite finding) and ``verdict_changes == 0``
(cases whose verdict differs across the 5 seeds x 2 thread counts).
"""

from __future__ import annotations

import sys
import warnings
from collections import Counter
from pathlib import Path

import torch
from harness import emit, target

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "audit"))

from labelled_cases import apply_fixes, cases  # noqa: E402

from initlab.auditing import audit  # noqa: E402
from initlab.auditing.thresholds import STATES  # noqa: E402

SEEDS = (0, 1, 2, 3, 4)
THREADS = (1, 2)


def _verdict(case, seed: int) -> str:
    model, batch, output_fn = case.build(seed)
    return audit(model, batch, output_fn=output_fn, jacobian=False).verdict


def _fix_verified(case) -> bool | None:
    """None when the audit gives no init fix (it names another remedy), else whether it fixes."""
    model, batch, output_fn = case.build(0)
    report = audit(model, batch, output_fn=output_fn, jacobian=False)
    if report.healthy or apply_fixes(model, batch, report) == 0:
        return None
    return audit(model, batch, output_fn=output_fn, jacobian=False).healthy


def main() -> None:
    warnings.filterwarnings("ignore")
    threads = torch.get_num_threads()
    verdicts: dict[str, set[str]] = {}
    first: dict[str, str] = {}
    try:
        for count in THREADS:
            torch.set_num_threads(count)
            for case in cases():
                for seed in SEEDS:
                    got = _verdict(case, seed)
                    verdicts.setdefault(case.name, set()).add(got)
                    first.setdefault(case.name, got)
    finally:
        torch.set_num_threads(threads)
    labelled = cases()
    matrix = Counter((case.expected, first[case.name]) for case in labelled)
    got_states = [state for state in STATES if any(key[1] == state for key in matrix)]
    print("expected \\ got".ljust(16) + "".join(state[:10].rjust(11) for state in got_states))
    for expected in [state for state in STATES if any(key[0] == state for key in matrix)]:
        print(expected.ljust(16) + "".join(str(matrix[(expected, state)]).rjust(11) for state in got_states))
    healthy = [case for case in labelled if case.expected == "healthy"]
    unhealthy = [case for case in labelled if case.expected != "healthy"]
    false_alarms = sum(first[case.name] not in ("healthy", "borderline") for case in healthy)
    borderline = sum(first[case.name] == "borderline" for case in healthy)
    detected = sum(first[case.name] == case.expected for case in unhealthy)
    changes = sum(len(verdicts[case.name]) > 1 for case in labelled)
    for case in labelled:
        if first[case.name] != case.expected or len(verdicts[case.name]) > 1:
            print(f"  {case.name}: expected {case.expected}, got {sorted(verdicts[case.name])}")
    checked = [result for result in (_fix_verified(case) for case in unhealthy) if result is not None]
    figures = {
        "cases": len(labelled),
        "healthy_cases": len(healthy),
        "unhealthy_cases": len(unhealthy),
        "false_alarms": false_alarms,
        "healthy_borderline": borderline,
        "detected_fraction": detected / len(unhealthy),
        "fixes_given": len(checked),
        "fixes_verified_fraction": sum(checked) / len(checked) if checked else 1.0,
        "verdict_changes": changes,
        "runs_per_case": len(SEEDS) * len(THREADS),
    }
    emit("audit_accuracy", figures, {
        "false_alarms": target(false_alarms, "<=", 0),
        "detected_fraction": target(figures["detected_fraction"], ">=", 0.95),
        "fixes_verified_fraction": target(figures["fixes_verified_fraction"], ">=", 1.0),
        "verdict_changes": target(changes, "<=", 0),
    })


if __name__ == "__main__":
    main()
