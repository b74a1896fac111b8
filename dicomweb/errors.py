"""HTTP errors of the DICOMweb layer and the translation of the archive's error tree.

Every ``storage.errors`` class has exactly one HTTP status, the one of
:data:`storage.statuses.HTTP_STATUS_BY_ERROR` (shared with the teaching API; a test checks it
is complete), and input can only ever produce a 4xx: 5xx means a store failed, and is logged
with the request id.
"""

from __future__ import annotations

import logging
from urllib.parse import unquote_to_bytes

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from storage import errors as storage_errors
from storage.statuses import http_status

log = logging.getLogger(__name__)


class HttpError(Exception):
    """An error response with a short text body that says what was wrong."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def bad_request(parameter: str, reason: str) -> HttpError:
    """400 that names the offending parameter (PS3.18 §8.1.2.1)."""
    return HttpError(400, f"{parameter}: {reason}")


def check_query_encoding(request: Request) -> None:
    """400 for a query string whose percent-encoded bytes are not UTF-8 (RFC 3986 §2.5).

    The request parser would quietly turn them into U+FFFD, and a search would then run for
    a value the client never sent; naming the problem is more useful.
    """
    raw: bytes = request.scope.get("query_string", b"")
    for piece in raw.split(b"&"):
        try:
            unquote_to_bytes(piece.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise bad_request(
                "query string", f"{piece[:40]!r} is not percent-encoded UTF-8"
            ) from exc


def not_acceptable(reason: str) -> HttpError:
    return HttpError(406, f"Not Acceptable: {reason}")


def request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", "-"))


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HttpError)
    return PlainTextResponse(exc.message, exc.status, headers=exc.headers)


def retry_after(exc: Exception) -> dict[str, str]:
    """``Retry-After`` (RFC 9110 §10.2.3) for a store that did not answer: how many seconds a
    client (a viewer, a load balancer) should wait before asking again; none otherwise."""
    if isinstance(exc, storage_errors.BackendUnavailable):
        return {"Retry-After": str(exc.retry_after)}
    return {}


async def archive_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, storage_errors.ArchiveError)
    status = http_status(exc)
    if isinstance(exc, storage_errors.ReadOnly):  # a switch to other stores: try again soon
        return PlainTextResponse(str(exc), status)
    if status >= 500:
        log.error("request %s failed in a store: %s", request_id(request), exc)
        return PlainTextResponse(
            f"The archive could not complete the request (request id {request_id(request)})",
            status,
            headers=retry_after(exc),
        )
    return PlainTextResponse(str(exc), status)
