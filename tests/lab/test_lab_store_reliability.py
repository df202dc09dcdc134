"""The store under hostile use: study versions, claims without evidence, read-only reads, foreign files."""

import json
import os
import sqlite3

import pytest

from initlab.cli import main
from initlab.errors import InitlabError
from initlab.lab.claims import evaluate_claim
from initlab.lab.config import expand, load_study, study_version
from initlab.lab.runner import run_study
from initlab.lab.store import SCHEMA_VERSION, Store, migrate

BASE = """
name = "versions"
[dataset]
name = "digits"
[model]
depth = 1
width = 8
activation = "tanh"
[training]
steps = 2
log_every = 1
batch_size = 16
[grid]
"model.weight_init" = {inits}
[claim]
name = "compare"
params = {{metric = "weight_norm", a = {{"model.weight_init" = "glorot_normal"}}, b = {{"model.weight_init" = {{scheme = "normal", std = 0.01}}}}, op = ">"}}
"""
BOTH = '["glorot_normal", {scheme = "normal", std = 0.01}]'


def _study(tmp_path, inits=BOTH, name="versions"):
    path = tmp_path / f"{name}-{abs(hash(inits))}.toml"
    path.write_text(BASE.format(inits=inits).replace('"versions"', f'"{name}"'))
    return load_study(path)


def _strict_json(text):
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_an_edited_study_is_a_new_version_whose_claim_reads_only_its_own_runs(tmp_path):
    first = _study(tmp_path)
    edited = _study(tmp_path, inits='["glorot_normal"]')
    assert study_version(first) != study_version(edited)
    with Store(tmp_path / "s.sqlite") as store:
        assert run_study(first, store).claim.holds
        report = run_study(edited, store)
        # before versions: the claim read the first version's 'b' runs too and held
        assert report.claim.state == "no evidence" and not report.claim.holds
        assert {row["key"] for row in store.study_runs(edited)} == {run.key for run in expand(edited)}
        assert len(store.study_runs(first)) == 2 and len(store.runs(study="versions")) == 2
        assert _strict_json(json.dumps(report.to_dict()["claim"]))["values"] == {"a": None, "b": None}


def test_a_user_study_named_like_a_builtin_does_not_change_the_builtin_report(tmp_path, capsys):
    from initlab.lab.tour import builtin_study

    impostor = _study(tmp_path, name="symmetry.tiny")
    store_path = tmp_path / "s.sqlite"
    with Store(store_path) as store:
        run_study(impostor, store)
        assert store.study_runs(builtin_study("symmetry", "tiny")) == []
    code = main(["report", "symmetry", "--size", "tiny", "--store", str(store_path), "--out", str(tmp_path / "r")])
    assert code == 2 and "no stored runs of study 'symmetry.tiny'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_claim_whose_selector_matches_no_run_has_no_evidence_and_valid_json(tmp_path, capsys):
    study = tmp_path / "s.toml"
    study.write_text(BASE.format(inits='["glorot_normal"]'))
    assert main(["run", str(study), "--store", str(tmp_path / "s.sqlite"), "--quiet"]) == 0
    claim = _strict_json(capsys.readouterr().out)["claim"]
    assert claim["state"] == "no evidence" and claim["holds"] is False
    assert claim["detail"].startswith("no evidence: b={'model.weight_init': {'scheme': 'normal', 'std': 0.01}} matches 0 run(s)")
    empty = evaluate_claim("compare", {"metric": "x", "a": {"k": 1}, "b": {"k": 2}}, [])
    assert empty.state == "no evidence" and empty.detail.startswith("no evidence: a={'k': 1} matches 0 run(s)")


def _schema_2_copy(source, target):
    """A store as initlab wrote it before study versions (schema 2), with the same runs."""
    old = sqlite3.connect(target, isolation_level=None)
    migrate(old, target=2)
    new = sqlite3.connect(source)
    columns = "key, status, config, code_version, summary, history, error, duration, finished_at, trained_by"
    old.executemany(f"INSERT INTO runs ({columns}) VALUES ({','.join('?' * 10)})",
                    new.execute(f"SELECT {columns} FROM runs").fetchall())
    old.executemany("INSERT OR REPLACE INTO study_runs (study, run_key, point) VALUES (?, ?, ?)",
                    new.execute("SELECT study, run_key, point FROM study_runs").fetchall())
    new.close()
    old.close()


def test_a_schema_2_store_stays_readable_read_only_untouched_and_migrates_when_written(tmp_path):
    first, edited = _study(tmp_path), _study(tmp_path, inits='["glorot_normal"]')
    with Store(tmp_path / "new.sqlite") as store:
        run_study(first, store)
        run_study(edited, store)
    legacy = tmp_path / "legacy.sqlite"
    _schema_2_copy(tmp_path / "new.sqlite", legacy)
    before, mtime = legacy.read_bytes(), legacy.stat().st_mtime_ns
    with Store(legacy, read_only=True) as store:
        # a legacy membership counts for a version when the run is one of that version's runs
        assert len(store.study_runs(first)) == 2 and len(store.study_runs(edited)) == 1
        assert evaluate_claim("compare", edited.claim.params, store.study_runs(edited)).state == "no evidence"
        assert store.run(store.study_runs(edited)[0]["key"][:6])["history"]
    assert legacy.read_bytes() == before and legacy.stat().st_mtime_ns == mtime
    with Store(legacy) as store:
        assert store.connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert len(store.study_runs(first)) == 2 and len(store.study_runs(edited)) == 1


