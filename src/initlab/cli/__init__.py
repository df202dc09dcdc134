"""The ``initlab`` command: one module per sub-command, each parsing and orchestrating.

Every module of this package registers its sub-command with ``add_parser(subparsers)``,
which adds the parser and sets ``handler`` (a function of the parsed arguments that
returns the exit status). This is the only layer of initlab that knows the terminal.

Exit status: 0 success, 1 a finding (e.g. an unhealthy audit, a claim that does not
hold, a run that failed), 2 bad usage or environment (an ``InitlabError``).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from initlab._version import __version__
from initlab.cli import audit, gain, plan, port_check, report, run, runs, studies, theory, tour
from initlab.errors import InitlabError

COMMANDS = (gain, theory, plan, audit, port_check, studies, run, runs, tour, report)
"""The sub-command modules, in the order ``initlab --help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    """The ``initlab`` argument parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="initlab",
        description="Neural-network weight and bias initialization: schemes, theory, audit, lab.",
        epilog="exit status: 0 success / healthy, 1 unhealthy model, claim that does not hold or failed run, "
        "2 bad input or environment.",
    )
    parser.add_argument("--version", action="version", version=f"initlab {__version__}")
    parser.add_argument("--debug", action="store_true", help="on an error, also print the traceback")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except InitlabError as error:
        if args.debug:
            traceback.print_exception(error, file=sys.stderr)
        print(f"initlab {args.command}: error: {error}", file=sys.stderr)
        return 2
