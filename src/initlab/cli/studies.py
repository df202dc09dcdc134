"""``initlab studies``: the built-in studies, the claim each one tests, and their sizes."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``initlab studies``."""
    parser = subparsers.add_parser(
        "studies",
        help="list the built-in studies with their claims and sizes",
        description="List the built-in studies (in tour order): the claim each one tests and how many runs "
        "it has at each size (tiny: a smoke test whose verdicts are not evidence; tour: `initlab tour`; "
        "full: `initlab tour --full`). Run one with `initlab run` on its file, shown with --files.",
    )
    parser.add_argument("--files", action="store_true", help="also print the path of each study's TOML file")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """The ``initlab studies`` handler: print the table; returns 0."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from initlab.lab.config import expand
    from initlab.lab.tour import BUILTIN_STUDIES, SIZES, TOUR_STUDIES, builtin_study, study_file

    table = Table(title="initlab's built-in studies", show_lines=True)
    table.add_column("study")
    table.add_column("claim", overflow="fold")
    for size in SIZES:
        table.add_column(f"runs ({size})", justify="right")
    table.add_column("in the tour")
    for name in BUILTIN_STUDIES:
        full = builtin_study(name, "full")
        counts = [str(len(expand(builtin_study(name, size)))) for size in SIZES]
        claim = " ".join(full.description.split())
        if args.files:
            claim += f"\nfile: {study_file(name)}"
        table.add_row(name, Text(claim), *counts, "yes" if name in TOUR_STUDIES else "--full only")
    console = Console(file=sys.stdout, width=120)
    console.print(table)
    return 0
