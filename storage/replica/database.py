"""A component's database with a streaming replica, for components whose reports may be read
from the replica (the teaching layer's analytics) while everything else stays on the primary.

:class:`RecordingDatabase` is the primary as the component writes to it: after each committed
transaction it records the primary's WAL position under the database's scope
(:mod:`storage.replica.router`). :class:`ReplicaReadsDatabase` is what the reports read
through: each ``read()`` goes to the replica when it has replayed the scope's latest write,
else to the primary. A statement that fails on the replica runs again on the primary, and the
rest of that read stays there, so a replica fault never reaches the caller. (A ``read()``
promises no snapshot across its statements, so moving on to the newer primary midway changes
nothing it promised.)

The scope is the whole database, not a tenant: its writes do not name one on their way through
this layer, and they are few (answers, groups, cases) beside an archive's ingest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Any, ClassVar, TypeVar

import psycopg

from storage.database.base import Cursor, Database, PoolStats
from storage.database.postgres import PostgresDatabase
from storage.errors import BackendFailure
from storage.replica.router import PRIMARY, REPLICA, ReplicaRouter

T = TypeVar("T")


class RecordingDatabase(Database):
    """``primary``, each committed transaction's position recorded under ``scope``."""

    dialect: ClassVar[str] = PostgresDatabase.dialect
    types: ClassVar[dict[str, str]] = PostgresDatabase.types

    def __init__(self, primary: PostgresDatabase, router: ReplicaRouter, scope: str) -> None:
        self.primary = primary
        self.router = router
        self.scope = scope

    def __repr__(self) -> str:
        return f"RecordingDatabase({self.primary!r}, scope={self.scope!r})"

    def open(self) -> None:
        self.primary.open()

    def close(self) -> None:
        self.primary.close()

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        with self.primary.transaction() as cur:
            yield cur
        self.router.written(self.scope, self.primary)

    def read(self) -> AbstractContextManager[Cursor]:
        return self.primary.read()

    def migrate(
        self,
        version_table: str,
        migrations: list[list[str]],
        dialect_migrations: dict[int, list[str]] | None = None,
    ) -> None:
        self.primary.migrate(version_table, migrations, dialect_migrations)

    def retrying(self, attempt: Callable[[], T]) -> T:
        return self.primary.retrying(attempt)

    def pool_stats(self) -> PoolStats | None:
        return self.primary.pool_stats()

    def guard_writes(self, guard: Callable[[], None] | None) -> None:
        self.primary.guard_writes(guard)  # its transactions are the ones that write

    def drain_writers(self) -> None:
        self.primary.drain_writers()


class ReplicaReadsDatabase(Database):
    """Reads from ``replica`` when it has replayed ``scope``'s latest write, else from
    ``primary`` (the component's :class:`RecordingDatabase`, which transactions and
    migrations go to)."""

    dialect: ClassVar[str] = PostgresDatabase.dialect
    types: ClassVar[dict[str, str]] = PostgresDatabase.types

    def __init__(
        self,
        primary: Database,
        replica: PostgresDatabase,
        router: ReplicaRouter,
        scope: str,
    ) -> None:
        """``primary`` is opened and closed by its owner; this opens and closes ``replica``
        (whose pool connects on demand: a replica that is down delays nothing)."""
        self.primary = primary
        self.replica = replica
        self.router = router
        self.scope = scope

    def __repr__(self) -> str:
        return f"ReplicaReadsDatabase({self.replica!r}, scope={self.scope!r})"

    def open(self) -> None:
        self.replica.open()

    def close(self) -> None:
        self.replica.close()

    def transaction(self) -> AbstractContextManager[Cursor]:
        return self.primary.transaction()

    @contextmanager
    def read(self) -> Iterator[Cursor]:
        if not self.router.serves(self.router.positions.required(self.scope)):
            self.router.routed(PRIMARY)
            with self.primary.read() as cur:
                yield cur
            return
        with ExitStack() as stack:
            try:
                replica: Cursor | None = stack.enter_context(self.replica.read())
            except BackendFailure as exc:
                self.router.replica_failed(exc)
                replica = None
            cursor = _FailoverCursor(
                replica, lambda: stack.enter_context(self.primary.read()), self.router
            )
            yield cursor
            self.router.routed(REPLICA if cursor.on_replica else PRIMARY)

    def ping(self) -> None:
        self.primary.ping()

    def guard_writes(self, guard: Callable[[], None] | None) -> None:
        self.primary.guard_writes(guard)  # writes go to the primary; the replica takes none

    def drain_writers(self) -> None:
        self.primary.drain_writers()

    def migrate(
        self,
        version_table: str,
        migrations: list[list[str]],
        dialect_migrations: dict[int, list[str]] | None = None,
    ) -> None:
        self.primary.migrate(version_table, migrations, dialect_migrations)

    def retrying(self, attempt: Callable[[], T]) -> T:
        return self.primary.retrying(attempt)


class _FailoverCursor:
    """Statements on the replica's cursor until one fails there; that one and the rest on a
    cursor of the primary, opened when first needed."""

    def __init__(
        self, replica: Cursor | None, open_primary: Callable[[], Cursor], router: ReplicaRouter
    ) -> None:
        self._replica = replica
        self._open_primary = open_primary
        self._primary: Cursor | None = None
        self._current: Cursor | None = None
        self._router = router

    @property
    def on_replica(self) -> bool:
        return self._replica is not None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _FailoverCursor:
        if self._replica is not None:
            try:
                self._replica.execute(sql, params)
            except psycopg.Error as exc:
                self._replica = None
                self._router.replica_failed(exc)
            else:
                self._current = self._replica
                return self
        if self._primary is None:
            self._primary = self._open_primary()
        self._primary.execute(sql, params)
        self._current = self._primary
        return self

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> _FailoverCursor:
        """Several rows of one statement: a write, which only the primary takes."""
        if self._primary is None:
            self._primary = self._open_primary()
        self._primary.executemany(sql, rows)
        self._current = self._primary
        return self

    def fetchone(self) -> Any:
        assert self._current is not None, "fetch before execute"
        return self._current.fetchone()

    def fetchall(self) -> list[Any]:
        assert self._current is not None, "fetch before execute"
        return self._current.fetchall()
