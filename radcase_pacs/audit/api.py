"""Reading the audit log over the JSON API: ``GET /audit`` (a page, newest first) and
``GET /audit.csv`` (every matching entry, oldest first, streamed).

The router holds no policy: who may call it is decided where it is included, and
``tenant_of`` says whose entries the caller sees (None: every tenant's). Filters that do not
parse are a 422 whose ``detail[].loc`` names the parameter, like the rest of the API.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from radcase_pacs.audit.store import AuditEntry, AuditLog

MAX_PAGE = 1000
CHUNK = 64 * 1024


class AuditEntryOut(BaseModel):
    id: int
    at: datetime = Field(description="When, in UTC")
    tenant: str
    actor: str = Field(description="User name, calling AE title, or 'anonymous'")
    role: str | None
    action: str = Field(description="Dotted name, e.g. clinical.read, dimse.move, auth.login")
    channel: str = Field(description="http or dimse")
    route: str = Field(description="HTTP method and route template, or 'CALLING -> CALLED'")
    study_uid: str | None
    detail: str = Field(description="What was asked: a query string, C-FIND keys, SOP UIDs")
    source: str = Field(description="The client's address")

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditEntryOut:
        assert entry.id is not None
        return cls(
            id=entry.id,
            at=entry.at,
            tenant=entry.tenant,
            actor=entry.actor,
            role=entry.role,
            action=entry.action,
            channel=entry.channel,
            route=entry.route,
            study_uid=entry.study_uid,
            detail=entry.detail,
            source=entry.source,
        )


class AuditPage(BaseModel):
    total: int = Field(description="How many entries match, over every page")
    entries: list[AuditEntryOut]


Text = Annotated[str | None, Query(max_length=256)]
Moment = Annotated[
    datetime | None, Query(description="ISO-8601; without an offset, UTC; since ≤ at < until")
]
ChannelParam = Annotated[Literal["http", "dimse"] | None, Query()]


def filters(
    actor: Text = None,
    action: Text = None,
    study_uid: Text = None,
    channel: ChannelParam = None,
    source: Annotated[str | None, Query(max_length=256, description="Client address")] = None,
    since: Moment = None,
    until: Moment = None,
) -> dict[str, Any]:
    """The query parameters both routes filter by (AuditFilter's fields)."""
    return {
        "actor": actor,
        "action": action,
        "study_uid": study_uid,
        "channel": channel,
        "source": source,
        "since": since,
        "until": until,
    }


Filters = Annotated[dict[str, Any], Depends(filters)]


def audit_router(log: AuditLog, tenant_of: Callable[[Request], str | None]) -> APIRouter:
    router = APIRouter(tags=["audit"])

    @router.get("/audit", response_model=AuditPage, summary="Audit entries, newest first")
    def search(
        request: Request,
        where: Filters,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
        offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    ) -> AuditPage:
        total, entries = log.search(tenant_of(request), limit=limit, offset=offset, **where)
        return AuditPage(total=total, entries=[AuditEntryOut.of(e) for e in entries])

    @router.get(
        "/audit.csv",
        response_class=StreamingResponse,
        summary="Every matching audit entry as CSV, oldest first",
        responses={200: {"content": {"text/csv": {}}}},
    )
    def export(request: Request, where: Filters) -> StreamingResponse:
        lines = log.export_csv(tenant_of(request), **where)
        # The header and the first row now, so that a database that cannot answer is an
        # error status rather than a 200 cut short.
        first = list(itertools.islice(lines, 2))
        return StreamingResponse(
            _chunks(itertools.chain(first, lines)),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
        )

    return router


def _chunks(lines: Iterator[str]) -> Iterator[bytes]:
    """Lines grouped into chunks of about 64 KiB: one send per line would cost more than
    the line."""
    buffer: list[str] = []
    size = 0
    for line in lines:
        buffer.append(line)
        size += len(line)
        if size >= CHUNK:
            yield "".join(buffer).encode()
            buffer, size = [], 0
    if buffer:
        yield "".join(buffer).encode()
