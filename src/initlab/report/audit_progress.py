"""Progress of an audit on a terminal: a spinner with the current step and the time elapsed,
shown only when the audit runs longer than :data:`DELAY` seconds, and erased at the end.

:func:`audit_progress` gives a callable ``progress(step)`` for :func:`initlab.audit`'s
``progress`` argument; on a stream that is not a terminal (a CI log, a pipe) it shows nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

DELAY = 1.0
"""Seconds before the progress line appears."""


class _Spinner:
    """A transient rich progress line started by a timer after ``delay`` seconds."""

    def __init__(self, stream: TextIO, delay: float) -> None:
        from rich.console import Console
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("initlab audit: {task.description}"),
            TimeElapsedColumn(),
            console=Console(file=stream),
            transient=True,
        )
        self.task = self.progress.add_task("starting", total=None)
        self.lock = threading.Lock()
        self.shown = self.closed = False
        self.timer = threading.Timer(delay, self._show)
        self.timer.daemon = True
        self.timer.start()

    def _show(self) -> None:
        with self.lock:
            if not self.closed:
                self.progress.start()
                self.shown = True

    def __call__(self, step: str) -> None:
        self.progress.update(self.task, description=step)

    def close(self) -> None:
        self.timer.cancel()
        with self.lock:
            self.closed = True
            if self.shown:
                self.progress.stop()


@contextmanager
def audit_progress(stream: TextIO, *, delay: float = DELAY) -> Iterator[Callable[[str], None] | None]:
    """A ``progress(step)`` callable drawing on ``stream`` if it is a terminal, else None."""
    if not stream.isatty():
        yield None
        return
    spinner = _Spinner(stream, delay)
    try:
        yield spinner
    finally:
        spinner.close()
