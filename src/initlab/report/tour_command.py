"""``initlab tour`` and ``initlab report``: run the built-in studies, render them from the store.

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


def _size(args: argparse.Namespace) -> str:
    """``--full`` means ``--size full``; the default size is ``tour``."""
    if args.full and args.size not in (None, "full"):
        raise InitlabError(f"--size={args.size!r} contradicts --full; give one of them.")
    return "full" if args.full else (args.size or "tour")


def _out_dir(args: argparse.Namespace, size: str) -> Path:
    return Path(args.out) if args.out else Path("reports") / size


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (worker processes), user + system."""
    times = os.times()  # the children's fields are 0 where the system does not report them (Windows)
    return times.user + times.system + times.children_user + times.children_system


def _executor(workers: int, pending: int):
    """Worker processes with one torch thread each when there is work for more than one, else inline
    (this process, its thread count untouched)."""
    from initlab.lab.executors import InlineExecutor, ProcessExecutor

    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InitlabError(f"--workers={workers!r} is invalid; expected a positive integer.")
    if workers == 1 or pending == 0:
        return InlineExecutor()
    return ProcessExecutor(workers, torch_threads=1)


def _heading(size: str) -> str:
    return "initlab tour" if size == "tour" else f"initlab tour ({size} size)"


def run_tour(args: argparse.Namespace) -> int:
    """Handler of ``initlab tour``: 0 when every run finished, 1 if some run failed."""
    from initlab.lab.store import Store
    from initlab.lab.tour import missing_runs, run_studies, total_runs, tour_studies
    from initlab.report.tour import TourProgress, print_claim_table, render_studies

    started, cpu_started = time.perf_counter(), _cpu_seconds()
    size = _size(args)
    studies = tour_studies(size)
    out_dir = _out_dir(args, size)
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
        note = (f"{sum(o.runs for o in outcomes)} runs ({trained} trained by this call, the rest read from "
                f"{args.store}); this call took {wall:.0f} s wall, {cpu:.0f} s CPU.")
        table = render_studies(studies, store, out_dir, heading=_heading(size), note=note, force=False)
        failed = sum(row["status"] == "failed" for study in studies for row in store.runs(study=study.name))
    print_claim_table(table, sys.stdout)
    print(f"reports: {out_dir / 'index.html'} (and {out_dir / 'summary.md'})")
    print(f"tour: {note}")
    if failed:
        print(f"tour: {failed} run(s) failed; see `initlab runs list --status failed --store {args.store}`.")
    return 1 if failed else 0


def run_report(args: argparse.Namespace) -> int:
    """Handler of ``initlab report``: re-render one study or the tour from the store."""
    from initlab.lab.store import Store
    from initlab.lab.tour import BUILTIN_STUDIES, builtin_study, stored_studies, study_names
    from initlab.report.study_html import write_study_html
    from initlab.report.tour import load_pages, print_claim_table, render_studies

    if (args.study is None) == (not args.tour):
        raise InitlabError("report: give exactly one of STUDY or --tour.")
    if not Path(args.store).is_file():
        raise InitlabError(f"--store={args.store!r} is invalid; expected an existing store file "
                           f"(run `initlab tour` first).")
    size = _size(args)
    out_dir = _out_dir(args, size)
    with Store(args.store) as store:
        if args.tour:
            studies = stored_studies(study_names(size), size, store)
            if not studies:
                raise InitlabError(f"report --tour: no stored runs of the {size}-size studies in {args.store}; "
                                   f"expected a store written by `initlab tour --size {size}`.")
            table = render_studies(studies, store, out_dir, heading=_heading(size),
                                   note=f"re-rendered from {args.store} without training.")
            print_claim_table(table, sys.stdout)
            print(f"reports: {out_dir / 'index.html'} (and {out_dir / 'summary.md'})")
            return 0
        if args.study not in BUILTIN_STUDIES:
            raise InitlabError(f"report: STUDY={args.study!r} is invalid; expected one of "
                               f"{', '.join(BUILTIN_STUDIES)}.")
        study = builtin_study(args.study, size)
        if not store.runs(study=study.name):
            raise InitlabError(f"report: no stored runs of study {study.name!r} in {args.store}; expected "
                               f"a store where it ran (`initlab tour --size {size}`), or another --size.")
        (page,) = load_pages([study], store)
        path = write_study_html(page, out_dir)
    print(f"{args.study}: the claim {'holds' if page.claim.holds else 'does NOT hold'} — {page.claim.detail}")
    print(f"report: {path}")
    return 0


def add_tour_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``initlab tour``."""
    parser = subparsers.add_parser(
        "tour", help="run the built-in studies (reduced) and print the claim table",
        description="Train the reduced built-in studies 1-8 (--full: all ten at full size), store every run "
                    "in the SQLite store (a second run is instant), write reports/tour/index.html and print "
                    "the claim table.",
    )
    parser.add_argument("--full", action="store_true", help="all ten studies at full size (reports/full)")
    parser.add_argument("--size", choices=SIZE_CHOICES,
                        help="tour (default: studies 1-8 reduced), full (= --full) or tiny (all ten, seconds; "
                             "a smoke test)")
    parser.add_argument("--store", default="initlab-runs.sqlite", metavar="PATH", help="SQLite result store")
    parser.add_argument("--out", metavar="DIR", help="report folder (default reports/tour or reports/full)")
    parser.add_argument("--workers", type=int, default=2, metavar="N",
                        help="worker processes, one torch thread each (default 2; 1 = this process)")
    parser.set_defaults(handler=run_tour)


def add_report_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``initlab report``."""
    parser = subparsers.add_parser(
        "report", help="re-render a built-in study's report (or the tour's) from the store",
        description="Render STUDY's HTML page, or with --tour every stored tour study, the index and the "
                    "Markdown summary, from the store without training.",
    )
    parser.add_argument("study", nargs="?", metavar="STUDY", help="a built-in study, e.g. pairing")
    parser.add_argument("--tour", action="store_true", help="the whole tour: pages, index.html, summary.md")
    parser.add_argument("--full", action="store_true", help="the full-size studies (from `initlab tour --full`)")
    parser.add_argument("--size", choices=SIZE_CHOICES, help="which stored size to render (default tour)")
    parser.add_argument("--store", default="initlab-runs.sqlite", metavar="PATH", help="SQLite result store")
    parser.add_argument("--out", metavar="DIR", help="report folder (default reports/tour or reports/full)")
    parser.set_defaults(handler=run_report)
