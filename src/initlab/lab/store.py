"""The result store: one SQLite file (default ``./initlab-runs.sqlite``).

* WAL journal, ``synchronous=NORMAL``: a finished run is committed in one
  transaction (its row, its study membership and the release of its claim
  together), so killing a process at any moment (``kill -9``) loses at most
  the runs in flight and never leaves a half-written run.
* Versioned schema (``PRAGMA user_version``) upgraded in place by
  :data:`MIGRATIONS`; a file written by a newer initlab is refused, and a
  file that is not an initlab store is refused before anything is written.
* ``Store(path, read_only=True)`` (the read commands) opens the file with
  SQLite's ``mode=ro`` and never writes it; an older schema is upgraded in a
  memory copy only.
* A study's membership of a run is recorded with the study's version (a
  hash of its content, :func:`initlab.lab.config.study_version`), and
  :meth:`Store.study_runs` reads one version's runs only.
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
    # 3: a study's membership records the study version (content hash) it was recorded under;
    #    memberships recorded before versions existed keep the version ''.
    """
    CREATE TABLE study_runs_v3 (
        study TEXT NOT NULL,
        version TEXT NOT NULL DEFAULT '',
        run_key TEXT NOT NULL,
        point TEXT NOT NULL,
        PRIMARY KEY (study, version, run_key)
    );
    INSERT INTO study_runs_v3 (study, version, run_key, point) SELECT study, '', run_key, point FROM study_runs;
    DROP TABLE study_runs;
    ALTER TABLE study_runs_v3 RENAME TO study_runs;
    CREATE INDEX study_runs_key ON study_runs (run_key);
    PRAGMA application_id = 1229861196
    """,
)
APPLICATION_ID = 1229861196
"""``PRAGMA application_id`` of a store (the bytes ``b"IN1L"``), set from schema version 3."""
STORE_TABLES = frozenset({"meta", "runs", "study_runs"})
"""Tables every initlab store has; a file without them is not a store."""
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


def _store_error(path: Path, action: str, error: sqlite3.Error) -> InitlabError:
    """A named error for a SQLite failure while ``action`` on the store at ``path``."""
    text = str(error)
    if "locked" in text or "busy" in text:
        reason = f"the store is locked by another process (waited {_BUSY_TIMEOUT_MS // 1000} s)"
        hint = "expected the other process to finish; try again later"
    elif "full" in text:
        reason = "the disk is full"
        hint = "expected free space for the store"
    elif "readonly" in text or "read-only" in text:
        reason = "the store cannot be written (read-only file or folder)"
        hint = "expected a writable store, or a read command (runs list/show/export, report)"
    elif "malformed" in text or "not a database" in text or "corrupt" in text:
        reason = "the file is corrupt"
        hint = "expected a healthy SQLite store; restore it from a copy or start a new --store"
    else:
        reason = text
        hint = "expected a healthy, writable SQLite store"
    return InitlabError(f"store: {action} {path} failed: {reason} ({text}); {hint}.")


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """Open ``path`` with SQLite's ``mode=ro`` (nothing is ever written to it).

    A WAL store in a folder where its ``-shm`` file cannot be created is opened
    ``immutable`` (no other process can be writing it there either).
    """
    uri = path.resolve().as_uri()
    try:
        return _connect_uri(f"{uri}?mode=ro")
    except sqlite3.OperationalError as error:
        if "unable to open" not in str(error) and "readonly" not in str(error):
            raise
    return _connect_uri(f"{uri}?mode=ro&immutable=1")


def _connect_uri(uri: str) -> sqlite3.Connection:
    """A connection to ``uri`` after a first read (where SQLite opens the WAL index)."""
    connection = sqlite3.connect(uri, uri=True, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    try:
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except BaseException:
        connection.close()
        raise
    return connection


def _check_store(connection: sqlite3.Connection, path: Path, *, allow_empty: bool) -> int:
    """The schema version of the store at ``path``, after checking it is an initlab store.

    Only reads. An empty database (no tables, version 0) is accepted when
    ``allow_empty`` (a new store is being created).

    Raises:
        InitlabError: a newer schema, or a file that is not an initlab store.
    """
    connection.execute("BEGIN")  # one snapshot: another process may be creating the store right now
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        connection.execute("COMMIT")
    if version > SCHEMA_VERSION:
        raise InitlabError(
            f"store schema version {version} is newer than this initlab's {SCHEMA_VERSION}; "
            f"expected <= {SCHEMA_VERSION}. Upgrade initlab to read this store."
        )
    if version == 0 and not tables:
        if allow_empty:
            return 0
        raise InitlabError(
            f"store: {path} is an empty file, not an initlab store; expected a store written by "
            "`initlab run` or `initlab tour`."
        )
    if version == 0 or not STORE_TABLES <= tables:
        raise InitlabError(
            f"store: {path} is not an initlab store (a SQLite file with tables {sorted(tables)}, "
            f"schema version {version}); expected a store written by `initlab run` or `initlab tour`. "
            "The file was left unchanged."
        )
    return version


class Store:
    """A SQLite result store (open with :meth:`open` or as a context manager).

    Args:
        path: the SQLite file (created with the current schema if missing,
            unless ``read_only``).
        read_only: open with SQLite's ``mode=ro``: nothing is written to the
            file or its folder's journal, so a store in a read-only folder can
            be read. A store of an older schema is upgraded in memory only.

    Raises:
        InitlabError: the path is a folder, is missing (``read_only``), is not
            an initlab store (the file is left unchanged), is corrupt, or has
            a newer schema.
    """

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_STORE, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        if self.path.is_dir():
            raise InitlabError(f"store: path={str(self.path)!r} is a directory; expected a SQLite file.")
        folder = self.path.parent if str(self.path.parent) else Path(".")
        if not read_only and not folder.is_dir():
            raise InitlabError(
                f"store: path={str(self.path)!r} is invalid: the folder {str(folder)!r} does not exist; "
                "expected a store path in an existing folder."
            )
        if read_only and not self.path.is_file():
            raise InitlabError(f"store: path={str(self.path)!r} does not exist; expected an existing store file.")
        try:
            self.connection = self._open()
        except sqlite3.DatabaseError as error:
            raise InitlabError(
                f"store: {self.path} is not a usable initlab store ({error}); expected a SQLite file written "
                "by `initlab run` or `initlab tour`. The file was left unchanged."
            ) from None
        self.host, self.pid = socket.gethostname(), os.getpid()

    def _open(self) -> sqlite3.Connection:
        if self.read_only:
            connection = _connect_read_only(self.path)
        else:
            connection = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        try:
            connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            version = _check_store(connection, self.path, allow_empty=not self.read_only)
            if not self.read_only:
                _enable_wal(connection)
                connection.execute("PRAGMA synchronous = NORMAL")
                migrate(connection)
            elif version < SCHEMA_VERSION:
                memory = sqlite3.connect(":memory:", isolation_level=None)
                connection.backup(memory)
                connection.close()
                connection = memory
                migrate(connection)
        except BaseException:
            connection.close()
            raise
        return connection

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.connection.close()

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """All rows of a query; a SQLite failure becomes a named InitlabError."""
        try:
            return self.connection.execute(sql, params).fetchall()
        except sqlite3.Error as error:
            raise _store_error(self.path, "reading", error) from None

    # ------------------------------------------------------------ writing
    def _transaction(self) -> _Transaction:
        return _Transaction(self.connection, self.path)

    def add_memberships(self, study: str, runs: Iterable[tuple[str, dict]], *, version: str = "") -> None:
        """Record that version ``version`` of ``study`` uses each ``(run_key, grid point)``."""
        with self._transaction():
            self.connection.executemany(
                "INSERT OR REPLACE INTO study_runs (study, version, run_key, point) VALUES (?, ?, ?, ?)",
                [(study, version, key, json.dumps(point, sort_keys=True)) for key, point in runs],
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
        try:
            return {key for key in keys if self._finished(key)}
        except sqlite3.Error as error:
            raise _store_error(self.path, "reading", error) from None

    def claimed_elsewhere(self, keys: Iterable[str]) -> set[str]:
        """Keys among ``keys`` claimed by another process."""
        return set(self.claim_holders(keys))

    def claim_holders(self, keys: Iterable[str]) -> dict[str, tuple[str, int, float]]:
        """``{key: (host, pid, claimed_at)}`` for the keys among ``keys`` claimed by another process."""
        wanted = set(keys)
        rows = self._read("SELECT run_key, host, pid, claimed_at FROM claims")
        return {
            key: (host, pid, claimed_at)
            for key, host, pid, claimed_at in rows
            if key in wanted and (host, pid) != (self.host, self.pid)
        }

    def runs(self, *, study: Any = None, status: str | None = None) -> list[dict[str, Any]]:
        """Run rows (newest first), optionally of one study and/or one status.

        Args:
            study: None (every run), a study name (the runs of every version of
                that study), or a :class:`~initlab.lab.config.StudyConfig`
                (only the runs of that exact version: see :meth:`study_runs`).
            status: only runs with this status.
        """
        if study is not None and not isinstance(study, str):
            rows = self.study_runs(study)
            return [row for row in rows if status is None or row["status"] == status]
        if study is not None:
            membership = (
                "SELECT run_key, MIN(point) AS point, study, '' AS version FROM study_runs "
                "WHERE study = ? GROUP BY run_key"
            )
            params: list[Any] = [study]
            join = "JOIN"
        else:
            membership = (
                "SELECT run_key, MIN(point) AS point, GROUP_CONCAT(DISTINCT study) AS study, '' AS version "
                "FROM study_runs GROUP BY run_key"
            )
            params = []
            join = "LEFT JOIN"
        where = ""
        if status is not None:
            where = "WHERE r.status = ?"
            params.append(status)
        query = f"{_RUN_COLUMNS} {join} ({membership}) s ON s.run_key = r.key {where} ORDER BY r.finished_at DESC"
        return [_row(row) for row in self._read(query, params)]

    def study_runs(self, study: Any) -> list[dict[str, Any]]:
        """The run rows of one study version (newest first): what its claim and report read.

        A run belongs to the version ``study_version(study)`` when that version
        recorded it; a membership recorded before versions existed (schema 2)
        belongs to it when the run is one of the study's runs now. So an edited
        study, or another study of the same name, never adds runs.
        """
        from initlab.lab.config import expand, study_version

        version = study_version(study)
        keys = {run.key for run in expand(study)}
        query = (
            f"{_RUN_COLUMNS} JOIN (SELECT run_key, point, study, version FROM study_runs "
            "WHERE study = ? AND version IN (?, '')) s ON s.run_key = r.key ORDER BY r.finished_at DESC"
        )
        selected: dict[str, dict[str, Any]] = {}
        for row in self._read(query, (study.name, version)):
            item = _row(row)
            if item["study_version"] == version or (item["key"] in keys and item["key"] not in selected):
                selected[item["key"]] = {**item, "study_version": version}
        return sorted(selected.values(), key=lambda item: item["finished_at"], reverse=True)

    def run(self, key_prefix: str) -> dict[str, Any]:
        """The run whose key starts with ``key_prefix``, with its history (reads that run only).

        Raises:
            InitlabError: no run, or several runs, match the prefix.
        """
        keys = [
            row[0]
            for row in self._read(
                "SELECT key FROM runs WHERE substr(key, 1, length(?)) = ? LIMIT 6", (key_prefix, key_prefix)
            )
        ]
        if len(keys) != 1:
            found = (
                "no run" if not keys else f"{'6 or more' if len(keys) > 5 else len(keys)} runs ({', '.join(keys[:5])})"
            )
            raise InitlabError(
                f"runs show: RUN={key_prefix!r} matches {found} in {self.path}; "
                f"expected a unique run key prefix (see `initlab runs list`)."
            )
        membership = (
            "SELECT run_key, MIN(point) AS point, GROUP_CONCAT(DISTINCT study) AS study, '' AS version "
            "FROM study_runs WHERE run_key = ? GROUP BY run_key"
        )
        (row,) = self._read(
            f"{_RUN_COLUMNS} LEFT JOIN ({membership}) s ON s.run_key = r.key WHERE r.key = ?", (keys[0], keys[0])
        )
        (history,) = self._read("SELECT history FROM runs WHERE key = ?", (keys[0],))[0]
        result = _row(row)
        result["history"] = json.loads(history)
        return result

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` result (``"ok"`` when healthy)."""
        return self._read("PRAGMA integrity_check")[0][0]


_RUN_COLUMNS = (
    "SELECT r.key, r.status, r.config, r.summary, r.error, r.duration, r.finished_at, "
    "r.code_version, r.trained_by, s.point, s.study, s.version FROM runs r"
)


def _row(row: Sequence[Any]) -> dict[str, Any]:
    key, status, config, summary, error, duration, finished_at, code, trained_by, point, study, version = row
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
        "study_version": version or "",
    }


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error); a SQLite failure becomes a named error."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self.connection, self.path = connection, path

    def __enter__(self) -> None:
        try:
            self.connection.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            raise _store_error(self.path, "writing", error) from None

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, traceback: Any) -> None:
        try:
            self.connection.execute("COMMIT" if kind is None else "ROLLBACK")
        except sqlite3.Error as error:
            if kind is None:
                raise _store_error(self.path, "writing", error) from None
        if isinstance(value, sqlite3.Error):
            raise _store_error(self.path, "writing", value) from None
