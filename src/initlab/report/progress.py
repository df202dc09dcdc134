"""Progress of a study run: a rich bar on a terminal, plain log lines otherwise.

:func:`make_progress` picks :class:`BarProgress` when the stream is a TTY
(runs done/total, elapsed, ETA, the run that just finished) and
:class:`LineProgress` otherwise (CI logs): one line per finished run with
the count, percentage and ETA.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class LineProgress:
    """One plain line per finished run."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.study, self.total, self.done, self.new, self.started = "", 0, 0, 0, time.monotonic()

    def start(self, study: str, total: int, done: int) -> None:
        self.study, self.total, self.done, self.new = study, total, done, 0
        self.started = time.monotonic()
        print(
            f"[{self.study}] {total} run(s), {done} already stored, {total - done} to run", file=self.stream, flush=True
        )

    def advance(self, result: dict[str, Any], description: str) -> None:
        self.done += 1
        self.new += 1
        elapsed = time.monotonic() - self.started
        eta = elapsed / self.new * (self.total - self.done)
        percent = 100.0 * self.done / max(self.total, 1)
        print(
            f"[{self.study}] {self.done}/{self.total} ({percent:.0f}%) eta {_clock(eta)} "
            f"{result.get('status', '?')}: {description}",
            file=self.stream,
            flush=True,
        )

    def note(self, message: str) -> None:
        print(f"[{self.study}] {message}", file=self.stream, flush=True)

    def finish(self) -> None:
        """Nothing left to draw."""


class BarProgress:
    """A rich progress bar (terminal only)."""

    def __init__(self, stream: TextIO) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskID,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = Console(file=stream)
        self.bar = Progress(
            TextColumn("[bold]{task.fields[study]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.description}"),
            console=self.console,
        )
        self.task: TaskID | None = None

    def start(self, study: str, total: int, done: int) -> None:
        self.bar.start()
        self.task = self.bar.add_task("", total=total, completed=done, study=study)

    def advance(self, result: dict[str, Any], description: str) -> None:
        if self.task is None:
            return
        self.bar.update(self.task, advance=1, description=f"{result.get('status', '?')}: {description}")

    def note(self, message: str) -> None:
        self.console.print(message, markup=False, highlight=False)

    def finish(self) -> None:
        self.bar.stop()


def make_progress(stream: TextIO | None = None, *, quiet: bool = False):
    """A progress reporter for ``stream``: a bar on a TTY, lines otherwise, nothing if quiet."""
    from initlab.lab.runner import SilentProgress

    stream = stream or sys.stderr
    if quiet:
        return SilentProgress()
    return BarProgress(stream) if stream.isatty() else LineProgress(stream)
