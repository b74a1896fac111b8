"""The embedded index: one SQLite file in WAL mode.

WAL lets readers run while one writer commits, which is what an archive does: many QIDO and
metadata reads, a stream of single-instance inserts. Each thread keeps its own connection
(sqlite3 connections are not shared across threads); writers take a process-wide lock and
``BEGIN IMMEDIATE`` so they queue instead of failing with "database is locked".
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from storage.errors import BackendFailure, OutOfResources
from storage.index.matching import ONE
from storage.index.sql import Cursor, SqlIndex


class GlobSyntax:
    """SQLite's GLOB is case-sensitive like DICOM matching; ``*``, ``?`` and ``[`` in the
    literal text are escaped as one-character classes."""

    def pattern(self, column: str, parts: list[str | None]) -> tuple[str, list[Any]]:
        text = "".join(
            "*" if part is None else "?" if part == ONE else _glob_escape(part) for part in parts
        )
        return f"{column} GLOB ?", [text]


def _glob_escape(text: str) -> str:
    return text.replace("[", "[[]").replace("*", "[*]").replace("?", "[?]")


class SqliteIndex(SqlIndex):
    types: ClassVar[dict[str, str]] = {
        "id": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "blob": "BLOB",
        "bigint": "INTEGER",
    }
    syntax = GlobSyntax()

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._registry_lock = threading.Lock()
        self._write_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SqliteIndex({str(self.path)!r})"

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._transaction() as cur:
            self._migrate(cur)

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
                connection.execute("PRAGMA synchronous=NORMAL")
                connection.execute("PRAGMA foreign_keys=ON")
                connection.execute("PRAGMA busy_timeout=30000")
            except sqlite3.Error as exc:
                raise BackendFailure(f"cannot open the SQLite index {self.path}: {exc}") from exc
            self._local.connection = connection
            with self._registry_lock:
                self._connections.append(connection)
        return connection

    @contextmanager
    def _transaction(self) -> Iterator[Cursor]:
        connection = self._connection()
        with self._write_lock:
            try:
                connection.execute("BEGIN IMMEDIATE")
                try:
                    yield connection.cursor()
                except BaseException:
                    connection.execute("ROLLBACK")
                    raise
                connection.execute("COMMIT")
            except sqlite3.Error as exc:
                raise _failure(exc) from exc

    @contextmanager
    def _read(self) -> Iterator[Cursor]:
        try:
            yield self._connection().cursor()
        except sqlite3.Error as exc:
            raise _failure(exc) from exc


def _failure(exc: sqlite3.Error) -> BackendFailure:

    if isinstance(exc, sqlite3.OperationalError) and "full" in str(exc):
        return OutOfResources(f"SQLite index is full: {exc}")
    return BackendFailure(f"SQLite index error: {exc}")
