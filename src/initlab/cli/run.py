"""``initlab run STUDY.toml``: train a study's grid, store the results, resume where it stopped."""

from __future__ import annotations

import argparse
import sys

from initlab._json import dumps
from initlab.cli import params


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``initlab run``."""
    parser = subparsers.add_parser(
        "run",
        help="run a study (TOML): train its grid, store results, resume where it stopped",
        description="Run every grid point of STUDY.toml not yet in the store; print a JSON report. "
        "Exit status 1 if some run failed.",
    )
    parser.add_argument("study", metavar="STUDY.toml", help="the study file (see docs/studies.md)")
    parser.add_argument("--dry-run", action="store_true", help="print the expanded grid and a work estimate")
    parser.add_argument("--executor", default="inline", help="inline (default), process or dask")
    parser.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler address (with --executor dask)")
    parser.add_argument("--workers", type=params.workers, metavar="N", help="worker processes (process / local dask)")
    parser.add_argument("--store", default="initlab-runs.sqlite", metavar="PATH", help="SQLite result store")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """The ``initlab run`` handler: 0 when every run finished, 1 if some run failed."""
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
    print(dumps(report.to_dict()))
    return 1 if report.failed else 0
