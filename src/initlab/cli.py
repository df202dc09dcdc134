"""The ``initlab`` command: thin; it parses arguments and delegates.

Each sub-command is registered by one ``_add_<command>`` function below that
adds its parser and sets ``handler``; handlers return the exit status.
Exit status: 0 success, 1 a finding (e.g. an unhealthy audit), 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from initlab.errors import InitlabError

Registrar = Callable[[argparse._SubParsersAction], None]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="initlab",
        description="Neural-network weight and bias initialization: schemes, theory, audit, lab.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in _REGISTRARS:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except InitlabError as error:
        print(f"initlab {args.command}: error: {error}", file=sys.stderr)
        return 2


def _parse_params(pairs: Sequence[str]) -> dict[str, float | str]:
    """``["negative_slope=0.2", "approximate=tanh"]`` -> ``{"negative_slope": 0.2, "approximate": "tanh"}``."""
    params: dict[str, float | str] = {}
    for pair in pairs:
        key, separator, text = pair.partition("=")
        if not separator or not key:
            raise InitlabError(f"--param={pair!r} is invalid; expected KEY=VALUE, e.g. negative_slope=0.2.")
        try:
            params[key] = float(text)
        except ValueError:
            params[key] = text
    return params


def _gain_cell(activation, criterion: str, params: dict) -> tuple[float | None, str]:
    """The gain under one criterion, or None and the reason it is not available."""
    from initlab.gains import gain

    extra = {key: value for key, value in params.items() if criterion == "critical" or key != "sigma_b2"}
    try:
        return gain(activation, criterion=criterion, **extra), ""
    except InitlabError as error:
        return None, str(error)


def _run_gain(args: argparse.Namespace) -> int:
    from initlab.activations import get_activation
    from initlab.gains import CRITERIA

    if args.table == (args.activation is not None):
        raise InitlabError("give exactly one of ACTIVATION or --table.")
    if args.table:
        return _print_gain_table(CRITERIA)
    params = _parse_params(args.param or [])
    activation_params = {key: value for key, value in params.items() if key != "sigma_b2"}
    activation = get_activation(args.activation, **activation_params)
    print(f"{activation.name} {dict(activation.params) or ''}".rstrip())
    for criterion in CRITERIA:
        value, reason = _gain_cell(activation, criterion, params)
        print(f"  {criterion:<9} {value!r}" if value is not None else f"  {criterion:<9} not available: {reason}")
    return 0


def _print_gain_table(criteria: Sequence[str]) -> int:
    from rich.console import Console
    from rich.table import Table

    from initlab.activations import known_activations

    table = Table(title="gain (std = gain / sqrt(fan))")
    table.add_column("activation")
    for criterion in criteria:
        table.add_column(criterion, justify="right")
    reasons: dict[str, str] = {}
    for name in known_activations():
        cells = [_gain_cell(name, criterion, {}) for criterion in criteria]
        table.add_row(name, *(f"{value:.6f}" if value is not None else "n/a" for value, _ in cells))
        for criterion, (value, reason) in zip(criteria, cells):
            if value is None and criterion != "torch":
                reasons.setdefault(criterion, reason)
    console = Console(file=sys.stdout, width=100)
    console.print(table)
    console.print("torch: n/a where torch.nn.init.calculate_gain has no value.", soft_wrap=True)
    for criterion, reason in reasons.items():
        console.print(f"{criterion}: n/a because {reason}", soft_wrap=True, markup=False)
    return 0


def _add_gain(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "gain",
        help="gain of an activation under every criterion (torch, forward, critical)",
        description="Print the gain of ACTIVATION under every criterion, or --table for all named activations.",
    )
    parser.add_argument("activation", nargs="?", metavar="ACTIVATION", help="activation name, e.g. relu, tanh, gelu")
    parser.add_argument(
        "--param", action="append", metavar="KEY=VALUE",
        help="activation parameter (negative_slope=0.2, alpha=1, ...) or sigma_b2 for the critical gain; repeatable",
    )
    parser.add_argument("--table", action="store_true", help="table of all named activations x criteria")
    parser.set_defaults(handler=_run_gain)

def _sigma_w2_sweep(spec: str):
    """``"START:STOP:NUM"`` (NUM values, both ends included) or ``"A,B,C"`` -> an array of sigma_w2."""
    import numpy as np

    try:
        if ":" in spec:
            start, stop, num = spec.split(":")
            values = np.linspace(float(start), float(stop), int(num))
        else:
            values = np.array([float(part) for part in spec.split(",")])
    except ValueError:
        values = np.array([])
    if values.size == 0 or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise InitlabError(
            f"theory: --sigma-w2={spec!r} is invalid; expected START:STOP:NUM (e.g. 0.5:4:15) "
            "or a comma-separated list of values > 0."
        )
    return values


def _run_theory(args: argparse.Namespace) -> int:
    import math

    from initlab.activations import get_activation
    from initlab.theory import MeanField, critical_sigma_w2, phase_diagram

    activation = get_activation(args.activation, **_parse_params(args.param or []))
    sweep = _sigma_w2_sweep(args.sigma_w2)
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
        try:
            row = [field.q_star, field.chi_1, field.xi_q, field.xi_c, field.trainable_depth(6)]
            cells = [f"{value:12.5g}" if math.isfinite(value) else f"{'inf':>12}" for value in row]
            phase = field.phase
        except InitlabError:
            cells, phase = [f"{'inf':>12}"] + [f"{'-':>12}"] * 4, "unbounded"
        print(f"{sigma_w2:12.5g}" + "".join(cells) + f"{phase:>12}")
    print(f"critical sigma_w2 (chi_1 = 1): {critical_text}")
    if args.plot:
        import numpy as np

        from initlab.report.theory_plot import plot_phase_diagram

        low, high = float(sweep.min()), float(sweep.max())
        if high <= low:
            low, high = low / 2, high * 2
        weights = np.linspace(low, high, 100)
        diagram = phase_diagram(activation, weights, np.linspace(0, max(0.5, 2 * args.sigma_b2), 100))
        curve = phase_diagram(activation, np.linspace(low, high, 400), [args.sigma_b2])
        written = plot_phase_diagram(diagram, args.plot, sigma_b2=args.sigma_b2, depth_curve=curve,
                                     critical_sigma_w2=critical)
        print(f"phase diagram written to {written}")
    return 0


def _add_theory(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "theory",
        help="mean-field theory: q*, chi_1, depth scales, phase and the edge of chaos",
        description="Mean-field signal propagation for ACTIVATION over a sweep of sigma_w2 at one sigma_b2.",
    )
    parser.add_argument("activation", metavar="ACTIVATION", help="activation name, e.g. tanh, relu, erf")
    parser.add_argument("--sigma-b2", type=float, default=0.05, help="bias variance (default 0.05)")
    parser.add_argument("--sigma-w2", default="0.5:4:15", metavar="START:STOP:NUM|A,B,...",
                        help="weight variances to sweep (default 0.5:4:15)")
    parser.add_argument("--param", action="append", metavar="KEY=VALUE",
                        help="activation parameter (negative_slope=0.2, ...); repeatable")
    parser.add_argument("--plot", metavar="FILE", help="write the phase diagram to FILE (.png or .svg)")
    parser.set_defaults(handler=_run_theory)


def _run_run(args: argparse.Namespace) -> int:
    import json

    from initlab.lab.config import load_study
    from initlab.lab.runner import estimate, run_study

    study = load_study(args.study)
    if args.dry_run:
        from initlab.report.runs import print_plan

        print_plan(estimate(study), sys.stdout)
        return 0
    from initlab.lab.executors import make_executor
    from initlab.lab.store import Store
    from initlab.report.progress import make_progress

    executor = make_executor(args.executor, workers=args.workers, scheduler=args.scheduler)
    try:
        with Store(args.store) as store:
            report = run_study(study, store, executor, make_progress(sys.stderr, quiet=args.quiet))
    finally:
        executor.close()
    print(json.dumps(report.to_dict()))
    return 1 if report.failed else 0


def _add_run(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run", help="run a study (TOML): train its grid, store results, resume where it stopped",
        description="Run every grid point of STUDY.toml not yet in the store; print a JSON report. "
                    "Exit status 1 if some run failed.",
    )
    parser.add_argument("study", metavar="STUDY.toml", help="the study file (see docs/studies.md)")
    parser.add_argument("--dry-run", action="store_true", help="print the expanded grid and a work estimate")
    parser.add_argument("--executor", default="inline", help="inline (default), process or dask")
    parser.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler address (with --executor dask)")
    parser.add_argument("--workers", type=int, metavar="N", help="worker processes (process / local dask)")
    parser.add_argument("--store", default="initlab-runs.sqlite", metavar="PATH", help="SQLite result store")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.set_defaults(handler=_run_run)


def _run_runs(args: argparse.Namespace) -> int:
    from pathlib import Path

    from initlab.lab.store import Store
    from initlab.report import runs as render

    if not Path(args.store).is_file():
        raise InitlabError(f"--store={args.store!r} is invalid; expected an existing store file.")
    with Store(args.store) as store:
        if args.action == "show":
            if not args.run:
                raise InitlabError("runs show: RUN is missing; expected a run key (prefix).")
            render.print_run(store.run(args.run), sys.stdout)
            return 0
        rows = store.runs(study=args.study, status=args.status)
        if args.action == "list":
            render.print_runs(rows, sys.stdout)
            return 0
        if (args.csv is None) == (args.parquet is None):
            raise InitlabError("runs export: give exactly one of --csv PATH or --parquet PATH.")
        count = render.export_csv(rows, args.csv) if args.csv else render.export_parquet(rows, args.parquet)
        print(f"{count} run(s) written to {args.csv or args.parquet}")
        return 0


def _add_runs(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "runs", help="list, show or export stored runs",
        description="initlab runs list | show RUN | export --csv PATH | --parquet PATH",
    )
    parser.add_argument("action", choices=("list", "show", "export"))
    parser.add_argument("run", nargs="?", metavar="RUN", help="run key or unique prefix (show)")
    parser.add_argument("--store", default="initlab-runs.sqlite", metavar="PATH", help="SQLite result store")
    parser.add_argument("--study", help="only runs of this study")
    parser.add_argument("--status", choices=("done", "diverged", "failed"), help="only runs with this status")
    parser.add_argument("--csv", metavar="PATH", help="export one row per run as CSV")
    parser.add_argument("--parquet", metavar="PATH", help="export as Parquet (needs pyarrow)")
    parser.set_defaults(handler=_run_runs)


def _add_plan(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="print the auto init plan of a model (scheme, activation found, gain per parameter)",
        description="Build the model FILE.py:factory returns and print initlab's auto plan for it, "
                    "without changing it.",
    )
    parser.add_argument("model", metavar="FILE.py:factory", help="a Python file and a function returning an nn.Module")
    parser.add_argument("--input-shape", metavar="N,M,...",
                        help="trace a run on an input of this shape (without it: torch.fx)")
    parser.add_argument("--input-dtype", default="float32", choices=("float32", "float64", "int64"),
                        help="dtype of the example input (int64: zeros, for token ids)")
    parser.add_argument("--format", default="table", choices=("table", "json", "plan-toml", "plan-json"),
                        help="table, the record as JSON, or an explicit Plan (TOML/JSON) to edit and reuse")
    parser.add_argument("--seed", type=int, default=0, help="seed recorded with the plan")

    def handler(args: argparse.Namespace) -> int:
        from initlab.report.plan_command import handle

        return handle(args)

    parser.set_defaults(handler=handler)


def _add_audit(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "audit",
        help="audit a model's initialization on a random batch: per-layer statistics, verdicts, fixes",
        description="Build the model FILE.py:factory returns, optionally initialise it, run one forward and "
                    "backward pass on a standard-normal batch and print per-layer verdicts. Exit status: "
                    "0 healthy, 1 unhealthy (use it as a CI gate), 2 bad usage.",
    )
    parser.add_argument("model", metavar="FILE.py:factory", help="a Python file and a function returning an nn.Module")
    parser.add_argument("--input-shape", required=True, metavar="N,M,...", help="shape of the batch, e.g. 32,40")
    parser.add_argument("--init", metavar="SCHEME|auto",
                        help="initialise first: 'auto' (initlab.init_ auto plan) or a scheme for Linear/Conv "
                             "weights, e.g. he_normal or normal:std=0.01")
    parser.add_argument("--seed", type=int, default=0, help="seed of the batch, the init and the audit")
    parser.add_argument("--html", metavar="FILE", help="write the self-contained HTML report")
    parser.add_argument("--json", metavar="FILE", help="write the JSON report")
    parser.add_argument("--no-jacobian", action="store_true", help="skip the Jacobian spectrum")

    def handler(args: argparse.Namespace) -> int:
        from initlab.report.audit_command import run

        return run(args)

    parser.set_defaults(handler=handler)


def _add_tour(subparsers: argparse._SubParsersAction) -> None:
    from initlab.report.tour_command import add_tour_parser

    add_tour_parser(subparsers)


def _add_report(subparsers: argparse._SubParsersAction) -> None:
    from initlab.report.tour_command import add_report_parser

    add_report_parser(subparsers)


def _add_port_check(subparsers: argparse._SubParsersAction) -> None:
    from initlab.port_check_command import add_parser

    add_parser(subparsers)


_REGISTRARS: list[Registrar] = [_add_gain, _add_theory, _add_run, _add_runs, _add_plan, _add_audit,
                                _add_tour, _add_report, _add_port_check]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
