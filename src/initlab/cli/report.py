"""``initlab report STUDY|--tour``: re-render a built-in study's report (or the tour's) from the store."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from initlab.cli.tour import SIZE_CHOICES, heading, out_dir_of, size_of, size_warning
from initlab.errors import InitlabError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``initlab report``."""
    parser = subparsers.add_parser(
        "report",
        help="re-render a built-in study's report (or the tour's) from the store",
        description="Render STUDY's HTML page, or with --tour every stored tour study, the index and the "
        "Markdown summary, from the store without training.",
    )
    parser.add_argument("study", nargs="?", metavar="STUDY", help="a built-in study, e.g. pairing")
    parser.add_argument("--tour", action="store_true", help="the whole tour: pages, index.html, summary.md")
    parser.add_argument("--full", action="store_true", help="the full-size studies (from `initlab tour --full`)")
    parser.add_argument("--size", choices=SIZE_CHOICES, help="which stored size to render (default tour)")
    parser.add_argument("--store", default="initlab-runs.sqlite", metavar="PATH", help="SQLite result store")
    parser.add_argument("--out", metavar="DIR", help="report folder (default reports/tour or reports/full)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handler of ``initlab report``: re-render one study or the tour from the store."""
    from initlab.lab.store import Store
    from initlab.lab.tour import BUILTIN_STUDIES, builtin_study, stored_studies, study_names
    from initlab.report.study_html import write_study_html
    from initlab.report.tour import load_pages, print_claim_table, render_studies

    if (args.study is None) == (not args.tour):
        raise InitlabError("report: give exactly one of STUDY or --tour.")
    if not Path(args.store).is_file():
        raise InitlabError(
            f"--store={args.store!r} is invalid; expected an existing store file (run `initlab tour` first)."
        )
    size = size_of(args)
    out_dir = out_dir_of(args, size)
    with Store(args.store, read_only=True) as store:
        if args.tour:
            studies = stored_studies(study_names(size), size, store)
            if not studies:
                raise InitlabError(
                    f"report --tour: no stored runs of the {size}-size studies in {args.store}; "
                    f"expected a store written by `initlab tour --size {size}`."
                )
            note = f"re-rendered from {args.store} without training."
            table = render_studies(
                studies, store, out_dir, heading=heading(size), note=note, warning=size_warning(size)
            )
            print_claim_table(table, sys.stdout)
            if size_warning(size):
                print(f"report: {size_warning(size)}")
            print(f"reports: {out_dir / 'index.html'} (and {out_dir / 'summary.md'})")
            return 0
        if args.study not in BUILTIN_STUDIES:
            raise InitlabError(
                f"report: STUDY={args.study!r} is invalid; expected one of {', '.join(BUILTIN_STUDIES)}."
            )
        study = builtin_study(args.study, size)
        if not store.study_runs(study):
            raise InitlabError(
                f"report: no stored runs of study {study.name!r} in {args.store}; expected "
                f"a store where it ran (`initlab tour --size {size}`), or another --size."
            )
        (page,) = load_pages([study], store)
        path = write_study_html(page, out_dir)
    state = {"holds": "holds", "does not hold": "does NOT hold"}.get(page.claim.state, "has no evidence")
    print(f"{args.study}: the claim {state} — {page.claim.detail}")
    print(f"report: {path}")
    return 0
