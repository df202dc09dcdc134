"""Executors: one ``concurrent.futures``-style interface, three implementations.

* :class:`InlineExecutor` (default): runs each task in the calling process
  when it is submitted.
* :class:`ProcessExecutor` (``--workers N``): ``N`` long-lived worker
  processes (``spawn``), each running one task at a time, so a worker that
  dies is blamed for exactly the task it was running
  (:class:`WorkerLost`) and is replaced. With ``torch_threads`` each worker
  sets its own torch intra-op thread count when it starts (the calling
  process's is left alone).
* :class:`DaskExecutor`: a Dask ``distributed.Client`` — to an existing
  scheduler (``tcp://HOST:8786``, clusters deployed with Dask's own tools) or
  to a ``LocalCluster`` it starts (``N`` worker processes, one thread
  each). A local cluster's scheduler is configured with
  ``allowed-failures = 0`` (a worker death surfaces at once as
  ``KilledWorker`` and the runner's own single retry applies) and
  ``worker-saturation = 1.0`` (a worker holds only the task it runs, so a
  death is blamed on that task alone). An external scheduler keeps its own
  settings: it may retry before the runner does, and with queued tasks a
  death may also fail tasks that were only waiting on that worker.

Each ``submit(fn, *args)`` returns a :class:`concurrent.futures.Future`
(Dask through ``Client.get_executor()``), so the runner has one code path.
Workers only compute and return plain data; only the driver writes the store.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from initlab.errors import InitlabError

EXECUTORS = ("inline", "process", "dask")


class WorkerLost(RuntimeError):
    """The process running a task died before returning a result."""


class RemoteError(RuntimeError):
    """An exception raised inside a worker, with its traceback text."""


def is_worker_loss(error: BaseException) -> bool:
    """Whether ``error`` means the worker died (retry) rather than the task failing."""
    return isinstance(error, WorkerLost) or type(error).__name__ == "KilledWorker"


class InlineExecutor:
    """Runs each task immediately in this process."""

    slots = 1

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except Exception as error:  # recorded by the runner as the run's failure
            future.set_exception(error)
        return future

    def close(self) -> None:
        """Nothing to release."""


MAX_WORKERS = 256
"""Most worker processes an executor starts."""


def check_workers(workers: object, where: str = "--workers") -> int:
    """``workers`` if it is an int in ``[1, MAX_WORKERS]``, else a named InitlabError."""
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
        raise InitlabError(f"{where}={workers!r} is invalid; expected an integer in [1, {MAX_WORKERS}].")
    return workers


def _exit_with_parent() -> None:
    """In a worker process: a daemon thread that ends the process as soon as its parent (the
    driver) has died, even in the middle of a task (nobody is left to take the result)."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()
        os._exit(1)

    threading.Thread(target=watch, name="initlab-parent-watch", daemon=True).start()


def _worker_main(connection: Any, torch_threads: int | None = None) -> None:
    """Loop of a worker process: exit with the driver, set its torch thread count (if given),
    then receive ``(fn, args)`` and send ``(ok, value)`` until told to stop."""
    _exit_with_parent()
    if torch_threads is not None:
        import torch

        torch.set_num_threads(torch_threads)
    while True:
        message = connection.recv()
        if message is None:
            return
        fn, args = message
        try:
            reply = (True, fn(*args))
        except Exception as error:
            reply = (False, f"{type(error).__name__}: {error}\n{traceback.format_exc()}")
        connection.send(reply)


