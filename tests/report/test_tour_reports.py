"""`initlab tour` and `initlab report` end to end at tiny size, and every page in a real browser.

One tiny tour (all ten studies, two worker processes, a real SQLite store) is run through
the command line once per module; the tests read its outputs: the claim table printed,
``index.html`` / the study pages / ``summary.md``, a second tour that trains nothing, and
``initlab report`` re-rendering from the store.
"""

from __future__ import annotations

import contextlib
import io
import re
import sqlite3

import pytest

from initlab.cli import main
from initlab.lab import Store
from initlab.lab.tour import BUILTIN_STUDIES, builtin_study, claim_from_store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    """Datasets cached in a folder of this module, never in the user's cache."""
    patch = pytest.MonkeyPatch()
    patch.setenv("INITLAB_CACHE", str(tmp_path_factory.mktemp("initlab-cache")))
    yield
    patch.undo()


@pytest.fixture(scope="module")
def tiny_tour(tmp_path_factory, private_cache):
    """Run ``initlab tour --size tiny`` once; (store path, report folder, stdout)."""
    folder = tmp_path_factory.mktemp("tour")
    store, out = folder / "runs.sqlite", folder / "reports"
    status, printed = _run_cli(["tour", "--size", "tiny", "--store", str(store), "--out", str(out),
                                "--workers", "2"])
    assert status == 0, printed
    return store, out, printed


def _run_cli(argv):
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        status = main(argv)
    return status, stdout.getvalue()


def test_tour_prints_the_claim_table_with_the_stored_verdicts(tiny_tour):
    store_path, _, printed = tiny_tour
    assert "initlab tour: the claims, measured" in printed
    printed_verdicts = dict(re.findall(r"^│\s*\d+ │ (\S+)\s*│.*│ (holds|does not hold)\s*│$", printed,
                                       flags=re.MULTILINE))
    with Store(store_path) as store:
        stored_verdicts = {name: "holds" if claim_from_store(builtin_study(name, "tiny"), store).holds
                           else "does not hold" for name in BUILTIN_STUDIES}
    assert printed_verdicts == stored_verdicts
    assert re.search(r"tour: \d+ runs \(\d+ trained by this call", printed)


def test_tiny_tour_says_it_is_a_smoke_test_on_the_terminal_and_in_the_reports(tiny_tour):
    from initlab.report.tour import SMOKE_TEST_WARNING

    _, out, printed = tiny_tour
    assert f"tour: {SMOKE_TEST_WARNING}" in printed
    assert 'id="size-warning"' in (out / "index.html").read_text()
    assert "verdicts are not evidence" in (out / "index.html").read_text()
    assert f"> **{SMOKE_TEST_WARNING}**" in (out / "summary.md").read_text()


def test_second_tour_trains_nothing_redraws_nothing_and_prints_the_same_verdicts(tiny_tour):
    store_path, out, first = tiny_tour
    runs_before = sqlite3.connect(store_path).execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    pages = {name: (out / f"{name}.html").stat().st_mtime_ns for name in BUILTIN_STUDIES}
    status, printed = _run_cli(["tour", "--size", "tiny", "--store", str(store_path), "--out", str(out)])
    assert status == 0
    assert "(0 trained by this call" in printed
    assert {name: (out / f"{name}.html").stat().st_mtime_ns for name in BUILTIN_STUDIES} == pages
    assert sqlite3.connect(store_path).execute("SELECT COUNT(*) FROM runs").fetchone()[0] == runs_before
    verdicts = lambda text: re.findall(r"(does not hold|holds)", text)  # noqa: E731
    assert verdicts(printed) == verdicts(first)


def test_report_rerenders_from_the_store(tiny_tour, tmp_path):
    store_path, _, _ = tiny_tour
    status, printed = _run_cli(["report", "--tour", "--size", "tiny", "--store", str(store_path),
                                "--out", str(tmp_path)])
    assert status == 0 and (tmp_path / "index.html").is_file()
    assert sorted(p.stem for p in tmp_path.glob("*.html")) == sorted([*BUILTIN_STUDIES, "index"])
    status, printed = _run_cli(["report", "pairing", "--size", "tiny", "--store", str(store_path),
                                "--out", str(tmp_path / "one")])
    assert status == 0 and (tmp_path / "one" / "pairing.html").is_file()
    assert printed.startswith("pairing: the claim ")


@pytest.mark.parametrize("argv,message", [
    (["report", "nope", "--size", "tiny"], "STUDY='nope' is invalid; expected one of symmetry"),
    (["report", "--size", "tiny"], "give exactly one of STUDY or --tour"),
    (["report", "lsuv", "--size", "tour"], "no stored runs of study 'lsuv.tour'"),
    (["tour", "--full", "--size", "tiny"], "--size='tiny' contradicts --full"),
])
def test_report_and_tour_refuse_bad_input(tiny_tour, argv, message, capsys):
    store_path, _, _ = tiny_tour
    status = main([*argv, "--store", str(store_path)])
    assert status == 2
    assert message in capsys.readouterr().err


def test_markdown_summary_has_the_claim_table_and_every_study(tiny_tour):
    _, out, _ = tiny_tour
    text = (out / "summary.md").read_text()
    assert "| # | study | claim | measured evidence | verdict |" in text
    for name in BUILTIN_STUDIES:
        assert f"| {name} |" in text
    assert text.count("**Verdict: the claim") == len(BUILTIN_STUDIES)


def test_pages_are_self_contained(tiny_tour):
    _, out, _ = tiny_tour
    for page in out.glob("*.html"):
        text = page.read_text()
        assert "<script" not in text and "http://" not in text and "https://" not in text
        assert 'src="data:image/png;base64,' in text or page.stem == "index"


@pytest.mark.browser
def test_every_page_loads_in_chromium_with_figures_and_no_errors(tiny_tour, browser):
    _, out, _ = tiny_tour
    for name in ["index", *BUILTIN_STUDIES]:
        check = browser.check(out / f"{name}.html", screenshot_name=f"{name}.png")
        assert check.console_errors == [] and check.dialogs == []
        assert check.screenshot.stat().st_size > 10_000
        if name == "index":
            assert check.title == "initlab tour (tiny size)"
            assert all(study in check.text for study in BUILTIN_STUDIES)
            continue
        assert check.figures, name
        for figure in check.figures:
            assert figure["complete"] and figure["width"] > 100 and figure["height"] > 100, (name, figure)
            assert figure["natural_width"] > 100, (name, figure)
        assert "Verdict: the claim" in check.text and "Claim." in check.text and "Why" in check.text
