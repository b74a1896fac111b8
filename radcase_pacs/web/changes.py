"""Recording a change made through a page in the audit log, before it is made.

The same rule as the JSON API's change audit (:mod:`radcase_pacs.audit.changes`): an
administrative change that cannot be recorded is not made (503), so the log never misses
one.
"""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request

from radcase_pacs.audit.store import AuditEntry, Channel
from radcase_pacs.web.context import Web, who
from storage.errors import BackendFailure, ReadOnly

log = logging.getLogger(__name__)


async def record_change(
    web: Web, request: Request, action: str, detail: str = "", *, study_uid: str | None = None
) -> None:
    """Writes the entry of ``action`` (``user.create``...) for this request's route;
    ``study_uid`` names the clinical study a page read or made a case from."""
    principal = who(request)
    route = request.scope.get("route")
    template = getattr(route, "path", request.url.path)
    entry = AuditEntry(
        tenant=principal.tenant,
        actor=principal.user,
        role=principal.role.value,
        action=action,
        channel=Channel.HTTP,
        route=f"{request.method} {template}",
        study_uid=study_uid,
        detail=detail,
        source=request.client.host if request.client else "",
    )
    try:
        await run_in_threadpool(web.deployment.audit.record, entry)
    except ReadOnly:
        raise  # a switch to other stores: the app's page says when to try again
    except BackendFailure as exc:
        log.exception("audit entry not written, %s refused", entry.route)
        raise HTTPException(503, "The audit log is unavailable; nothing was changed.") from exc
