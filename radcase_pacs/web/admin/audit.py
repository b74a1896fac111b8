"""The audit log for administrators: filtered by user, action, study, client address and
time, paged newest first, and exported as CSV through the API's export
(``/api/audit.csv``, which the session cookie reaches) with the same filters.

Times in the form are the browser's ``datetime-local`` values, read as UTC (the log's own
time, shown as such on the page); a value that does not parse is a 400 naming the field.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from radcase_pacs.web.context import Web, who

PAGE = 50
TEXT_FILTERS = ("actor", "action", "study_uid", "source")
TIME_FILTERS = ("since", "until")
LABELS = {"since": "From", "until": "Until"}


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def read_filters(request: Request) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """(filters for the log, the form's values as given, problems)."""
    given = {name: request.query_params.get(name, "").strip()[:256] for name in TEXT_FILTERS}
    filters: dict[str, Any] = {name: value for name, value in given.items() if value}
    errors = []
    for name in TIME_FILTERS:
        text = request.query_params.get(name, "").strip()[:64]
        given[name] = text
        if text:
            try:
                filters[name] = _moment(text)
            except ValueError:
                errors.append(f"{LABELS[name]}: not a date and time ({text!r}).")
    return filters, given, errors


def audit_routes(web: Web) -> list[Route]:
    log = web.deployment.audit

    async def audit_page(request: Request) -> Response:
        filters, given, errors = read_filters(request)
        page_text = request.query_params.get("page", "1")
        page = int(page_text) if page_text.isdigit() and 0 < int(page_text) < 10**6 else 1
        context: dict[str, Any] = {"given": given, "errors": errors, "page": page}
        if errors:
            context.update(total=0, entries=[], pages=0, export="", query="")
            return web.pages.render(request, "admin_audit.html", context, status_code=400)
        total, entries = await run_in_threadpool(
            log.search, who(request).tenant, limit=PAGE, offset=(page - 1) * PAGE, **filters
        )
        query = {k: v for k, v in given.items() if v}
        context.update(
            total=total,
            entries=entries,
            pages=max(1, -(-total // PAGE)),
            export="/api/audit.csv" + (f"?{urlencode(query)}" if query else ""),
            query=urlencode(query),
        )
        return web.pages.render(request, "admin_audit.html", context)

    return [Route("/admin/audit", audit_page, methods=["GET"])]
