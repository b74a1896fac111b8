"""The audit log's store: entries appended in group commits, searches and a streamed CSV export.

One SQL text for SQLite and PostgreSQL through :class:`storage.database.base.Database`. The
log lives in the clinical index's database (its own table and version table), so a
deployment has nothing more to run or back up, and an installation that can serve clinical
data can also audit it.

:meth:`AuditLog.record` raises :class:`~storage.errors.BackendFailure` when the database does
not take the entry (the database layer translates its driver's errors to that): the callers
(the DICOMweb middleware, the DIMSE server, the auth and case code) refuse the request then,
because serving PHI that the log does not show is worse than not serving it. Any other
exception is a fault in our code, not an outage: it propagates with its traceback, and the
request fails as a fault (500, or the DIMSE service's failure status), still unserved.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from radcase_pacs.audit.schema import DIALECT_MIGRATIONS, MIGRATIONS, VERSION_TABLE
from storage.database.base import Database
from storage.database.group_commit import GroupCommit
from storage.database.tables import Tables
from storage.database.timestamps import from_text, to_text, utc_now


class Action(StrEnum):
    """The actions the server records (dotted: subject, then verb). Entries may carry other
    dotted names; these are the ones the server itself writes."""

    CLINICAL_SEARCH = "clinical.search"
    CLINICAL_READ = "clinical.read"
    CLINICAL_STORE = "clinical.store"
    CLINICAL_DELETE = "clinical.delete"
    CLINICAL_OTHER = "clinical.other"
    """A method no clinical resource answers (PUT, PATCH...): refused by the app, but an
    attempt on the clinical root all the same."""
    DIMSE_STORE = "dimse.store"
    DIMSE_FIND = "dimse.find"
    DIMSE_MOVE = "dimse.move"
    DIMSE_GET = "dimse.get"
    IMPORT_STORE = "import.store"
    AUTH_LOGIN = "auth.login"
    AUTH_LOGIN_FAILED = "auth.login_failed"
    AUTH_LOGOUT = "auth.logout"
    USER_CREATE = "user.create"
    USER_UPDATE = "user.update"
    CASE_CREATE = "case.create"
    CASE_UPDATE = "case.update"
    CASE_PUBLISH = "case.publish"
    CASE_UNPUBLISH = "case.unpublish"
    CASE_DELETE = "case.delete"


class Channel(StrEnum):
    HTTP = "http"
    DIMSE = "dimse"
    CLI = "cli"


@dataclass(frozen=True)
class AuditEntry:
    """One audited event.

    ``route`` is the HTTP method and the route's path template (``GET
    /dicomweb/studies/{study}``), or the DIMSE association (``CALLING_AE -> CALLED_AE``);
    ``detail`` what was asked (a query string, a C-FIND's keys, SOP UIDs); ``source`` the
    client's address. ``id`` is given by the database.
    """

    tenant: str
    actor: str
    action: str
    channel: str
    route: str
    study_uid: str | None = None
    detail: str = ""
    source: str = ""
    role: str | None = None
    at: datetime = field(default_factory=utc_now)
    id: int | None = None


# Caps per column: an entry is written for requests nobody has authenticated yet, so a
# client must not be able to make one arbitrarily large. Longer values are cut and marked.
LIMITS = {
    "tenant": 64,
    "actor": 256,
    "role": 64,
    "action": 64,
    "channel": 16,
    "route": 512,
    "study_uid": 128,
    "detail": 2048,
    "source": 256,
}
TRUNCATED = " [truncated]"
COLUMNS = (
    "id",
    "at",
    "tenant",
    "actor",
    "role",
    "action",
    "channel",
    "route",
    "study_uid",
    "detail",
    "source",
)
SELECT = f"SELECT {', '.join(COLUMNS)} FROM audit_log"
EXPORT_BATCH = 500


def clip(value: str, limit: int) -> str:
    if len(value) <= limit:
        return value
    return value[: limit - len(TRUNCATED)] + TRUNCATED


def _clipped(name: str, value: str | None) -> str | None:
    return None if value is None else clip(str(value), LIMITS[name])


def _entry(row: Sequence[Any]) -> AuditEntry:
    (id_, at, tenant, actor, role, action, channel, route, study_uid, detail, source) = row
    return AuditEntry(
        id=int(id_),
        at=from_text(at),
        tenant=tenant,
        actor=actor,
        role=role,
        action=action,
        channel=channel,
        route=route,
        study_uid=study_uid,
        detail=detail,
        source=source,
    )


@dataclass(frozen=True)
class AuditFilter:
    """Which entries: ``tenant`` None means every tenant; ``since`` is inclusive and
    ``until`` exclusive, so consecutive exports neither overlap nor leave a gap."""

    tenant: str | None = None
    actor: str | None = None
    action: str | None = None
    study_uid: str | None = None
    channel: str | None = None
    source: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def where(self) -> tuple[list[str], list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for column in ("tenant", "actor", "action", "study_uid", "channel", "source"):
            value = getattr(self, column)
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if self.since is not None:
            clauses.append("at >= ?")
            params.append(to_text(self.since))
        if self.until is not None:
            clauses.append("at < ?")
            params.append(to_text(self.until))
        return clauses, params


class AuditLog(Tables):
    version_table = VERSION_TABLE
    migrations = MIGRATIONS
    dialect_migrations = DIALECT_MIGRATIONS

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self._group: GroupCommit[tuple[str | None, ...]] = GroupCommit(self._insert)

    def record(self, entry: AuditEntry) -> None:
        """Append ``entry`` (its ``id`` is ignored); BackendFailure when the database does not
        take it. Returns once the entry is committed; entries recorded at the same moment by
        other threads of this process are committed in the same transaction
        (:mod:`storage.database.group_commit`), one of the threads writing for all."""
        self._group.submit(
            (
                to_text(entry.at),
                _clipped("tenant", entry.tenant),
                _clipped("actor", entry.actor),
                _clipped("role", entry.role),
                _clipped("action", str(entry.action)),
                _clipped("channel", str(entry.channel)),
                _clipped("route", entry.route),
                _clipped("study_uid", entry.study_uid),
                _clipped("detail", entry.detail),
                _clipped("source", entry.source),
            )
        )

    def _insert(self, rows: Sequence[tuple[str | None, ...]]) -> None:
        def insert() -> None:
            with self.db.transaction() as cur:
                cur.executemany(
                    "INSERT INTO audit_log (at, tenant, actor, role, action, channel, route, "
                    "study_uid, detail, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )

        self.db.retrying(insert)

    def search(
        self, tenant: str | None, *, limit: int = 100, offset: int = 0, **filters: Any
    ) -> tuple[int, list[AuditEntry]]:
        """The number of matching entries and one page of them, newest first; ``filters``
        are :class:`AuditFilter`'s fields."""
        clauses, params = AuditFilter(tenant, **filters).where()
        condition = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        with self.db.read() as cur:
            total = cur.execute(f"SELECT COUNT(*) FROM audit_log{condition}", params).fetchone()
            rows = cur.execute(
                f"{SELECT}{condition} ORDER BY at DESC, id DESC LIMIT ? OFFSET ?",
                [*params, max(0, limit), max(0, offset)],
            ).fetchall()
        return int(total[0]), [_entry(row) for row in rows]

    def entries(self, tenant: str | None, **filters: Any) -> Iterator[AuditEntry]:
        """Every matching entry, oldest first, read in batches: no connection or cursor is
        held between batches, so a slow consumer (a client downloading the export) holds
        nothing in the database."""
        clauses, params = AuditFilter(tenant, **filters).where()
        last = 0
        while True:
            condition = " AND ".join([*clauses, "id > ?"])
            with self.db.read() as cur:
                rows = cur.execute(
                    f"{SELECT} WHERE {condition} ORDER BY id LIMIT ?",
                    [*params, last, EXPORT_BATCH],
                ).fetchall()
            for row in rows:
                yield _entry(row)
            if len(rows) < EXPORT_BATCH:
                return
            last = int(rows[-1][0])

    def export_csv(self, tenant: str | None, **filters: Any) -> Iterator[str]:
        """A header line, then one CSV line (RFC 4180, CRLF) per entry, oldest first. Values
        are written as recorded, not altered for spreadsheets: an export is evidence."""
        yield _csv_line(COLUMNS)
        for entry in self.entries(tenant, **filters):
            yield _csv_line(
                (
                    entry.id,
                    to_text(entry.at),
                    entry.tenant,
                    entry.actor,
                    entry.role or "",
                    entry.action,
                    entry.channel,
                    entry.route,
                    entry.study_uid or "",
                    entry.detail,
                    entry.source,
                )
            )


def _csv_line(values: Sequence[Any]) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(values)
    return out.getvalue()
