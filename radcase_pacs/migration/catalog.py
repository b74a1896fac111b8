"""What a database holds, asked of its own catalog (the two dialects ask differently), and
the two things a copy says differently to each: matching a list of keys, and moving an id
counter past the copied ids."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from storage.database.base import Cursor, Database, sql_identifier


def table_names(db: Database) -> set[str]:
    """The tables of the database (its schema, on PostgreSQL), SQLite's own aside."""
    with db.read() as cur:
        if db.dialect == "sqlite":
            rows = cur.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            ).fetchall()
        else:
            rows = cur.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
            ).fetchall()
    return {str(row[0]) for row in rows}


def column_names(db: Database, table: str) -> list[str]:
    """The columns of ``table`` in their order (a column added by a later migration is
    carried without anyone listing it)."""
    name = sql_identifier(table, "table name")
    with db.read() as cur:
        if db.dialect == "sqlite":
            rows = cur.execute(f"PRAGMA table_info({name})").fetchall()
            return [str(row[1]) for row in rows]
        rows = cur.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
            (name,),
        ).fetchall()
    return [str(row[0]) for row in rows]


ARRAYS = {"smallint": "smallint[]", "integer": "integer[]", "bigint": "bigint[]", "text": "text[]"}
"""The array type of each type a key column has."""


def column_types(db: Database, table: str) -> dict[str, str]:
    """PostgreSQL's name of each column's type (``bigint``, ``text``...); empty on SQLite,
    whose columns take any value."""
    if db.dialect == "sqlite":
        return {}
    with db.read() as cur:
        rows = cur.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = ?",
            (sql_identifier(table, "table name"),),
        ).fetchall()
    return {str(name): str(kind) for name, kind in rows}


def keys_condition(
    db: Database, columns: Sequence[str], types: dict[str, str], keys: Sequence[Sequence[Any]]
) -> tuple[str, list[Any]]:
    """A WHERE condition matching the rows whose ``columns`` hold one of ``keys``.

    SQLite: a list of values (``IN (?, ...)``, or row values for several columns).
    PostgreSQL: one array per column (``= ANY(?)``, or ``unnest``), because psycopg parses a
    statement's placeholders anew each time once there are more than a few dozen of them,
    which made a page of lookups cost more than the lookups themselves."""
    names = [sql_identifier(c, "column name") for c in columns]
    if db.dialect == "sqlite":
        if len(names) == 1:
            return f"{names[0]} IN ({', '.join('?' for _ in keys)})", [k[0] for k in keys]
        one = "(" + ", ".join("?" for _ in names) + ")"
        values = ", ".join(one for _ in keys)
        return f"({', '.join(names)}) IN (VALUES {values})", [v for k in keys for v in k]
    arrays = [[k[n] for k in keys] for n in range(len(names))]
    casts = [f"?::{ARRAYS[types[c]]}" for c in names]
    if len(names) == 1:
        return f"{names[0]} = ANY({casts[0]})", arrays
    return f"({', '.join(names)}) IN (SELECT * FROM unnest({', '.join(casts)}))", arrays


def move_counter_past_ids(db: Database, cur: Cursor, table: str) -> None:
    """After rows were inserted with their ``id`` given: the next id the database hands out
    is above every id in the table. SQLite's AUTOINCREMENT does this by itself; a PostgreSQL
    identity column keeps its sequence where it was unless told."""
    if db.dialect == "sqlite":
        return
    name = sql_identifier(table, "table name")
    cur.execute(
        f"SELECT setval(pg_get_serial_sequence(?, 'id'), COALESCE(MAX(id), 0) + 1, false) "
        f"FROM {name}",
        (name,),
    )
