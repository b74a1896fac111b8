"""The production index: :class:`~storage.index.sql.SqlIndex` over PostgreSQL
(:mod:`storage.database.postgres` covers connections, placeholders, NUL and retries).

What the index itself does differently on PostgreSQL:

* Writers: SQLite queues every writer, PostgreSQL runs them side by side. Two instances of
  one new study arriving at once would both insert the study row (one then fails on the
  unique constraint) and both recompute its summary from snapshots that miss the other's
  rows. Each transaction that changes a study therefore first takes a transaction-scoped
  advisory lock on that study, so writers of one study queue and writers of different studies
  do not wait for each other. The rarer races between studies (the same series or SOP
  Instance UID sent inside two different studies at once) end in a unique violation; the
  database then runs the transaction again (:meth:`~storage.database.base.Database.retrying`)
  and it sees the committed row, giving the same answer SQLite would have given.
* Matching: case-sensitive ``LIKE`` with an explicit escape character; person names are
  stored case-folded, so this matches SQLite's ``GLOB`` exactly. Text columns use the "C"
  collation (see ``schema.POSTGRES_MIGRATIONS``).
* Ordering: PostgreSQL sorts NULL last, SQLite first; nullable keys say ``NULLS FIRST``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from storage.database.base import Cursor, like_escape
from storage.database.postgres import PostgresDatabase
from storage.index.matching import ONE, PatternSyntax
from storage.index.schema import POSTGRES_MIGRATIONS
from storage.index.sql import SqlIndex


class LikeSyntax:
    """PostgreSQL's ``LIKE`` is case-sensitive like DICOM matching; ``%``, ``_`` and the
    escape character itself are escaped in the literal text."""

    def pattern(self, column: str, parts: list[str | None]) -> tuple[str, list[Any]]:
        text = "".join(
            "%" if part is None else "_" if part == ONE else like_escape(part) for part in parts
        )
        return f"{column} LIKE ? ESCAPE '\\'", [text]

    def one_of(self, column: str, values: frozenset[str]) -> tuple[str, list[Any]]:
        return f"{column} = ANY(?)", [sorted(values)]


class PostgresIndex(SqlIndex[PostgresDatabase]):
    syntax: ClassVar[PatternSyntax] = LikeSyntax()
    dialect_migrations: ClassVar[dict[int, list[str]]] = POSTGRES_MIGRATIONS
    nulls_first: ClassVar[str] = " NULLS FIRST"

    def _lock_study(self, cur: Cursor, tenant: str, study_uid: str) -> None:
        self.database.advisory_lock(cur, tenant, study_uid)
