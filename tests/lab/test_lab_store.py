"""The SQLite store: migrations, exactly-once runs, kill -9 safety, two processes sharing one store."""

import json
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from initlab.errors import InitlabError
from initlab.lab.store import MIGRATIONS, SCHEMA_VERSION, Store, _pid_alive, migrate

PYTHON = sys.executable


def _result(key, status="done", value=1.0):
    return {"key": key, "status": status, "summary": {"test_accuracy": value}, "history": {"step": [0]},
            "error": "boom" if status == "failed" else "", "duration": 0.1}


def test_store_migrates_an_old_schema_and_keeps_its_runs(tmp_path):
    path = tmp_path / "old.sqlite"
    connection = sqlite3.connect(path, isolation_level=None)
    assert migrate(connection, target=1) == 1
    connection.execute("INSERT INTO runs (key, status, config, code_version, summary, history, finished_at) "
                       "VALUES ('k1', 'done', '{}', 'v', '{}', '{}', 0)")
    connection.close()
    with Store(path) as store:
        assert store.connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == len(MIGRATIONS)
        assert store.connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.finished_keys(["k1", "k2"]) == {"k1"}
        assert store.claim(["k1", "k2"]) == ["k2"]


def test_store_from_a_newer_initlab_is_refused(tmp_path):
    path = tmp_path / "new.sqlite"
    connection = sqlite3.connect(path)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.close()
    with pytest.raises(InitlabError, match=rf"schema version {SCHEMA_VERSION + 1} is newer .* expected <= {SCHEMA_VERSION}"):
        Store(path)


def test_failed_runs_are_replaced_final_runs_never(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        store.record(_result("a", "failed"), {"x": 1}, "v")
        assert store.finished_keys(["a"]) == set()
        store.record(_result("a", "done", 0.5), {"x": 1}, "v")
        store.record(_result("a", "done", 0.9), {"x": 1}, "v")
        (row,) = store.runs()
        assert row["status"] == "done" and row["summary"]["test_accuracy"] == 0.5 and row["error"] == ""
        assert store.run("a")["history"] == {"step": [0]}
        with pytest.raises(InitlabError, match=r"RUN='zz' matches no run"):
            store.run("zz")


def test_claims_of_a_dead_process_are_taken_over(tmp_path):
    path = tmp_path / "s.sqlite"
    child = subprocess.run([PYTHON, "-c", textwrap.dedent(f"""
        from initlab.lab.store import Store
        print(Store({str(path)!r}).claim(["a", "b"]))
    """)], capture_output=True, text=True, check=True)
    assert child.stdout.strip() == "['a', 'b']"
    with Store(path) as store:
        # the claiming process has exited: its claims are stale
        assert store.claim(["a", "b", "c"]) == ["a", "b", "c"]
        store.connection.execute("UPDATE claims SET pid = ? WHERE run_key = 'a'", (os.getppid(),))
        assert store.claimed_elsewhere(["a", "b"]) == {"a"}


@pytest.mark.skipif(os.name != "posix", reason="the signal-0 check is the POSIX path")
def test_pid_alive_asks_posix_with_signal_zero_and_leaves_the_process_running():
    child = subprocess.Popen([PYTHON, "-c", "import time; time.sleep(60)"])
    try:
        assert _pid_alive(child.pid) and _pid_alive(os.getpid())
        assert child.poll() is None  # signal 0 did not stop it
    finally:
        child.kill()
        child.wait()
    assert not _pid_alive(child.pid)


def test_pid_alive_sends_no_signal_where_os_kill_would_terminate(monkeypatch):
    def kill(pid, sig):
        raise AssertionError(f"os.kill({pid}, {sig}) was called")

    monkeypatch.setattr(os, "kill", kill)
    monkeypatch.setattr(os, "name", "nt")
    alive = _pid_alive(2 ** 22 + 1)  # no such process; unknown without asking, so assumed running
    monkeypatch.undo()
    assert alive


STUDY = """
name = "killable"
[dataset]
name = "mnist1d"
n_train = 1024
n_test = 256
[model]
width = 32
activation = "tanh"
weight_init = "glorot_normal"
[training]
steps = {steps}
log_every = 50
batch_size = 64
[grid]
"model.depth" = [1, 2, 3, 4, 5, 6]
"training.seed" = [0, 1]
"""


def _start(study, store, *extra):
    return subprocess.Popen([PYTHON, "-m", "initlab.cli", "run", str(study), "--store", str(store), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _count(store) -> int:
    if not store.exists():
        return 0
    connection = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=30)
    try:
        return connection.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        connection.close()


def test_kill_9_mid_study_then_resume_stores_every_run_once(tmp_path):
    study, store = tmp_path / "study.toml", tmp_path / "runs.sqlite"
    study.write_text(STUDY.format(steps=150))
    process = _start(study, store, "--quiet")
    deadline = time.monotonic() + 120
    while _count(store) < 1 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = _count(store)
    assert 1 <= before < 12, "the kill must land mid-study"
    with Store(store) as opened:
        first_rows = {row["key"]: row["finished_at"] for row in opened.runs()}
    resumed = _start(study, store, "--quiet")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["already_stored"] == before and report["trained"] == 12 - before
    with Store(store) as opened:
        rows = opened.runs()
        assert opened.integrity_check() == "ok"
    assert len(rows) == 12 and len({row["key"] for row in rows}) == 12
    assert all(row["status"] == "done" for row in rows)
    # runs stored before the kill were not trained again
    assert all(row["finished_at"] == first_rows[row["key"]] for row in rows if row["key"] in first_rows)


def test_two_processes_on_one_store_share_the_work(tmp_path):
    study, store = tmp_path / "study.toml", tmp_path / "runs.sqlite"
    study.write_text(STUDY.format(steps=60))
    first, second = _start(study, store, "--quiet"), _start(study, store, "--quiet")
    reports = []
    for process in (first, second):
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    assert sum(report["trained"] for report in reports) == 12
    for report in reports:
        assert report["trained"] + report["by_other_process"] + report["already_stored"] == 12
    with Store(store) as opened:
        rows = opened.runs()
        assert opened.integrity_check() == "ok"
        assert opened.connection.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0
    assert len(rows) == 12 and len({row["key"] for row in rows}) == 12
    assert {row["trained_by"].split(":")[1] for row in rows} <= {str(first.pid), str(second.pid)}


def _open_when_released(path, barrier, results):
    barrier.wait()
    try:
        with Store(path):
            results.put("ok")
    except InitlabError as error:
        results.put(str(error))


def test_processes_opening_a_new_store_at_the_same_moment_all_succeed(tmp_path):
    # before the WAL switch was retried, 11 of 30 such rounds had a 'database is locked' failure
    context = multiprocessing.get_context("fork")
    for round_ in range(20):
        path, barrier, results = tmp_path / f"runs{round_}.sqlite", context.Barrier(4), context.Queue()
        processes = [context.Process(target=_open_when_released, args=(path, barrier, results)) for _ in range(4)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=120)
        assert [results.get(timeout=10) for _ in processes] == ["ok"] * 4
