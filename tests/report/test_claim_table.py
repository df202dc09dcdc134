"""The README's and the docs' claim table are what this checkout's `initlab tour --markdown` prints.

The tour runs at its default size into a fresh store (a minute or two on two cores, hence
``slow``). Its numbers are deterministic for a given CPU and torch build; on another machine
(another BLAS, another instruction set) the last digits of some numbers may differ while the
verdicts do not: regenerate with ``make claim-table`` there and the test passes again.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from initlab.cli import main
from initlab.errors import InitlabError
from initlab.report.markdown import TABLE_END, TABLE_START, claim_table_block, replace_claim_table

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def printed_table(tmp_path_factory):
    patch = pytest.MonkeyPatch()
    patch.setenv("INITLAB_CACHE", str(tmp_path_factory.mktemp("initlab-cache")))
    folder = tmp_path_factory.mktemp("claim-table")
    stdout = io.StringIO()
    try:
        with contextlib.redirect_stdout(stdout):
            status = main(["tour", "--store", str(folder / "runs.sqlite"), "--out", str(folder / "reports"),
                           "--markdown"])
    finally:
        patch.undo()
    assert status == 0
    return stdout.getvalue().strip("\n")


@pytest.mark.slow
@pytest.mark.parametrize("document", ["README.md", "docs/claims.md"])
def test_committed_claim_table_is_what_the_tour_prints(printed_table, document):
    assert printed_table.startswith("| # | study | claim | measured evidence | verdict |")
    assert claim_table_block((ROOT / document).read_text(encoding="utf-8")) == printed_table


def test_the_table_block_is_replaced_between_its_markers_only():
    text = f"before\n{TABLE_START}\nold table\n{TABLE_END}\nafter\n"
    replaced = replace_claim_table(text, "| new |\n", "x.md")
    assert replaced == f"before\n{TABLE_START}\n| new |\n{TABLE_END}\nafter\n"
    assert claim_table_block(replaced) == "| new |"
    with pytest.raises(InitlabError, match=r"--markdown-into='x.md' is invalid; expected a file with the lines"):
        replace_claim_table("no markers", "| new |", "x.md")
