"""Reading and changing the deployment's mode (one row of ``deployment_mode``).

Its database handle is its own and never guarded: the switch sets and clears the flag that
the guards of every other handle read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from radcase_pacs.mode.schema import MIGRATIONS, VERSION_TABLE
from storage.database.tables import Tables
from storage.database.timestamps import from_text, now_text


@dataclass(frozen=True)
class Mode:
    read_only: bool = False
    retry_after: int = 0
    """Seconds a refused client is told to wait (``Retry-After``)."""
    reason: str = ""
    changed_at: datetime | None = None
    took_over_from: str | None = None
    """Which deployment this one took over from by a switch (its masked index URL): copying
    into it again would undo what it has taken in since."""
    took_over_at: datetime | None = None


WRITABLE = Mode()

UPSERT = (
    "INSERT INTO deployment_mode "
    "(id, read_only, retry_after, reason, changed_at, took_over_from, took_over_at) "
    "VALUES (1, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
    "read_only = excluded.read_only, retry_after = excluded.retry_after, "
    "reason = excluded.reason, changed_at = excluded.changed_at, "
    "took_over_from = excluded.took_over_from, took_over_at = excluded.took_over_at"
)


class ModeStore(Tables):
    version_table = VERSION_TABLE
    migrations = MIGRATIONS

    def mode(self) -> Mode:
        with self.db.read() as cur:
            row = cur.execute(
                "SELECT read_only, retry_after, reason, changed_at, took_over_from, took_over_at "
                "FROM deployment_mode WHERE id = 1"
            ).fetchone()
        if row is None:
            return WRITABLE
        read_only, retry_after, reason, changed_at, took_over_from, took_over_at = row
        return Mode(
            read_only=bool(read_only),
            retry_after=int(retry_after),
            reason=reason,
            changed_at=from_text(changed_at),
            took_over_from=took_over_from,
            took_over_at=from_text(took_over_at) if took_over_at else None,
        )

    def set_read_only(self, reason: str, retry_after: int) -> None:
        self._write(read_only=True, reason=reason, retry_after=retry_after)

    def set_writable(self) -> None:
        self._write(read_only=False, reason="", retry_after=0)

    def mark_taken_over(self, source: str) -> None:
        """Record that this deployment now serves in place of ``source``."""
        self._write(took_over_from=source, took_over_at=now_text())

    def clear_taken_over(self) -> None:
        """This deployment hands over to another: copying into it is allowed again."""
        self._write(took_over_from=None, took_over_at=None)

    def _write(self, **changes: object) -> None:
        with self.db.transaction() as cur:
            row = cur.execute(
                "SELECT read_only, retry_after, reason, took_over_from, took_over_at "
                "FROM deployment_mode WHERE id = 1"
            ).fetchone()
            current = dict(
                zip(
                    ("read_only", "retry_after", "reason", "took_over_from", "took_over_at"),
                    row or (0, 0, "", None, None),
                    strict=True,
                )
            )
            current.update(changes)
            cur.execute(
                UPSERT,
                (
                    int(bool(current["read_only"])),
                    current["retry_after"],
                    current["reason"],
                    now_text(),
                    current["took_over_from"],
                    current["took_over_at"],
                ),
            )
