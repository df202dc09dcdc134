"""The result store: one SQLite file (default ``./initlab-runs.sqlite``).

* WAL journal, ``synchronous=NORMAL``: a finished run is committed in one
  transaction (its row, its study membership and the release of its claim
  together), so killing a process at any moment (``kill -9``) loses at most
  the runs in flight and never leaves a half-written run.
* Versioned schema (``PRAGMA user_version``) upgraded in place by
  :data:`MIGRATIONS`; a file written by a newer initlab is refused.
* A run's key is the hash of its resolved config and the code version
  (:func:`initlab.lab.config.run_key`); a run is stored at most once.
  ``done`` and ``diverged`` runs are final and skipped on re-runs; ``failed``
  runs are tried again and overwritten.
* Two processes on one store **share the work**: before training a group of
  runs a process *claims* them (one ``BEGIN IMMEDIATE`` transaction); runs
  claimed by another live process are skipped, then waited for at the end;
  claims of a dead process (same host, pid gone) or older than
  :data:`CLAIM_LEASE` seconds are taken over. SQLite's lock serialises the
  short write transactions (``busy_timeout`` 60 s).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from initlab.errors import InitlabError

DEFAULT_STORE = "initlab-runs.sqlite"
FINAL_STATUSES = ("done", "diverged")
CLAIM_LEASE = 24 * 3600.0
_BUSY_TIMEOUT_MS = 60_000

MIGRATIONS: tuple[str, ...] = (
    # 1: runs, and which studies (with which grid values) use them.
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE runs (
        key TEXT PRIMARY KEY,
        status TEXT NOT NULL CHECK (status IN ('done', 'diverged', 'failed')),
        config TEXT NOT NULL,
        code_version TEXT NOT NULL,
        summary TEXT NOT NULL,
        history TEXT NOT NULL,
        error TEXT NOT NULL DEFAULT '',
        duration REAL NOT NULL DEFAULT 0,
        finished_at REAL NOT NULL
    );
    CREATE TABLE study_runs (
        study TEXT NOT NULL,
        run_key TEXT NOT NULL,
        point TEXT NOT NULL,
        PRIMARY KEY (study, run_key)
    );
    """,
    # 2: claims, so that several processes can share one study's work; who trained a run.
    """
    CREATE TABLE claims (
        run_key TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        claimed_at REAL NOT NULL
    );
    ALTER TABLE runs ADD COLUMN trained_by TEXT NOT NULL DEFAULT '';
    CREATE INDEX runs_status ON runs (status);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(connection: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Apply the missing migrations up to ``target`` (each in its own transaction); new version.

    Raises:
        InitlabError: the file's schema is newer than this initlab knows.
    """
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise InitlabError(
            f"store schema version {version} is newer than this initlab's {SCHEMA_VERSION}; "
            f"expected <= {SCHEMA_VERSION}. Upgrade initlab to read this store."
        )
    for number in range(version + 1, target + 1):
        connection.execute("BEGIN IMMEDIATE")
        try:
            if connection.execute("PRAGMA user_version").fetchone()[0] < number:
                for statement in MIGRATIONS[number - 1].split(";"):
                    if statement.strip():
                        connection.execute(statement)
                connection.execute(f"PRAGMA user_version = {number}")
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
    return connection.execute("PRAGMA user_version").fetchone()[0]


