"""Executors: a real process pool whose workers die, and a real Dask LocalCluster started here."""

import functools
import os
import sys
from pathlib import Path

import pytest

from initlab.errors import InitlabError
from initlab.lab.config import load_study
from initlab.lab.executors import DaskExecutor, ProcessExecutor, WorkerLost, make_executor
from initlab.lab.runner import run_study, train_task
from initlab.lab.store import Store

STUDY = {
    "name": "exec",
    "dataset": {"name": "mnist1d", "n_train": 512, "n_test": 256},
    "model": {"depth": 1, "width": 16, "activation": "tanh", "weight_init": "glorot_normal"},
    "training": {"steps": 20, "log_every": 10, "batch_size": 64, "probe_size": 64},
    "grid": {"model.width": [16, 17, 19], "training.seed": [0, 1]},
}


def dying_task(marker_dir, items):
    """Train a group, but kill the worker process: always for width 17, on the first try for width 19."""
    width = items[0][1]["model"]["width"]
    marker = Path(marker_dir) / f"tried-{width}"
    if width == 17 or (width == 19 and not marker.exists()):
        marker.touch()
        os._exit(3)
    return train_task(items)


def _check_dead_worker_handling(executor, tmp_path):
    study = load_study(STUDY)
    with Store(tmp_path / "runs.sqlite") as store:
        report = run_study(study, store, executor, task=functools.partial(dying_task, str(tmp_path)))
        rows = {row["point"]["model.width"]: row for row in store.runs()}
        statuses = sorted((row["point"]["model.width"], row["status"]) for row in store.runs())
    assert statuses == [(16, "done"), (16, "done"), (17, "failed"), (17, "failed"), (19, "done"), (19, "done")]
    assert report.failed == 2 and report.trained == 4
    # width 17 died twice (first try + one retry), width 19 once
    assert report.retried == 2
    assert rows[17]["error"] and rows[19]["error"] == ""


def test_process_pool_retries_a_dead_worker_once_then_records_failed(tmp_path):
    executor = ProcessExecutor(2)
    try:
        _check_dead_worker_handling(executor, tmp_path)
    finally:
        executor.close()


def test_process_pool_reports_worker_loss_and_task_errors():
    executor = ProcessExecutor(1)
    try:
        lost = executor.submit(os._exit, 5)
        with pytest.raises(WorkerLost, match=r"died \(exit code 5\)"):
            lost.result(timeout=60)
        failing = executor.submit(int, "x")
        with pytest.raises(RuntimeError, match=r"ValueError: invalid literal"):
            failing.result(timeout=60)
        assert executor.submit(abs, -4).result(timeout=60) == 4
    finally:
        executor.close()


def _torch_threads():
    import torch

    return torch.get_num_threads()


def test_process_pool_sets_the_workers_torch_threads_and_leaves_the_caller_alone():
    before = _torch_threads()
    executor = ProcessExecutor(1, torch_threads=before + 1)  # differs from the caller's count
    try:
        assert executor.submit(_torch_threads).result(timeout=60) == before + 1
    finally:
        executor.close()
    assert _torch_threads() == before
    with pytest.raises(InitlabError, match=r"ProcessExecutor: torch_threads=0 is invalid; expected a positive"):
        ProcessExecutor(1, torch_threads=0)


def test_bad_executor_options():
    with pytest.raises(InitlabError, match=r"--executor='slurm' is invalid; expected one of inline, process, dask"):
        make_executor("slurm")
    with pytest.raises(InitlabError, match=r"--workers=0 is invalid; expected an integer in \[1, 256\]"):
        make_executor("process", workers=0)
    with pytest.raises(InitlabError, match=r"--scheduler='tcp://x:1' is only valid with --executor dask"):
        make_executor("process", scheduler="tcp://x:1")


@pytest.fixture(scope="module")
def dask_executor():
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    executor = DaskExecutor(workers=2)
    yield executor
    executor.close()


def test_dask_cluster_results_equal_in_process_results(dask_executor, tmp_path):
    assert len(dask_executor.client.scheduler_info()["workers"]) == 2
    study = load_study(STUDY)
    with Store(tmp_path / "dask.sqlite") as store:
        report = run_study(study, store, dask_executor)
        distributed = {row["key"]: row for row in store.runs()}
    with Store(tmp_path / "inline.sqlite") as store:
        run_study(study, store)
        inline = {row["key"]: row for row in store.runs()}
    assert report.trained == 6 and distributed.keys() == inline.keys()
    for key, row in inline.items():
        other = distributed[key]["summary"]
        for name in ("train_loss", "test_loss", "weight_norm"):
            assert other[name] == pytest.approx(row["summary"][name], rel=1e-5)
        assert distributed[key]["trained_by"] == row["trained_by"]  # only the driver writes


def test_dask_dead_worker_is_retried_once_then_recorded_failed(dask_executor, tmp_path):
    _check_dead_worker_handling(dask_executor, tmp_path)


class _RecordingExecutor:
    """Runs nothing: records each submitted group's widths and returns failed results."""

    slots = 1

    def __init__(self):
        self.widths = []

    def submit(self, fn, items):
        from concurrent.futures import Future

        self.widths.append([config["model"]["width"] for _, config in items])
        future = Future()
        future.set_result([{"key": key, "status": "failed", "summary": {}, "history": {}, "error": "skipped",
                            "duration": 0.0} for key, _ in items])
        return future


def test_groups_go_to_the_executor_largest_first_ties_in_file_order(tmp_path):
    study = load_study({**STUDY, "grid": {"model.width": [16, 64, 17, 32], "training.seed": [0, 1]},
                        "execution": {"max_batch_runs": 1}})
    executor = _RecordingExecutor()
    with Store(tmp_path / "runs.sqlite") as store:
        run_study(study, store, executor)
    assert executor.widths == [[64], [64], [32], [32], [17], [17], [16], [16]]
