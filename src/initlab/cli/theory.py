"""``initlab theory ACTIVATION``: mean-field q*, chi_1, depth scales and phase over a sigma_w^2 sweep."""

from __future__ import annotations

import argparse
import math

import numpy as np

from initlab.cli.params import parse_params
from initlab.errors import InitlabError

MAX_SWEEP = 10_000
"""Most sigma_w2 values one ``initlab theory`` call evaluates (each solves a fixed point)."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``initlab theory``."""
    parser = subparsers.add_parser(
        "theory",
        help="mean-field theory: q*, chi_1, depth scales, phase and the edge of chaos",
        description="Mean-field signal propagation for ACTIVATION over a sweep of sigma_w2 at one sigma_b2.",
    )
    parser.add_argument("activation", metavar="ACTIVATION", help="activation name, e.g. tanh, relu, erf")
    parser.add_argument("--sigma-b2", type=float, default=0.05, help="bias variance (default 0.05)")
    parser.add_argument(
        "--sigma-w2",
        default="0.5:4:15",
        metavar="START:STOP:NUM|A,B,...",
        help=f"weight variances to sweep, at most {MAX_SWEEP} (default 0.5:4:15)",
    )
    parser.add_argument(
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="activation parameter (negative_slope=0.2, ...); repeatable",
    )
    parser.add_argument("--plot", metavar="FILE", help="write the phase diagram to FILE (.png or .svg)")
    parser.set_defaults(handler=run)


def sigma_w2_sweep(spec: str) -> np.ndarray:
    """``"START:STOP:NUM"`` (NUM values, both ends included) or ``"A,B,C"`` -> an array of sigma_w2.

    At most :data:`MAX_SWEEP` values (a range's NUM is checked before anything is built),
    each finite and > 0.
    """
    try:
        if ":" in spec:
            start, stop, num = spec.split(":")
            _check_count(int(num), spec)
            values = np.linspace(float(start), float(stop), int(num))
        else:
            parts = spec.split(",")
            _check_count(len(parts), spec)
            values = np.array([float(part) for part in parts])
    except ValueError as error:
        if isinstance(error, InitlabError):
            raise
        values = np.array([])
    if values.size == 0 or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise InitlabError(
            f"theory: --sigma-w2={spec!r} is invalid; expected START:STOP:NUM (e.g. 0.5:4:15) "
            "or a comma-separated list of values > 0."
        )
    return values


def _check_count(count: int, spec: str) -> None:
    if count > MAX_SWEEP:
        shown = spec if len(spec) <= 40 else spec[:40] + "..."
        raise InitlabError(f"theory: --sigma-w2={shown!r} is invalid: {count} values; expected 1 to {MAX_SWEEP}.")


def run(args: argparse.Namespace) -> int:
    """The ``initlab theory`` handler: print the sweep table (and write the plot)."""
    from initlab.activations import get_activation
    from initlab.theory import MeanField, critical_sigma_w2

    activation = get_activation(args.activation, **parse_params(args.param or []))
    sweep = sigma_w2_sweep(args.sigma_w2)
    critical: float | None
    try:
        critical = critical_sigma_w2(activation, args.sigma_b2)
        critical_text = f"{critical:.10g}"
    except InitlabError as error:
        critical, critical_text = None, f"none ({error})"
    print(f"{activation.name} {dict(activation.params) or ''}, sigma_b2 = {args.sigma_b2:g}".replace(" ,", ","))
    header = ("sigma_w2", "q*", "chi_1", "xi_q", "xi_c", "6 xi_c", "phase")
    print("".join(f"{name:>12}" for name in header))
    for sigma_w2 in sweep:
        field = MeanField(activation, float(sigma_w2), args.sigma_b2)
        phase: str
        try:
            row = [field.q_star, field.chi_1, field.xi_q, field.xi_c, field.trainable_depth(6)]
            cells = [f"{value:12.5g}" if math.isfinite(value) else f"{'inf':>12}" for value in row]
            phase = field.phase
        except InitlabError:
            cells, phase = [f"{'inf':>12}"] + [f"{'-':>12}"] * 4, "unbounded"
        print(f"{sigma_w2:12.5g}" + "".join(cells) + f"{phase:>12}")
    print(f"critical sigma_w2 (chi_1 = 1): {critical_text}")
    if args.plot:
        write_plot(activation, sweep, args.sigma_b2, critical, args.plot)
    return 0


def write_plot(activation, sweep: np.ndarray, sigma_b2: float, critical: float | None, path: str) -> None:
    """Write the phase diagram around ``sweep`` (and the depth-scale curve at ``sigma_b2``) to ``path``."""
    from initlab.report.theory_plot import plot_phase_diagram
    from initlab.theory import phase_diagram

    low, high = float(sweep.min()), float(sweep.max())
    if high <= low:
        low, high = low / 2, high * 2
    weights = np.linspace(low, high, 100)
    diagram = phase_diagram(activation, weights, np.linspace(0, max(0.5, 2 * sigma_b2), 100))
    curve = phase_diagram(activation, np.linspace(low, high, 400), [sigma_b2])
    written = plot_phase_diagram(diagram, path, sigma_b2=sigma_b2, depth_curve=curve, critical_sigma_w2=critical)
    print(f"phase diagram written to {written}")
