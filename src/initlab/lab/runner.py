"""The study runner: expand, skip what is stored, group, execute, store, check the claim.

:func:`run_study` expands a study into runs, records the study's membership
of every run, skips runs already final in the store (resume), batches the
rest into groups of runs that share a stacked model (at most
``execution.max_batch_runs`` each), hands the groups to the executor
largest first (:func:`group_work`, so the last group to finish is a small
one), claims each group just before handing it to the executor (so two processes on one store share the work), and
stores each finished run in its own transaction. A group whose worker dies
is retried once, then its runs are recorded ``failed`` with the error, and
the study goes on; so does a group that raises.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from typing import Any, Protocol

from initlab.lab.claims import ClaimResult, evaluate_claim
from initlab.lab.config import Run, RunConfig, StudyConfig, code_version, expand, group_key, study_version
from initlab.lab.executors import InlineExecutor, is_worker_loss
from initlab.lab.store import CLAIM_LEASE, Store

MAX_ATTEMPTS = 2
"""A group whose worker dies is tried at most this many times (one retry)."""

WAIT_NOTE_SECONDS = 60.0
"""While waiting for runs another process claimed, say so at least this often (first at once)."""


class Progress(Protocol):
    """What the runner reports to (the CLI renders it; see ``initlab.report.progress``)."""

    def start(self, study: str, total: int, done: int) -> None: ...

    def advance(self, result: dict[str, Any], description: str) -> None: ...

    def note(self, message: str) -> None: ...

    def finish(self) -> None: ...


class SilentProgress:
    """Reports nothing."""

    def start(self, study: str, total: int, done: int) -> None:
        """Nothing."""

    def advance(self, result: dict[str, Any], description: str) -> None:
        """Nothing."""

    def note(self, message: str) -> None:
        """Nothing."""

    def finish(self) -> None:
        """Nothing."""


@dataclass
class StudyReport:
    """What a call of :func:`run_study` did (plain data)."""

    study: str
    total: int
    already_stored: int
    trained: int = 0
    diverged: int = 0
    failed: int = 0
    retried: int = 0
    by_other_process: int = 0
    seconds: float = 0.0
    claim: ClaimResult | None = None
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = {
            name: getattr(self, name)
            for name in (
                "study",
                "total",
                "already_stored",
                "trained",
                "diverged",
                "failed",
                "retried",
                "by_other_process",
                "seconds",
                "errors",
            )
        }
        data["claim"] = None if self.claim is None else self.claim.to_dict()
        return data


def train_task(items: Sequence[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Worker entry point: train one group given as plain ``(key, config dict)`` pairs."""
    from initlab.lab.trainer import train_group

    runs = [(key, RunConfig.model_validate(config)) for key, config in items]
    return [result.to_dict() for result in train_group(runs)]


