"""The embedded index: :class:`~storage.index.sql.SqlIndex` over one SQLite file
(:mod:`storage.database.sqlite` says how it is opened and why writers queue).

Writers queue, so neither per-study locks nor retries are needed; what stays here is matching,
with ``GLOB``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from storage.database.sqlite import SqliteDatabase
from storage.index.matching import ONE, PatternSyntax
from storage.index.sql import SqlIndex


class GlobSyntax:
    """SQLite's GLOB is case-sensitive like DICOM matching; ``*``, ``?`` and ``[`` in the
    literal text are escaped as one-character classes."""

    def pattern(self, column: str, parts: list[str | None]) -> tuple[str, list[Any]]:
        text = "".join(
            "*" if part is None else "?" if part == ONE else _glob_escape(part) for part in parts
        )
        return f"{column} GLOB ?", [text]

    def one_of(self, column: str, values: frozenset[str]) -> tuple[str, list[Any]]:
        return f"{column} IN (SELECT value FROM json_each(?))", [json.dumps(sorted(values))]


def _glob_escape(text: str) -> str:
    return text.replace("[", "[[]").replace("*", "[*]").replace("?", "[?]")


class SqliteIndex(SqlIndex[SqliteDatabase]):
    syntax: ClassVar[PatternSyntax] = GlobSyntax()

    def __init__(self, database: SqliteDatabase | Path) -> None:
        """``database`` or the path of the SQLite file to keep the index in."""
        if isinstance(database, Path):
            database = SqliteDatabase(database)
        super().__init__(database)
