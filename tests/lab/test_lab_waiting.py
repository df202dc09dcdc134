"""A waiting driver says what it waits for; workers die with their driver; worker counts are bounded."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from initlab.errors import InitlabError
from initlab.lab.config import expand, load_study
from initlab.lab.executors import MAX_WORKERS, DaskExecutor, ProcessExecutor, make_executor
from initlab.lab.runner import SilentProgress, run_study
from initlab.lab.store import CLAIM_LEASE, Store

STUDY = {
    "name": "wait",
    "dataset": {"name": "teacher", "n_train": 64, "n_test": 32, "input_dim": 4},
    "model": {"depth": 1, "width": 4},
    "training": {"steps": 1, "log_every": 1, "batch_size": 16},
    "grid": {"training.seed": [0, 1]},
}


class Notes(SilentProgress):
    def __init__(self, on_note):
        self.lines, self.on_note = [], on_note

    def note(self, message):
        self.lines.append(message)
        self.on_note()


def test_a_driver_waiting_for_another_process_says_whose_claim_since_and_until_when(tmp_path):
    study = load_study(STUDY)
    held = expand(study)[1].key
    with Store(tmp_path / "s.sqlite") as store:
        claimed_at = time.time() - 120
        store.connection.execute(
            "INSERT INTO claims (run_key, host, pid, claimed_at) VALUES (?, ?, ?, ?)",
            (held, store.host, os.getppid(), claimed_at),
        )

        def peer_finishes():  # the other process stores its run after the first note
            store.record({"key": held, "status": "done", "summary": {}, "history": {}}, {}, "v")

        progress = Notes(peer_finishes)
        report = run_study(study, store, progress=progress, poll_seconds=0.01)
    assert report.trained == 1 and report.by_other_process == 1
    (line,) = progress.lines
    since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(claimed_at))
    until = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(claimed_at + CLAIM_LEASE))
    assert line == (
        f"waiting for 1 run(s) claimed by process {os.getppid()} on {store.host} since {since} (2 min ago); "
        f"they are taken over when it dies, or at the latest at {until} (claim lease 24 h)"
    )


def _process_state(pid):
    try:
        with open(f"/proc/{pid}/status") as handle:
            return next(line.split()[1] for line in handle if line.startswith("State:"))
    except (FileNotFoundError, ProcessLookupError):
        return "gone"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_worker_exits_when_its_driver_is_killed_mid_task(tmp_path):
    driver = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import os, time
            from initlab.lab.executors import ProcessExecutor

            if __name__ == "__main__":
                executor = ProcessExecutor(1)
                print(executor.submit(os.getpid).result(), flush=True)
                executor.submit(time.sleep, 120)
                time.sleep(120)
        """)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        worker = int(driver.stdout.readline())
        time.sleep(0.5)  # the worker is now inside time.sleep(120)
        assert _process_state(worker) in ("S", "R")
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
        deadline = time.monotonic() + 30
        while _process_state(worker) not in ("gone", "Z") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _process_state(worker) in ("gone", "Z")
    finally:
        driver.kill()
        driver.wait()


@pytest.mark.parametrize("kind", ["process", "dask"])
@pytest.mark.parametrize("workers", [0, -1, MAX_WORKERS + 1, True, 2.0])
def test_a_bad_worker_count_is_a_named_error_before_anything_starts(kind, workers):
    with pytest.raises(InitlabError, match=rf"^--workers={workers!r} is invalid; expected an integer in \[1, 256\]\.$"):
        make_executor(kind, workers=workers)


@pytest.mark.parametrize("cls", [ProcessExecutor, DaskExecutor])
def test_executors_check_their_worker_count_too(cls):
    with pytest.raises(InitlabError, match=r"--workers=0 is invalid"):
        cls(workers=0)
