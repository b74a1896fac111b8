"""The public service root of a request, and the resource URIs built from it.

RetrieveURL and BulkDataURI must work for the client that reads them, which often sits behind
a reverse proxy: the root honours a configured base URL first, then RFC 7239 ``Forwarded``,
then the de facto ``X-Forwarded-Proto``/``-Host``/``-Prefix``, then the request itself.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from starlette.requests import Request

_FORWARDED_PAIR = re.compile(r'\s*([a-zA-Z]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s]*)\s*')
_HOST = re.compile(r"^[A-Za-z0-9.\-\[\]:]+$")


def service_root(request: Request, base_url: str | None = None) -> str:
    """The absolute URL of the DICOMweb root this request addressed, without a trailing '/'."""
    if base_url:
        return base_url.rstrip("/")
    proto, host = _forwarded(request.headers.get("forwarded", ""))
    proto = proto or _first(request.headers.get("x-forwarded-proto"))
    host = host or _first(request.headers.get("x-forwarded-host"))
    prefix = _first(request.headers.get("x-forwarded-prefix")) or ""
    if proto not in ("http", "https"):
        proto = request.url.scheme
    if not host or not _HOST.match(host):
        host = request.headers.get("host") or request.url.netloc
        if not _HOST.match(host):
            host = request.url.netloc
    root_path = request.scope.get("root_path", "")
    return f"{proto}://{host}{_clean_prefix(prefix)}{root_path}".rstrip("/")


def _forwarded(header: str) -> tuple[str | None, str | None]:
    """``proto`` and ``host`` from the first element of a Forwarded header (RFC 7239 §4)."""
    first = header.split(",", 1)[0]
    proto = host = None
    for name, value in _FORWARDED_PAIR.findall(first):
        value = value[1:-1] if value.startswith('"') else value
        if name.lower() == "proto":
            proto = value.lower()
        elif name.lower() == "host":
            host = value
    return proto, host


def _first(value: str | None) -> str | None:
    return value.split(",", 1)[0].strip() if value else None


def _clean_prefix(prefix: str) -> str:
    prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
    return quote(prefix, safe="/-._~")


def study_url(root: str, study_uid: str) -> str:
    return f"{root}/studies/{study_uid}"


def series_url(root: str, study_uid: str, series_uid: str) -> str:
    return f"{root}/studies/{study_uid}/series/{series_uid}"


def instance_url(root: str, study_uid: str, series_uid: str, sop_uid: str) -> str:
    return f"{root}/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}"
