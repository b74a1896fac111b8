"""The mode table, in the clinical index database under its own version table: one row, or
none for a deployment that was never switched (serving, writable)."""

from __future__ import annotations

VERSION_TABLE = "mode_schema_version"

MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE deployment_mode (
            id INTEGER PRIMARY KEY,
            read_only INTEGER NOT NULL,
            retry_after INTEGER NOT NULL,
            reason TEXT NOT NULL,
            changed_at TEXT NOT NULL,
            took_over_from TEXT,
            took_over_at TEXT
        )""",
    ],
]