def _enable_wal(connection: sqlite3.Connection) -> None:
    """Switch the file to WAL mode, retrying until the busy timeout while another connection
    holds a lock: SQLite answers this PRAGMA with 'database is locked' at once, without its
    busy handler (seen when processes open a new store at the same moment: 3 of 160
    openings by 4 processes at a time failed without the retry)."""
    deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
    delay = 0.001
    while True:
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(2 * delay, 0.05)


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host may still be running.

    On POSIX, signal 0 asks the system without touching the process (a
    process of another user answers with a permission error: alive). Elsewhere
    (Windows, where ``os.kill`` would terminate the process) nothing is
    asked and the answer is True: a dead process's claims are then taken
    over once they are older than :data:`CLAIM_LEASE`.
    """
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Store:
    """A SQLite result store (open with :meth:`open` or as a context manager).

    Args:
        path: the SQLite file (created with the current schema if missing).
    """

    def __init__(self, path: str | os.PathLike = DEFAULT_STORE) -> None:
        self.path = Path(path)
        if self.path.exists() and self.path.is_dir():
            raise InitlabError(f"store: path={str(self.path)!r} is a directory; expected a SQLite file.")
        try:
            self.connection = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            self.connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            _enable_wal(self.connection)
            self.connection.execute("PRAGMA synchronous = NORMAL")
            migrate(self.connection)
        except sqlite3.DatabaseError as error:
            raise InitlabError(f"store: {self.path} is not a usable SQLite store ({error}).") from None
        self.host, self.pid = socket.gethostname(), os.getpid()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.connection.close()

    # ------------------------------------------------------------ writing
    def _transaction(self):
        return _Transaction(self.connection)

    def add_memberships(self, study: str, runs: Iterable[tuple[str, dict]]) -> None:
        """Record that ``study`` uses each ``(run_key, grid point)``."""
        with self._transaction():
            self.connection.executemany(
                "INSERT OR REPLACE INTO study_runs (study, run_key, point) VALUES (?, ?, ?)",
                [(study, key, json.dumps(point, sort_keys=True)) for key, point in runs],
            )

    def claim(self, keys: Sequence[str]) -> list[str]:
        """Claim the keys that are neither finished nor claimed by a live process; those claimed."""
        now = time.time()
        with self._transaction():
            self._drop_stale_claims(now)
            obtained = []
            for key in keys:
                if self._finished(key):
                    continue
                cursor = self.connection.execute(
                    "INSERT OR IGNORE INTO claims (run_key, host, pid, claimed_at) VALUES (?, ?, ?, ?)",
                    (key, self.host, self.pid, now),
                )
                if cursor.rowcount:
                    obtained.append(key)
        return obtained

    def _drop_stale_claims(self, now: float) -> None:
        for key, host, pid, claimed_at in self.connection.execute(
            "SELECT run_key, host, pid, claimed_at FROM claims"
        ).fetchall():
            dead = host == self.host and pid != self.pid and not _pid_alive(pid)
            if dead or now - claimed_at > CLAIM_LEASE:
                self.connection.execute("DELETE FROM claims WHERE run_key = ?", (key,))

    def release(self, keys: Sequence[str]) -> None:
        """Drop this process's claims on ``keys``."""
        with self._transaction():
            self.connection.executemany(
                "DELETE FROM claims WHERE run_key = ? AND host = ? AND pid = ?",
                [(key, self.host, self.pid) for key in keys],
            )

    def record(self, result: dict[str, Any], config: dict[str, Any], code_version: str) -> None:
        """Store one finished run and release its claim, in one transaction.

        A ``failed`` row is replaced by a later attempt; a final row is never
        replaced.
        """
        with self._transaction():
            self.connection.execute(
                """INSERT INTO runs (key, status, config, code_version, summary, history, error,
                                     duration, finished_at, trained_by)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (key) DO UPDATE SET
                     status = excluded.status, config = excluded.config,
                     code_version = excluded.code_version, summary = excluded.summary,
                     history = excluded.history, error = excluded.error,
                     duration = excluded.duration, finished_at = excluded.finished_at,
                     trained_by = excluded.trained_by
                   WHERE runs.status = 'failed'""",
                (
                    result["key"],
                    result["status"],
                    json.dumps(config, sort_keys=True),
                    code_version,
                    json.dumps(result["summary"], allow_nan=True),
                    json.dumps(result["history"], allow_nan=True),
                    result.get("error", ""),
                    float(result.get("duration", 0.0)),
                    time.time(),
                    f"{self.host}:{self.pid}",
                ),
            )
            self.connection.execute("DELETE FROM claims WHERE run_key = ?", (result["key"],))

    # ------------------------------------------------------------ reading
    def _finished(self, key: str) -> bool:
        row = self.connection.execute("SELECT status FROM runs WHERE key = ?", (key,)).fetchone()
        return row is not None and row[0] in FINAL_STATUSES

    def finished_keys(self, keys: Iterable[str]) -> set[str]:
        """Keys among ``keys`` whose runs are final (done or diverged)."""
        return {key for key in keys if self._finished(key)}

    def claimed_elsewhere(self, keys: Iterable[str]) -> set[str]:
        """Keys among ``keys`` claimed by another process."""
        rows = self.connection.execute("SELECT run_key, host, pid FROM claims").fetchall()
        others = {key for key, host, pid in rows if (host, pid) != (self.host, self.pid)}
        return others & set(keys)

    def runs(self, *, study: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        """Run rows (newest first), optionally of one study and/or one status."""
        query = (
            "SELECT r.key, r.status, r.config, r.summary, r.error, r.duration, r.finished_at, "
            "r.code_version, r.trained_by, {point} FROM runs r {join} {where} ORDER BY r.finished_at DESC"
        )
        params: list[Any] = []
        clauses = []
        if study is not None:
            join, point = "JOIN study_runs s ON s.run_key = r.key", "s.point, s.study"
            clauses.append("s.study = ?")
            params.append(study)
        else:
            join = (
                "LEFT JOIN (SELECT run_key, MIN(point) AS point, GROUP_CONCAT(study) AS study "
                "FROM study_runs GROUP BY run_key) s ON s.run_key = r.key"
            )
            point = "s.point, s.study"
        if status is not None:
            clauses.append("r.status = ?")
            params.append(status)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        rows = self.connection.execute(query.format(point=point, join=join, where=where), params)
        return [_row(row) for row in rows.fetchall()]

    def run(self, key_prefix: str) -> dict[str, Any]:
        """The run whose key starts with ``key_prefix``, with its history.

        Raises:
            InitlabError: no run, or several runs, match the prefix.
        """
        rows = self.connection.execute(
            "SELECT key, history FROM runs WHERE key LIKE ? || '%'", (key_prefix,)
        ).fetchall()
        if len(rows) != 1:
            found = "no run" if not rows else f"{len(rows)} runs ({', '.join(r[0] for r in rows[:5])})"
            raise InitlabError(
                f"runs show: RUN={key_prefix!r} matches {found} in {self.path}; "
                f"expected a unique run key prefix (see `initlab runs list`)."
            )
        key, history = rows[0]
        row = next(item for item in self.runs() if item["key"] == key)
        row["history"] = json.loads(history)
        return row

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` result (``"ok"`` when healthy)."""
        return self.connection.execute("PRAGMA integrity_check").fetchone()[0]


def _row(row: Sequence[Any]) -> dict[str, Any]:
    key, status, config, summary, error, duration, finished_at, code, trained_by, point, study = row
    return {
        "key": key,
        "status": status,
        "config": json.loads(config),
        "summary": json.loads(summary),
        "error": error,
        "duration": duration,
        "finished_at": finished_at,
        "code_version": code,
        "trained_by": trained_by,
        "point": json.loads(point) if point else {},
        "study": study or "",
    }


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def __enter__(self) -> None:
        self.connection.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind, value, traceback) -> None:
        self.connection.execute("COMMIT" if kind is None else "ROLLBACK")
