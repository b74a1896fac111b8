"""Error bodies of the JSON API, one shape for every refusal.

Validation failures keep FastAPI's shape (``{"detail": [{"loc": [...], "msg": ..., "type":
...}]}``), so a client reads the field that is wrong from ``loc`` whether pydantic or the
service refused it; other refusals are ``{"detail": "..."}``.
"""

from __future__ import annotations

import logging

from fastapi import Request
from fastapi.responses import JSONResponse

from storage.errors import ArchiveError, BackendFailure, NotFound
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
    if isinstance(exc, NotFound):
        return JSONResponse({"detail": str(exc)}, status_code=404)
    if isinstance(exc, BackendFailure):
        log.error("teaching API: %s", exc)
        return JSONResponse({"detail": "a store is unavailable; try again"}, status_code=503)
    assert isinstance(exc, ArchiveError)
    return JSONResponse({"detail": str(exc)}, status_code=409)


HANDLERS = {CaseError: case_error, ArchiveError: archive_error}
