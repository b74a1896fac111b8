"""A component that keeps its own tables in a database (teaching cases, users, the audit
log): opened, migrated under its own version table, pinged and closed the same way."""

from __future__ import annotations

import secrets
from typing import ClassVar

from storage.database.base import Database


class Tables:
    version_table: ClassVar[str]
    migrations: ClassVar[list[list[str]]]
    dialect_migrations: ClassVar[dict[str, dict[int, list[str]]]] = {}
    """Per dialect: statements run after shared migration N on that dialect only."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.db!r})"

    def open(self) -> None:
        self.db.open()
        self.db.migrate(
            self.version_table, self.migrations, self.dialect_migrations.get(self.db.dialect)
        )

    def close(self) -> None:
        self.db.close()

    def ping(self) -> None:
        self.db.ping()

    def kept_secret(self, table: str) -> str:
        """A random key made by whichever process asks first and read by all the others: the
        one row of ``table`` (``id INTEGER PRIMARY KEY, secret TEXT``). Processes sharing the
        database agree on it without any local state. Read first: once made, asking for it
        writes nothing (and so works while the deployment is read-only)."""
        with self.db.read() as cur:
            found = cur.execute(f"SELECT secret FROM {table} WHERE id = 1").fetchone()
        if found is not None:
            return str(found[0])
        with self.db.transaction() as cur:
            cur.execute(
                f"INSERT INTO {table} (id, secret) VALUES (1, ?) ON CONFLICT (id) DO NOTHING",
                (secrets.token_hex(32),),
            )
            row = cur.execute(f"SELECT secret FROM {table} WHERE id = 1").fetchone()
        return str(row[0])