def plan_groups(runs: Sequence[Run], max_batch_runs: int) -> list[list[Run]]:
    """Runs grouped by :func:`group_key` (file order kept), split into chunks of ``max_batch_runs``."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(group_key(run.config), []).append(run)
    return [
        members[start : start + max_batch_runs]
        for members in groups.values()
        for start in range(0, len(members), max_batch_runs)
    ]


def group_work(group: Sequence[Run]) -> float:
    """A relative measure of the training work of ``group``, for ordering groups (not a time).

    Runs x hidden weights per example (``depth * width^2``) x examples the
    steps pass forward and back (``batch_size * steps``); evaluation is left
    out.
    """
    model, training = group[0].config.model, group[0].config.training
    return float(len(group) * model.depth * model.width**2 * training.batch_size * training.steps)


def describe(run: Run) -> str:
    """A short label of a run: its grid values, else its key."""
    if not run.point:
        return run.key
    return ", ".join(f"{key.split('.')[-1]}={_short(value)}" for key, value in run.point.items())


def _short(value: Any) -> str:
    if isinstance(value, dict):
        arguments = ",".join(f"{k}={v}" for k, v in value.items() if k != "scheme")
        return f"{value.get('scheme', '?')}({arguments})" if arguments else str(value.get("scheme", "?"))
    return str(value)


class _Driver:
    """State of one run_study call: the queue of groups, what is in flight, the report."""

    def __init__(self, study: StudyConfig, store: Store, executor, progress: Progress, task) -> None:
        self.study, self.store, self.executor, self.progress = study, store, executor, progress
        self.task = task
        self.runs = {run.key: run for run in expand(study)}
        self.code = code_version()
        self.in_flight: dict[Future, tuple[list[str], int]] = {}
        self.waiting: set[str] = set()
        self.claimed: set[str] = set()
        self.last_wait_note = -float("inf")

    def submit(self, keys: list[str], attempt: int) -> None:
        items = [(key, self.runs[key].config_dict()) for key in keys]
        self.in_flight[self.executor.submit(self.task, items)] = (keys, attempt)

    def fill(self, queue: deque, report: StudyReport) -> bool:
        """Claim and submit groups while there are free slots; whether anything was submitted."""
        submitted = False
        while queue and len(self.in_flight) < self.executor.slots:
            keys = queue.popleft()
            claimed = self.store.claim(keys)
            self.claimed.update(claimed)
            finished = self.store.finished_keys(set(keys) - set(claimed))
            self.count_others(finished, report)
            self.waiting.update(set(keys) - set(claimed) - finished)
            if claimed:
                self.submit(claimed, 1)
                submitted = True
        return submitted

    def count_others(self, finished: set[str], report: StudyReport) -> None:
        """Account for runs another process stored."""
        report.by_other_process += len(finished)
        for key in sorted(finished):
            self.progress.advance({"status": "stored by another process"}, describe(self.runs[key]))

    def collect(self, report: StudyReport) -> None:
        done, _ = wait(list(self.in_flight), return_when=FIRST_COMPLETED)
        for future in done:
            keys, attempt = self.in_flight.pop(future)
            error = future.exception()
            if error is None:
                for result in future.result():
                    self.store_result(result, report)
            elif is_worker_loss(error) and attempt < MAX_ATTEMPTS:
                report.retried += 1
                self.progress.note(f"worker lost ({error}); retrying {len(keys)} run(s) once")
                self.submit(keys, attempt + 1)
            else:
                text = f"{type(error).__name__}: {error}"
                report.errors.append(text)
                for key in keys:
                    self.store_result(
                        {"key": key, "status": "failed", "summary": {}, "history": {}, "error": text, "duration": 0.0},
                        report,
                    )

    def note_waiting(self) -> None:
        """Say which process holds the runs this one waits for, since when and until when
        (at most every :data:`WAIT_NOTE_SECONDS`)."""
        now = time.monotonic()
        if now - self.last_wait_note < WAIT_NOTE_SECONDS:
            return
        self.last_wait_note = now
        for line in waiting_lines(self.store.claim_holders(self.waiting), time.time()):
            self.progress.note(line)

    def store_result(self, result: dict[str, Any], report: StudyReport) -> None:
        run = self.runs[result["key"]]
        self.store.record(result, run.config_dict(), self.code)
        self.claimed.discard(result["key"])
        report.trained += result["status"] != "failed"
        report.diverged += result["status"] == "diverged"
        report.failed += result["status"] == "failed"
        self.progress.advance(result, describe(run))


def waiting_lines(holders: dict[str, tuple[str, int, float]], now: float) -> list[str]:
    """One line per process holding claims: how many runs, since when, until when at most.

    ``holders`` maps a run key to ``(host, pid, claimed_at)`` (see
    :meth:`~initlab.lab.store.Store.claim_holders`).
    """
    by_process: dict[tuple[str, int], list[float]] = {}
    for host, pid, claimed_at in holders.values():
        by_process.setdefault((host, pid), []).append(claimed_at)
    lines = []
    for (host, pid), times in sorted(by_process.items()):
        since, until = min(times), max(times) + CLAIM_LEASE
        lines.append(
            f"waiting for {len(times)} run(s) claimed by process {pid} on {host} since {_utc(since)} "
            f"({(now - since) / 60:.0f} min ago); they are taken over when it dies, or at the latest at "
            f"{_utc(until)} (claim lease {CLAIM_LEASE / 3600:.0f} h)"
        )
    return lines


def _utc(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


def run_study(
    study: StudyConfig,
    store: Store,
    executor=None,
    progress: Progress | None = None,
    *,
    poll_seconds: float = 0.5,
    task=train_task,
) -> StudyReport:
    """Run every run of ``study`` not yet final in ``store``; a :class:`StudyReport`.

    Args:
        study: a validated study.
        store: the result store (only this process writes it).
        executor: an executor from :func:`initlab.lab.executors.make_executor`
            (default: inline).
        progress: receives progress events (default: silent).
        poll_seconds: how often to look again at runs another process claimed.
        task: the picklable function a worker runs on one group (default
            :func:`train_task`; a wrapper may add instrumentation).
    """
    started = time.perf_counter()
    executor = executor or InlineExecutor()
    progress = progress or SilentProgress()
    driver = _Driver(study, store, executor, progress, task)
    runs = list(driver.runs.values())
    store.add_memberships(study.name, [(run.key, run.point) for run in runs], version=study_version(study))
    stored = store.finished_keys(driver.runs)
    report = StudyReport(study.name, len(runs), len(stored))
    pending = [run for run in runs if run.key not in stored]
    groups = sorted(plan_groups(pending, study.execution.max_batch_runs), key=group_work, reverse=True)
    queue = deque([run.key for run in group] for group in groups)
    progress.start(study.name, len(runs), len(stored))
    try:
        while True:
            submitted = driver.fill(queue, report)
            if driver.in_flight:
                driver.collect(report)
                continue
            finished = store.finished_keys(driver.waiting)
            driver.count_others(finished, report)
            driver.waiting -= finished
            if not driver.waiting and not queue:
                break
            if not submitted:
                driver.note_waiting()
                queue.extend([key] for key in sorted(driver.waiting))
                driver.waiting.clear()
                time.sleep(poll_seconds)
    finally:
        store.release(sorted(driver.claimed))
        progress.finish()
    if study.claim is not None:
        report.claim = evaluate_claim(study.claim.name, study.claim.params, store.study_runs(study))
    report.seconds = time.perf_counter() - started
    return report


def estimate(study: StudyConfig) -> dict[str, Any]:
    """The expanded grid and an estimate of the work, without training (``--dry-run``)."""
    from initlab.lab.trainer import dataset_for, model_spec

    runs = expand(study)
    groups = plan_groups(runs, study.execution.max_batch_runs)
    total_flops = 0.0
    for group in groups:
        config = group[0].config
        dataset = dataset_for(config)
        spec = model_spec(config, dataset)
        macs = _macs_per_example(spec)
        training = config.training
        logs = training.steps // training.log_every + 2
        eval_examples = min(training.eval_train_size or len(dataset.x_train), len(dataset.x_train)) + len(
            dataset.x_test
        )
        per_run = 6 * macs * training.batch_size * training.steps + 2 * macs * eval_examples * logs
        total_flops += per_run * len(group)
    return {
        "study": study.name,
        "runs": [{"key": run.key, "point": run.point} for run in runs],
        "groups": len(groups),
        "gflop": total_flops / 1e9,
    }


def _macs_per_example(spec) -> int:
    """Multiply-adds of one forward pass of one example."""
    total = 0
    for layer in range(spec.num_layers):
        shape = spec.weight_shape(layer)
        macs = 1
        for size in shape:
            macs *= size
        total += macs * (spec.input_shape[1] if len(shape) == 3 else 1)
    return total
