"""Error bodies of the JSON API, one shape for every refusal.

Validation failures keep FastAPI's shape (``{"detail": [{"loc": [...], "msg": ..., "type":
...}]}``), so a client reads the field that is wrong from ``loc`` whether pydantic or the
service refused it; other refusals are ``{"detail": "..."}``.

Statuses: the archive's errors answer the one HTTP status each has
(:data:`storage.statuses.HTTP_STATUS_BY_ERROR`, the table DICOMweb answers from too), so a
bad query or a full store reads the same on ``/api`` as on ``/dicomweb``. The case service's
own refusals keep theirs: 422 for a field, 409 for a conflict with the case's state, 404.
Anything else is a fault of ours: 500, logged with its traceback and the request id, which
the body names so that a user's report leads to the log line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from storage.errors import ArchiveError, BackendUnavailable, ReadOnly
from storage.statuses import http_status
from teaching.api.request_id import request_id
from teaching.cases.errors import CaseError, Conflict, InvalidField
from teaching.cases.errors import NotFound as Missing

log = logging.getLogger(__name__)


async def case_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, InvalidField):
        item = {"loc": [exc.where, *exc.field], "msg": exc.message, "type": "value_error"}
        return JSONResponse({"detail": [item]}, status_code=422)
    if isinstance(exc, Conflict):
        return JSONResponse({"detail": exc.message, "instances": exc.details}, status_code=409)
    if isinstance(exc, Missing):
        return JSONResponse({"detail": str(exc)}, status_code=404)
    assert isinstance(exc, CaseError)
    return JSONResponse({"detail": str(exc)}, status_code=400)


async def archive_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ArchiveError)
    status = http_status(exc)
    if isinstance(exc, ReadOnly):  # a switch to other stores: nothing failed, try again soon
        return JSONResponse({"detail": str(exc)}, status_code=status)
    if status >= 500:
        log.error("request %s failed in a store: %s", request_id(request), exc)
        headers = (
            {"Retry-After": str(exc.retry_after)} if isinstance(exc, BackendUnavailable) else {}
        )
        return JSONResponse(
            {"detail": f"a store is unavailable; try again (request id {request_id(request)})"},
            status_code=status,
            headers=headers,
        )
    return JSONResponse({"detail": str(exc)}, status_code=status)


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("request %s failed", request_id(request), exc_info=exc)
    return JSONResponse(
        {"detail": f"internal error (request id {request_id(request)})"}, status_code=500
    )


HANDLERS: dict[int | type[Exception], Callable[[Request, Any], Coroutine[Any, Any, Response]]] = {
    CaseError: case_error,
    ArchiveError: archive_error,
    Exception: unexpected_error,
}
