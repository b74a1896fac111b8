"""A cache in a SQLite file: what the processes of one embedded server share.

The in-process cache is private to its process; when ``serve`` runs several HTTP workers on
the embedded default, what one process caches must be seen by the others: a login session
made in one worker is presented to another on the next request, and a logout must end it in
all of them. A SQLite file in the data folder is shared by every process on the machine at
the cost of a read of its pages (from the page cache) per get.

Best effort like every cache: nothing here is durable (no syncs, the file may lose its last
writes in a power cut, which logs sessions out, never in), every fault is logged and behaves
as a miss. Size is bounded by ``max_bytes`` of values and keys: a value over a quarter of it
is not cached, and when the total passes it the oldest writes are forgotten first. Expiry
uses the wall clock, the one clock every process shares.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from storage.errors import BackendFailure

log = logging.getLogger(__name__)
_T = TypeVar("_T")

TIMEOUT = 5.0
"""Seconds a statement waits for another process's write to end before giving up."""
EVICT_EVERY = 64
"""Writes between two checks of the total size (each check sums the sizes)."""
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS cache ("
    " key TEXT PRIMARY KEY, value BLOB NOT NULL, expires REAL, size INTEGER NOT NULL)"
)


class SqliteCache:
    def __init__(self, path: Path, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._writes = 0
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"SqliteCache({str(self.path)!r}, max_bytes={self.max_bytes})"

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._run(lambda db: db.execute(SCHEMA), None)

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        """One connection per thread (a connection is not to be shared by threads)."""
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                self.path, timeout=TIMEOUT, isolation_level=None, check_same_thread=False
            )
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=OFF")
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def ping(self) -> None:
        try:
            self._connection().execute("SELECT 1").fetchone()
        except sqlite3.Error as exc:
            raise BackendFailure(f"cache {self.path}: {exc}") from exc

    def _run(self, work: Callable[[sqlite3.Connection], _T], failed: _T) -> _T:
        try:
            return work(self._connection())
        except sqlite3.Error as exc:
            log.warning("cache %s: %s", self.path, exc)
            return failed

    def get(self, key: str) -> bytes | None:
        row = self._run(
            lambda db: db.execute(
                "SELECT value, expires FROM cache WHERE key = ?", (key,)
            ).fetchone(),
            None,
        )
        if row is None or (row[1] is not None and row[1] < time.time()):
            self.misses += 1
            return None
        self.hits += 1
        return bytes(row[0])

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        size = len(value) + len(key)
        if size > self.max_bytes // 4:
            return
        expires = time.time() + ttl if ttl is not None else None
        self._run(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO cache (key, value, expires, size) VALUES (?, ?, ?, ?)",
                (key, value, expires, size),
            ),
            None,
        )
        self._writes += 1
        if self._writes % EVICT_EVERY == 0:
            self._run(self._evict, None)

    def _evict(self, db: sqlite3.Connection) -> None:
        """Forget what expired, then the oldest writes while the total is over budget (a
        replaced entry counts from its last write: its row is new)."""
        db.execute("DELETE FROM cache WHERE expires < ?", (time.time(),))
        (total,) = db.execute("SELECT COALESCE(SUM(size), 0) FROM cache").fetchone()
        while total > self.max_bytes:
            rows = db.execute(
                "SELECT rowid, size FROM cache ORDER BY rowid LIMIT ?", (EVICT_EVERY,)
            ).fetchall()
            if not rows:
                return
            cut = []
            for rowid, size in rows:
                cut.append(rowid)
                total -= size
                if total <= self.max_bytes:
                    break
            db.execute(f"DELETE FROM cache WHERE rowid IN ({', '.join('?' for _ in cut)})", cut)

    def delete(self, *keys: str) -> None:
        if keys:
            marks = ", ".join("?" for _ in keys)
            self._run(
                lambda db: db.execute(f"DELETE FROM cache WHERE key IN ({marks})", keys), None
            )

    def incr(self, key: str, ttl: float) -> int:
        """In one write transaction, so that increments from several processes all count."""

        def increment(db: sqlite3.Connection) -> int:
            db.execute("BEGIN IMMEDIATE")
            try:
                now = time.time()
                row = db.execute(
                    "SELECT value, expires FROM cache WHERE key = ?", (key,)
                ).fetchone()
                if row is None or (row[1] is not None and row[1] < now):
                    count, expires = 1, now + ttl
                else:
                    count, expires = int(row[0]) + 1, row[1]
                value = str(count).encode()
                db.execute(
                    "INSERT OR REPLACE INTO cache (key, value, expires, size) VALUES (?, ?, ?, ?)",
                    (key, value, expires, len(value) + len(key)),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return count

        return self._run(increment, 0)
