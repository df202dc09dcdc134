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


_REGISTRARS: list[Registrar] = [_add_gain]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
