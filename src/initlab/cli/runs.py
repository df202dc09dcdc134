"""``initlab runs list | show RUN | export``: read the stored runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from initlab.errors import InitlabError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``initlab runs``."""
    parser = subparsers.add_parser(
        "runs",
        help="list, show or export stored runs",
        description="initlab runs list | show RUN | export --csv PATH | --parquet PATH",
    )
    parser.add_argument("action", choices=("list", "show", "export"))
    parser.add_argument("run", nargs="?", metavar="RUN", help="run key or unique prefix (show)")
    parser.add_argument("--store", default="initlab-runs.sqlite", metavar="PATH", help="SQLite result store")
    parser.add_argument("--study", help="only runs of this study")
    parser.add_argument("--status", choices=("done", "diverged", "failed"), help="only runs with this status")
    parser.add_argument("--csv", metavar="PATH", help="export one row per run as CSV")
    parser.add_argument("--parquet", metavar="PATH", help="export as Parquet (needs pyarrow)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """The ``initlab runs`` handler."""
    from initlab.lab.store import Store
    from initlab.report import runs as render

    if not Path(args.store).is_file():
        raise InitlabError(f"--store={args.store!r} is invalid; expected an existing store file.")
    with Store(args.store, read_only=True) as store:
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
