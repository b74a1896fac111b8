"""A lock held by one process at a time among all the processes sharing a database: for work
that must not run twice at once across a scale-out (the orphan sweep), where a lock in one
process's memory would not see the others.

* PostgreSQL: a session advisory lock (``pg_try_advisory_lock``) on a connection kept for as
  long as the lock is held; it is released with the connection if the process dies.
* SQLite: the processes sharing one SQLite file share one machine, so an exclusive ``flock``
  on a file beside the database does it; the operating system releases it if the process
  dies. Nothing is written to the database itself, which stays free for its writers.

Neither waits: a process that finds the lock taken skips the work, another one is doing it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from storage.database.base import Database
from storage.errors import BackendFailure

if TYPE_CHECKING:
    from storage.database.postgres import PostgresDatabase

# Part of a file name beside the database: nothing that could leave its folder.
LOCK_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


@contextmanager
def exclusive(database: Database, name: str) -> Iterator[bool]:
    """Hold the lock ``name`` of ``database`` for the ``with`` block; the block gets True, or
    False (holding nothing) when another process holds the lock."""
    if not LOCK_NAME.match(name):
        raise ValueError(f"invalid lock name {name!r}")
    from storage.database.sqlite import SqliteDatabase

    if isinstance(database, SqliteDatabase):
        with _file_lock(f"{database.path}.{name}.lock") as held:
            yield held
        return
    from storage.database.postgres import PostgresDatabase

    if isinstance(database, PostgresDatabase):
        with _advisory_lock(database, name) as held:
            yield held
        return
    raise TypeError(f"no cross-process lock for {database!r}")


@contextmanager
def _file_lock(path: str) -> Iterator[bool]:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise BackendFailure(f"cannot open the lock file {path}: {exc.strerror}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def _advisory_lock(database: PostgresDatabase, name: str) -> Iterator[bool]:
    named = b"\0".join([(database.schema or "").encode(), b"lock", name.encode()])
    key = int.from_bytes(hashlib.blake2b(named, digest_size=8).digest(), "big", signed=True)
    # held(): an autocommit connection of the pool, kept for the block, so the session lock
    # lives exactly as long as the block, however long that is.
    with database.held() as cur:
        if not cur.execute("SELECT pg_try_advisory_lock(?)", (key,)).fetchone()[0]:
            yield False
            return
        try:
            yield True
        finally:
            cur.execute("SELECT pg_advisory_unlock(?)", (key,))
