"""The one text form of a moment in the databases: ISO 8601 in UTC with microseconds,
``2026-01-05T09:00:00.000000+00:00``, always 32 characters.

Every component compares and orders these columns as text (``expires_at >= ?``, ``ORDER BY
updated_at``, ``reviewed_at >= ?``), in SQLite and PostgreSQL alike; with one fixed width and
one offset, text order is time order whatever the collation. The form is the audit log's,
which could not be rewritten into another one: its table refuses every UPDATE.

Older releases also wrote ``...T09:00:00+00:00`` (no fraction when the microseconds were
zero) and ``...T09:00:00.000000Z``: :func:`from_text` still reads them, and
:func:`rewrite_older_forms` gives the migration statements that bring a column's stored
values into the one form.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from storage.database.base import sql_identifier


def utc_now() -> datetime:
    return datetime.now(UTC)


def to_text(moment: datetime) -> str:
    """``moment`` in the one form; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def from_text(text: str) -> datetime:
    """The moment a stored text names, in UTC: the one form or an older one; a text without
    an offset is UTC."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def now_text() -> str:
    return to_text(utc_now())


def rewrite_older_forms(columns: Iterable[tuple[str, str]]) -> list[str]:
    """Migration statements that rewrite the values of each (table, column) written in an
    older form (UTC without a fraction, or with ``Z``) into the one form, leaving every other
    value as it is; plain ``substr``/``length`` SQL, the same on SQLite and PostgreSQL."""
    statements = []
    for table, column in columns:
        t, c = sql_identifier(table, "table name"), sql_identifier(column, "column name")
        statements += [
            f"UPDATE {t} SET {c} = substr({c}, 1, 19) || '.000000+00:00' "
            f"WHERE length({c}) = 25 AND substr({c}, 20) = '+00:00'",
            f"UPDATE {t} SET {c} = substr({c}, 1, 26) || '+00:00' "
            f"WHERE length({c}) = 27 AND substr({c}, 27) = 'Z'",
        ]
    return statements
