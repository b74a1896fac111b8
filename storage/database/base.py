"""What a component needs from a relational database: transactions, reads, versioned
migrations and a way to run again a transaction that lost a race.

SQL is written once for every dialect with ``?`` placeholders; each implementation makes
that work on its driver. Migrations are lists of statements in which ``{id}`` (auto-increment
primary key), ``{blob}`` and ``{bigint}`` stand for the dialect's type names. Each component
keeps its own version table, so components migrate independently in one database.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

T = TypeVar("T")
# Unquoted, so it reads the same in every statement and in every dialect (PostgreSQL's
# limit is 63 bytes).
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class Cursor(Protocol):
    """The slice of a DB-API cursor the shared SQL uses."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...
    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> Any:
        """``sql`` once per parameter row (PostgreSQL pipelines them: one round trip for a
        batch instead of one per row)."""
        ...

    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


def sql_identifier(name: str, what: str) -> str:
    """``name`` when it is safe to splice into SQL as ``what``; ValueError otherwise."""
    if not IDENTIFIER.match(name):
        raise ValueError(f"invalid {what} {name!r}")
    return name


def like_escape(text: str) -> str:
    """``text`` to be matched literally inside a ``LIKE ? ESCAPE '\\'`` pattern: the escape
    character, ``%`` and ``_`` escaped."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True)
class PoolStats:
    """A connection pool at one moment (the first four) and its counts since it was opened
    (the rest): what saturation looks like before requests start failing."""

    max_size: int
    size: int
    """Connections open."""
    idle: int
    """Open connections not lent to anyone."""
    waiting: int
    """Requests waiting for a connection now."""
    requests: int
    """Connections asked for."""
    queued: int
    """Requests that had to wait because none was idle."""
    failed: int
    """Requests that got none (waited past the timeout, or too many were waiting)."""
    wait_seconds: float
    """Time spent waiting, all requests together."""

    @property
    def in_use(self) -> int:
        return self.size - self.idle


class Database(ABC):
    """One relational database; its methods raise :class:`~storage.errors.BackendFailure`
    (or :class:`~storage.errors.OutOfResources`), never a driver's own exceptions."""

    dialect: ClassVar[str]
    """``"sqlite"`` or ``"postgresql"``: what callers key their dialect differences on."""
    types: ClassVar[dict[str, str]]
    """The type names ``{id}``, ``{blob}`` and ``{bigint}`` stand for in migrations."""
    _write_guard: Callable[[], None] | None = None

    def guard_writes(self, guard: Callable[[], None] | None) -> None:
        """Call ``guard`` at the start of every write transaction from now on (None: no
        longer); what it raises ends the transaction before it writes anything.

        With :meth:`drain_writers` this is a fence between processes: a deployment being
        switched over to other stores sets a flag that its guards read, then drains the
        writers, and from then on no transaction of any process commits in this database
        without having seen the flag."""
        self._write_guard = guard

    def _check_write(self) -> None:
        if self._write_guard is not None:
            self._write_guard()

    @abstractmethod
    def drain_writers(self) -> None:
        """Wait until every write transaction begun before this call, in any process sharing
        the database (those with a guard, on PostgreSQL), has committed or rolled back."""

    @abstractmethod
    def open(self) -> None:
        """Connect (idempotent)."""

    @abstractmethod
    def close(self) -> None:
        """Release the connections."""

    @abstractmethod
    def transaction(self) -> AbstractContextManager[Cursor]:
        """A cursor inside one transaction: committed on normal exit, rolled back on error."""

    @abstractmethod
    def read(self) -> AbstractContextManager[Cursor]:
        """A cursor for reads, each statement seeing what was committed before it."""

    def pool_stats(self) -> PoolStats | None:
        """The connection pool's figures, or None where there is no pool (SQLite: each
        thread keeps its own connection) or it is not open."""
        return None

    def ping(self) -> None:
        """Raise BackendFailure when the database cannot answer."""
        with self.read() as cur:
            cur.execute("SELECT 1").fetchone()

    def migrate(
        self,
        version_table: str,
        migrations: list[list[str]],
        dialect_migrations: dict[int, list[str]] | None = None,
    ) -> None:
        """Apply the migrations numbered (from 1) above the highest in ``version_table``.

        ``dialect_migrations`` maps a migration number to statements run after it on this
        database only (indexes, collations). Everything runs in one transaction, so a failing
        statement leaves the schema as it was, and processes starting together migrate once.
        Components migrating other version tables at the same time may race to create what
        they share (a PostgreSQL schema): the loser runs again.
        """
        table = sql_identifier(version_table, "version table name")
        self.retrying(lambda: self._migrate(table, migrations, dialect_migrations or {}))

    def _migrate(
        self, table: str, migrations: list[list[str]], dialect_migrations: dict[int, list[str]]
    ) -> None:
        with self.transaction() as cur:
            self._serialize_migrations(cur, table)
            cur.execute(f"CREATE TABLE IF NOT EXISTS {table} (version INTEGER NOT NULL)")
            current = cur.execute(f"SELECT MAX(version) FROM {table}").fetchone()[0] or 0
            for number, statements in enumerate(migrations, start=1):
                if number <= current:
                    continue
                for statement in [*statements, *dialect_migrations.get(number, [])]:
                    cur.execute(statement.format(**self.types))
                cur.execute(f"INSERT INTO {table} (version) VALUES (?)", (number,))

    def _serialize_migrations(self, cur: Cursor, version_table: str) -> None:
        """Make the migrations of ``version_table`` wait for any other process running them,
        where the transaction does not already (SQLite's writers queue: nothing to do)."""
        return None

    def retrying(self, attempt: Callable[[], T]) -> T:
        """``attempt()``, run again when it lost a race between concurrent writers that
        another run resolves; where writers never race (SQLite) it runs once."""
        return attempt()