def _foreign(tmp_path):
    path = tmp_path / "foreign.sqlite"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE notes (text TEXT)")
    connection.execute("INSERT INTO notes VALUES ('mine')")
    connection.commit()
    connection.close()
    return path


@pytest.mark.parametrize(
    "command",
    [
        ["runs", "list"],
        ["runs", "show", "ab"],
        ["runs", "export", "--csv", "OUT/x.csv"],
        ["report", "symmetry", "--size", "tiny", "--out", "OUT/r"],
        ["run", "STUDY"],
    ],
)
def test_a_file_that_is_not_a_store_is_a_named_error_and_stays_byte_identical(tmp_path, capsys, command):
    path = _foreign(tmp_path)
    study = tmp_path / "s.toml"
    study.write_text(BASE.format(inits='["glorot_normal"]'))
    before, mtime, listing = path.read_bytes(), path.stat().st_mtime_ns, sorted(os.listdir(tmp_path))
    argv = [part.replace("OUT", str(tmp_path)).replace("STUDY", str(study)) for part in command]
    assert main([*argv, "--store", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path} is not an initlab store (a SQLite file with tables ['notes']" in err
    assert "Traceback" not in err
    assert path.read_bytes() == before and path.stat().st_mtime_ns == mtime
    assert sorted(os.listdir(tmp_path)) == listing


def test_a_text_file_and_an_empty_file_are_not_stores(tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n" * 100)
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    for path in (text, empty):
        assert main(["runs", "list", "--store", str(path)]) == 2
        assert "not" in capsys.readouterr().err
    assert text.read_text() == "not a database\n" * 100 and empty.read_bytes() == b""


def test_read_commands_open_the_store_read_only(tmp_path, monkeypatch):
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        store.record({"key": "abc123", "status": "done", "summary": {}, "history": {"step": [0]}}, {}, "v")
    opened = []
    original = Store.__init__

    def spy(self, *args, **options):
        opened.append(options.get("read_only", False))
        original(self, *args, **options)

    monkeypatch.setattr(Store, "__init__", spy)
    assert main(["runs", "list", "--store", str(path)]) == 0
    assert main(["runs", "show", "abc", "--store", str(path)]) == 0
    assert main(["runs", "export", "--csv", str(tmp_path / "x.csv"), "--store", str(path)]) == 0
    assert opened == [True, True, True]
    with Store(path, read_only=True) as store:
        with pytest.raises(InitlabError, match=r"cannot be written \(read-only file or folder\)"):
            store.claim(["k"])


def test_a_wal_store_whose_folder_refuses_the_shm_file_is_read_immutable(tmp_path, monkeypatch):
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        store.record({"key": "abc123", "status": "done", "summary": {}, "history": {}}, {}, "v")
    connect = sqlite3.connect
    uris = []

    def refusing(database, *args, **options):
        uris.append(str(database))
        if "immutable" not in str(database):
            raise sqlite3.OperationalError("unable to open database file")
        return connect(database, *args, **options)

    monkeypatch.setattr(sqlite3, "connect", refusing)
    with Store(path, read_only=True) as store:
        assert [row["key"] for row in store.runs()] == ["abc123"]
    assert uris[-1].endswith("?mode=ro&immutable=1")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a POSIX user that permissions bind")
def test_a_store_in_a_read_only_folder_can_be_listed(tmp_path, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    with Store(folder / "s.sqlite") as store:
        store.record({"key": "abc123", "status": "done", "summary": {}, "history": {}}, {}, "v")
    folder.chmod(0o555)
    try:
        assert main(["runs", "list", "--store", str(folder / "s.sqlite")]) == 0
        assert "abc123" in capsys.readouterr().out
    finally:
        folder.chmod(0o755)


def test_runs_show_reads_one_run_not_the_store(tmp_path, monkeypatch):
    with Store(tmp_path / "s.sqlite") as store:
        for key in ("aaa1", "bbb2", "b%c3"):
            store.record({"key": key, "status": "done", "summary": {}, "history": {"k": [key]}}, {}, "v")
        monkeypatch.setattr(Store, "runs", lambda *a, **k: pytest.fail("runs show read every run"))
        assert store.run("aaa")["history"] == {"k": ["aaa1"]}
        # a LIKE wildcard in the prefix is a character, not a pattern
        with pytest.raises(InitlabError, match=r"RUN='%' matches no run"):
            store.run("%")
        with pytest.raises(InitlabError, match=r"RUN='b' matches 2 runs"):
            store.run("b")
