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


_REGISTRARS: list[Registrar] = []

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
