"""Atomic output files: a named error for every bad path, never a truncated file."""

import os

import pytest

from initlab._io import make_folder, write_atomically
from initlab.errors import InitlabError


def test_writes_text_and_bytes_and_replaces(tmp_path):
    target = tmp_path / "report.html"
    write_atomically(target, "first", "audit", "--html")
    write_atomically(target, b"second", "audit", "--html")
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]  # no temporary file left


def test_missing_folder_is_named(tmp_path):
    path = tmp_path / "nowhere" / "report.html"
    with pytest.raises(InitlabError) as error:
        write_atomically(path, "x", "initlab audit", "--html")
    assert str(error.value) == (
        f"initlab audit: --html={str(path)!r} is invalid: the folder {str(path.parent)!r} does not exist; "
        "expected a file path in an existing folder."
    )


def test_a_folder_is_not_a_file(tmp_path):
    with pytest.raises(InitlabError, match=r"--json=.* is invalid: it is a folder; expected a file path"):
        write_atomically(tmp_path, "x", "initlab audit", "--json")


def test_unwritable_folder_leaves_nothing(tmp_path, monkeypatch):
    import tempfile

    def denied(**kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(InitlabError) as error:
        write_atomically(tmp_path / "report.html", "x", "initlab audit", "--html")
    assert str(error.value) == (
        f"initlab audit: could not write --html={str(tmp_path / 'report.html')!r}: Permission denied; "
        "nothing was written."
    )
    assert list(tmp_path.iterdir()) == []


def test_full_disk_leaves_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "report.html"
    target.write_text("previous")

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(InitlabError, match=r"could not write --html=.*: the disk is full; nothing was written"):
        write_atomically(target, "new content", "initlab audit", "--html")
    assert target.read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_make_folder_names_a_file_in_the_way(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InitlabError, match=r"tour report: --out=.* is invalid: the folder cannot be created"):
        make_folder(tmp_path / "file" / "sub", "tour report", "--out")

