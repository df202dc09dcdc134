"""``initlab tour``: run the built-in studies, render their reports, print the claim table.

``initlab tour`` runs studies 1-8 at the reduced ``tour`` size (``--full``: all ten at
full size), storing every run in the SQLite store, then renders the reports and prints
the claim table. Runs already in the store are not trained again, so a second tour only
re-renders. ``initlab report STUDY|--tour`` re-renders from the store without training.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from initlab.errors import InitlabError

SIZE_CHOICES = ("tour", "full", "tiny")


def size_of(args: argparse.Namespace) -> str:
    """``--full`` means ``--size full``; the default size is ``tour``."""
    if args.full and args.size not in (None, "full"):
        raise InitlabError(f"--size={args.size!r} contradicts --full; give one of them.")
    return "full" if args.full else (args.size or "tour")


def out_dir_of(args: argparse.Namespace, size: str) -> Path:
    return Path(args.out) if args.out else Path("reports") / size


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (worker processes), user + system."""
    times = os.times()  # children's times are 0 where the system does not report them (Windows)
    return times.user + times.system + times.children_user + times.children_system


def _executor(workers: int, pending: int):
    """Worker processes with one torch thread each when there is work for more than one, else inline
    (this process, its thread count untouched)."""
    from initlab.lab.executors import InlineExecutor, ProcessExecutor, check_workers

    check_workers(workers)
    if workers == 1 or pending == 0:
        return InlineExecutor()
    return ProcessExecutor(workers, torch_threads=1)


def size_warning(size: str) -> str:
    """What a reader must know about the verdicts at ``size`` (empty for the tour and full sizes)."""
    from initlab.report.tour import SMOKE_TEST_WARNING

    return SMOKE_TEST_WARNING if size == "tiny" else ""


def heading(size: str) -> str:
    return "initlab tour" if size == "tour" else f"initlab tour ({size} size)"


def run(args: argparse.Namespace) -> int:
    """Handler of ``initlab tour``: 0 when every run finished, 1 if some run failed."""
    from initlab.lab.executors import check_workers
    from initlab.lab.store import Store
    from initlab.lab.tour import missing_runs, run_studies, total_runs, tour_studies
    from initlab.report.markdown import claim_table_markdown
    from initlab.report.tour import TourProgress, print_claim_table, print_recipes, render_studies

    started, cpu_started = time.perf_counter(), _cpu_seconds()
    size = size_of(args)
    check_workers(args.workers)
    studies = tour_studies(size)
    out_dir = out_dir_of(args, size)
    with Store(args.store) as store:
        pending = sum(missing_runs(study, store) for study in studies)
        executor = _executor(args.workers, pending)
        progress = TourProgress(total_runs(studies), sys.stderr)
        try:
            outcomes = run_studies(studies, store, executor, progress)
        finally:
            progress.close()
            executor.close()
        trained = sum(outcome.trained for outcome in outcomes)
        wall, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_started
        note = (
            f"{sum(o.runs for o in outcomes)} runs ({trained} trained by this call, the rest read from "
            f"{args.store}); this call took {wall:.0f} s wall, {cpu:.0f} s CPU."
        )
        recipes = recipe_rows(size)
        table = render_studies(
            studies,
            store,
            out_dir,
            heading=heading(size),
            note=note,
            force=False,
            warning=size_warning(size),
            recipes=recipes,
        )
        failed = sum(row["status"] == "failed" for study in studies for row in store.study_runs(study))
    messages = sys.stderr if args.markdown or args.markdown_into else sys.stdout
    if args.markdown:
        print(claim_table_markdown(table), file=sys.stdout)
    elif not args.markdown_into:
        print_claim_table(table, sys.stdout)
        if recipes:
            print_recipes(recipes, sys.stdout)
    for path in args.markdown_into or ():
        write_table_into(Path(path), claim_table_markdown(table))
        print(f"tour: claim table written into {path}", file=messages)
    if size_warning(size):
        print(f"tour: {size_warning(size)}", file=messages)
    print(f"reports: {out_dir / 'index.html'} (and {out_dir / 'summary.md'})", file=messages)
    print(f"tour: {note}", file=messages)
    if failed:
        print(
            f"tour: {failed} run(s) failed; see `initlab runs list --status failed --store {args.store}`.",
            file=messages,
        )
    return 1 if failed else 0


def recipe_rows(size: str) -> list[dict]:
    """The seed-level side-by-side rows (:mod:`initlab.lab.recipes`); none for the ``tiny`` smoke test.

    Keras runs on the torch backend unless ``KERAS_BACKEND`` says otherwise (this command owns its
    process, so it may choose).
    """
    if size == "tiny":
        return []
    from initlab.lab.recipes import keras_available, seed_level_rows

    if keras_available():
        os.environ.setdefault("KERAS_BACKEND", "torch")
    return [row.to_dict() for row in seed_level_rows()]


def write_table_into(path: Path, table: str) -> None:
    """Replace the marked claim table of the Markdown file ``path`` (README.md, docs/claims.md)."""
    from initlab._io import write_atomically
    from initlab.report.markdown import replace_claim_table

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InitlabError(f"--markdown-into={str(path)!r} cannot be read ({error.strerror}).") from None
    write_atomically(path, replace_claim_table(text, table, str(path)), "claim table", "--markdown-into")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``initlab tour``."""
    parser = subparsers.add_parser(
        "tour",
        help="run the built-in studies (reduced) and print the claim table",
        description="Train the reduced built-in studies 1-8 (--full: all ten at full size), store every run "
        "in the SQLite store (a second run is instant), write reports/tour/index.html and print "
        "the claim table.",
    )
    parser.add_argument("--full", action="store_true", help="all ten studies at full size (reports/full)")
    parser.add_argument(
        "--size",
        choices=SIZE_CHOICES,
        help="tour (default: studies 1-8 reduced), full (= --full) or tiny (all ten, seconds; a smoke test)",
    )
    parser.add_argument("--store", default="initlab-runs.sqlite", metavar="PATH", help="SQLite result store")
    parser.add_argument("--out", metavar="DIR", help="report folder (default reports/tour or reports/full)")
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        metavar="N",
        help="worker processes, one torch thread each (default 2; 1 = this process)",
    )
    parser.add_argument(
        "--markdown",
        action="store_true",
        help="print the claim table as Markdown on stdout (the README's table; messages go to stderr)",
    )
    parser.add_argument(
        "--markdown-into",
        action="append",
        metavar="FILE",
        help="replace the marked claim table of FILE (README.md, docs/claims.md) with this run's; repeatable",
    )
    parser.set_defaults(handler=run)
