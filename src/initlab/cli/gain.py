"""``initlab gain ACTIVATION | --table``: the gain of an activation under every criterion."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from initlab.cli.params import parse_params
from initlab.errors import InitlabError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``initlab gain``."""
    parser = subparsers.add_parser(
        "gain",
        help="gain of an activation under every criterion (torch, forward, critical)",
        description="Print the gain of ACTIVATION under every criterion, or --table for all named activations.",
    )
    parser.add_argument("activation", nargs="?", metavar="ACTIVATION", help="activation name, e.g. relu, tanh, gelu")
    parser.add_argument(
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="activation parameter (negative_slope=0.2, alpha=1, ...) or sigma_b2 for the critical gain; repeatable",
    )
    parser.add_argument("--table", action="store_true", help="table of all named activations x criteria")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """The ``initlab gain`` handler: print one activation's gains, or the table."""
    from initlab.activations import get_activation
    from initlab.gains import CRITERIA

    if args.table == (args.activation is not None):
        raise InitlabError("give exactly one of ACTIVATION or --table.")
    if args.table:
        return print_gain_table(CRITERIA)
    params = parse_params(args.param or [])
    activation_params = {key: value for key, value in params.items() if key != "sigma_b2"}
    activation = get_activation(args.activation, **activation_params)
    print(f"{activation.name} {dict(activation.params) or ''}".rstrip())
    for criterion in CRITERIA:
        value, reason = gain_cell(activation, criterion, params)
        print(f"  {criterion:<9} {value!r}" if value is not None else f"  {criterion:<9} not available: {reason}")
    return 0


def gain_cell(activation, criterion: str, params: dict) -> tuple[float | None, str]:
    """The gain under one criterion, or None and the reason it is not available."""
    from initlab.gains import gain

    extra = {key: value for key, value in params.items() if criterion == "critical" or key != "sigma_b2"}
    try:
        return gain(activation, criterion=criterion, **extra), ""
    except InitlabError as error:
        return None, str(error)


def print_gain_table(criteria: Sequence[str]) -> int:
    """Print every named activation x criterion as a table; returns 0."""
    from rich.console import Console
    from rich.table import Table

    from initlab.activations import known_activations

    table = Table(title="gain (std = gain / sqrt(fan))")
    table.add_column("activation")
    for criterion in criteria:
        table.add_column(criterion, justify="right")
    reasons: dict[str, str] = {}
    for name in known_activations():
        cells = [gain_cell(name, criterion, {}) for criterion in criteria]
        table.add_row(name, *(f"{value:.6f}" if value is not None else "n/a" for value, _ in cells))
        for criterion, (value, reason) in zip(criteria, cells, strict=True):
            if value is None and criterion != "torch":
                reasons.setdefault(criterion, reason)
    console = Console(file=sys.stdout, width=100)
    console.print(table)
    console.print("torch: n/a where torch.nn.init.calculate_gain has no value.", soft_wrap=True)
    for criterion, reason in reasons.items():
        console.print(f"{criterion}: n/a because {reason}", soft_wrap=True, markup=False)
    return 0