class ProcessExecutor:
    """``workers`` spawned processes, one task at a time each; a dead one is replaced.

    Args:
        workers: number of worker processes (>= 1).
        torch_threads: torch intra-op threads of each worker process (>= 1), or
            None for torch's default there.
    """

    def __init__(self, workers: int, *, torch_threads: int | None = None) -> None:
        check_workers(workers)
        if torch_threads is not None and (
            isinstance(torch_threads, bool) or not isinstance(torch_threads, int) or torch_threads < 1
        ):
            raise InitlabError(
                f"ProcessExecutor: torch_threads={torch_threads!r} is invalid; expected a positive integer or None."
            )
        self.slots, self.torch_threads = workers, torch_threads
        self._context = multiprocessing.get_context("spawn")
        self._queue: queue.Queue = queue.Queue()
        self._threads = [threading.Thread(target=self._serve, daemon=True) for _ in range(workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        self._queue.put((future, fn, args))
        return future

    def _start(self) -> tuple[Any, Any]:
        parent, child = self._context.Pipe()
        process = self._context.Process(target=_worker_main, args=(child, self.torch_threads), daemon=True)
        process.start()
        child.close()
        return process, parent

    def _serve(self) -> None:
        process: Any = None
        connection: Any = None
        while True:
            item = self._queue.get()
            if item is None:
                break
            future, fn, args = item
            if not future.set_running_or_notify_cancel():
                continue
            if process is None or not process.is_alive():
                process, connection = self._start()
            try:
                connection.send((fn, args))
                ok, value = connection.recv()
            except (EOFError, OSError):
                process.join(timeout=5)
                future.set_exception(
                    WorkerLost(
                        f"worker process {process.pid} died (exit code {process.exitcode}) while running the task"
                    )
                )
                process = None
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(RemoteError(value))
        if process is not None and process.is_alive():
            connection.send(None)
            process.join(timeout=10)

    def close(self) -> None:
        """Stop every worker once the queued tasks are done."""
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()


class DaskExecutor:
    """Tasks on a Dask cluster through ``Client.get_executor()``.

    Args:
        scheduler: address of an existing scheduler, or None to start a
            ``LocalCluster`` of ``workers`` processes with one thread each.
        workers: worker processes of the local cluster.
    """

    def __init__(self, scheduler: str | None = None, workers: int = 2) -> None:
        try:
            import dask
            from distributed import Client, LocalCluster
        except ImportError:
            raise InitlabError(
                "--executor dask needs the optional dependency dask[distributed]; install initlab[distributed]."
            ) from None
        check_workers(workers)
        self._cluster = None
        if scheduler:
            try:
                self._client = Client(scheduler, timeout="20s")
            except OSError as error:
                raise InitlabError(
                    f"--scheduler={scheduler!r}: cannot connect ({error}); expected the address of "
                    f"a running Dask scheduler, e.g. tcp://HOST:8786."
                ) from None
        else:
            with dask.config.set(
                {"distributed.scheduler.allowed-failures": 0, "distributed.scheduler.worker-saturation": 1.0}
            ):
                self._cluster = LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
                )
                self._client = Client(self._cluster)
        self.slots = max(1, len(self._client.scheduler_info().get("workers", {})) or workers)
        self._executor = self._client.get_executor(pure=False)

    @property
    def client(self):
        """The ``distributed.Client``."""
        return self._client

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        return self._executor.submit(fn, *args)

    def close(self) -> None:
        """Close the client (and the local cluster this executor started)."""
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()


def make_executor(
    kind: str = "inline", *, workers: int | None = None, scheduler: str | None = None
) -> InlineExecutor | ProcessExecutor | DaskExecutor:
    """The executor called ``kind`` (``inline``, ``process`` or ``dask``).

    Raises:
        InitlabError: an unknown kind, ``scheduler`` without dask, or ``workers``
            not in ``[1, MAX_WORKERS]`` (checked before any process starts).
    """
    if kind not in EXECUTORS:
        raise InitlabError(f"--executor={kind!r} is invalid; expected one of {', '.join(EXECUTORS)}.")
    if scheduler and kind != "dask":
        raise InitlabError(f"--scheduler={scheduler!r} is only valid with --executor dask.")
    if kind == "inline":
        if workers not in (None, 1):
            raise InitlabError(f"--workers={workers!r} needs --executor process or dask.")
        return InlineExecutor()
    count = check_workers(2 if workers is None else workers)
    if kind == "process":
        return ProcessExecutor(count)
    return DaskExecutor(scheduler, count)
