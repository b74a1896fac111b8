"""The embedded database: one SQLite file in WAL mode.

WAL lets readers run while one writer commits, which is what the server does: many reads
(QIDO, metadata, case lists), a stream of small writes. Each thread keeps its own connection
(sqlite3 connections are not shared across threads); writers take a process-wide lock and
``BEGIN IMMEDIATE`` so they queue instead of failing with "database is locked". Writers
therefore never race, and :meth:`~storage.database.base.Database.retrying` has nothing to
retry. A write guard runs once the write lock is held, so a writer that passed it commits
before the next one (or a drain) begins.

Durable by default (``synchronous=FULL``): in WAL mode that syncs the write-ahead log at each
commit, so a committed transaction survives a power cut. ``durable=False`` runs
``synchronous=NORMAL``, which syncs only at checkpoints: a commit then survives a crash of the
process but the last ones may be lost to a power cut (never corrupting the file).

Closing releases the connections; a file is always reachable, so the next use reconnects.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

from storage.database.base import Cursor, Database
from storage.errors import BackendFailure, OutOfResources


class SqliteDatabase(Database):
    dialect: ClassVar[str] = "sqlite"
    types: ClassVar[dict[str, str]] = {
        "id": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "blob": "BLOB",
        "bigint": "INTEGER",
    }

    def __init__(self, path: Path, *, durable: bool = True) -> None:
        self.path = path
        self.durable = durable
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._registry_lock = threading.Lock()
        self._write_lock = threading.Lock()

    def __repr__(self) -> str:
        suffix = "" if self.durable else ", durable=False"
        return f"SqliteDatabase({str(self.path)!r}{suffix})"

    def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackendFailure(f"cannot open the SQLite database {self.path}: {exc}") from exc
        self._connection()

    def close(self) -> None:
        with self._registry_lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            try:
                connection = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False, timeout=30
                )
                connection.execute("PRAGMA journal_mode=WAL")
                synchronous = "FULL" if self.durable else "NORMAL"
                connection.execute(f"PRAGMA synchronous={synchronous}")
                connection.execute("PRAGMA foreign_keys=ON")
                connection.execute("PRAGMA busy_timeout=30000")
            except sqlite3.Error as exc:
                raise BackendFailure(f"cannot open the SQLite database {self.path}: {exc}") from exc
            self._local.connection = connection
            with self._registry_lock:
                self._connections.append(connection)
        return connection

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        connection = self._connection()
        with self._write_lock:
            try:
                connection.execute("BEGIN IMMEDIATE")
                try:
                    self._check_write()
                    yield connection.cursor()
                except BaseException:
                    connection.execute("ROLLBACK")
                    raise
                connection.execute("COMMIT")
            except sqlite3.Error as exc:
                raise _failure(self.path, exc) from exc

    def drain_writers(self) -> None:
        """Writers of one file take its write lock in turn (``BEGIN IMMEDIATE``, across
        processes): taking it once, unguarded, waits for the one that holds it."""
        connection = self._connection()
        with self._write_lock:
            try:
                connection.execute("BEGIN IMMEDIATE")
                connection.execute("COMMIT")
            except sqlite3.Error as exc:
                raise _failure(self.path, exc) from exc

    @contextmanager
    def read(self) -> Iterator[Cursor]:
        try:
            yield self._connection().cursor()
        except sqlite3.Error as exc:
            raise _failure(self.path, exc) from exc


def _failure(path: Path, exc: sqlite3.Error) -> BackendFailure:
    if isinstance(exc, sqlite3.OperationalError) and "full" in str(exc):
        return OutOfResources(f"SQLite database {path} is full: {exc}")
    return BackendFailure(f"SQLite database {path} error: {exc}")
