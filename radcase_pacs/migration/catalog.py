"""What a database holds, asked of its own catalog (the two dialects ask differently), and
the one dialect-specific write of a copy: moving an id counter past the copied ids."""

from __future__ import annotations

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
