"""Auditing of the clinical DICOMweb root: one entry per request, written before the request
reaches the app.

Before, not after: an entry written once the response is out would let a failure of the log
go unnoticed until PHI had already left. When the entry cannot be written (the log's
database fails: BackendFailure) the request is answered 503 and the app never sees it (so a
STOW-RS body is not stored either). Any other exception is a fault in our code: it propagates
to the server's 500, and the app does not run either.

The entry records the request, not its results: a search by patient name is recorded with
its query string, not with the studies it matched (the same choice as the DICOM Query audit
message, PS3.15 A.5, which carries the query itself). The teaching root and the JSON API are
not wrapped: they serve de-identified copies and teaching data, not clinical data.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl

from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from dicomweb.errors import retry_after
from dicomweb.lanes import in_thread
from radcase_pacs.audit.store import Action, AuditEntry, AuditLog, Channel
from radcase_pacs.auth.principal import principal_of
from storage.errors import BackendFailure, ReadOnly

logger = logging.getLogger(__name__)

# The QIDO-RS search resources (PS3.18 §10.6): a GET whose last segment names one searches.
SEARCH_RESOURCES = frozenset({"studies", "series", "instances"})
# Where a request names its study outside the path: QIDO-RS by keyword or by tag, WADO-URI.
STUDY_PARAMETERS = ("StudyInstanceUID", "0020000D", "studyUID")
STUDY_IN_PATH = re.compile(r"/studies/([^/]+)")
REFUSAL = "The audit log is unavailable, so the request was refused (nothing was served).\n"


def clinical_action(method: str, path: str) -> Action:
    """The action of a request on the clinical root, ``path`` being the route template when
    known (so a UID can never pass for a resource name) or else the path."""
    if method in ("GET", "HEAD"):
        last = path.rstrip("/").rsplit("/", 1)[-1]
        return Action.CLINICAL_SEARCH if last in SEARCH_RESOURCES else Action.CLINICAL_READ
    if method == "POST":
        return Action.CLINICAL_STORE
    if method == "DELETE":
        return Action.CLINICAL_DELETE
    return Action.CLINICAL_OTHER


def single_uid(value: str | None) -> str | None:
    """``value`` when it names one UID; None for empty values and lists (a list stays in
    the entry's detail, with the rest of the query)."""
    if not value or any(sep in value for sep in (",", "\\")):
        return None
    return value.strip() or None


def source_of(scope: Scope) -> str:
    """The client's address as the server saw it. Forwarded headers are not trusted here:
    any client can send them."""
    client = scope.get("client")
    return str(client[0]) if client else ""


def http_entry(
    scope: Scope,
    action: str,
    default_tenant: str,
    *,
    route: str | None = None,
    study_uid: str | None = None,
    detail: str = "",
) -> AuditEntry:
    """An entry for an HTTP request: who from the principal authentication put in the scope
    (else ``anonymous`` in ``default_tenant``), from where, and through which route (the
    method and the route's template once a router has matched it, else the path)."""
    principal = principal_of(scope)
    if route is None:
        matched = scope.get("route")
        template = getattr(matched, "path", None)
        path = f"{scope.get('root_path', '')}{template}" if template else scope.get("path", "")
        route = f"{scope.get('method', '')} {path}"
    return AuditEntry(
        tenant=principal.tenant if principal else default_tenant,
        actor=principal.user if principal else "anonymous",
        role=str(principal.role) if principal else None,
        action=action,
        channel=Channel.HTTP,
        route=route,
        study_uid=study_uid,
        detail=detail,
        source=source_of(scope),
    )


def match_route(routes: Sequence[BaseRoute], scope: Scope) -> tuple[str | None, Mapping[str, Any]]:
    """The template of the route that will answer (or, for a method it does not allow, of
    the route whose path matches) and its path parameters; (None, {}) when none matches."""
    partial: tuple[str | None, Mapping[str, Any]] | None = None
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.NONE:
            continue
        found = (getattr(route, "path", None), child.get("path_params", {}))
        if match is Match.FULL:
            return found
        partial = partial or found
    return partial or (None, {})


class AuditMiddleware:
    """Wraps the clinical DICOMweb app: every HTTP request but CORS preflights (OPTIONS,
    which read nothing) is recorded before the app runs, or refused with 503."""

    def __init__(self, app: ASGIApp, log: AuditLog, default_tenant: str) -> None:
        self.app = app
        self.log = log
        self.default_tenant = default_tenant
        # The wrapped app's routes give each entry its route template and study parameter.
        self.routes: list[BaseRoute] = list(getattr(app, "routes", ()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        entry = self.entry(scope)
        try:
            await in_thread(self.log.record, entry)
        except ReadOnly as exc:  # a switch to other stores: nothing is wrong, try again soon
            await PlainTextResponse(f"{exc}\n", status_code=503)(scope, receive, send)
            return
        except BackendFailure as exc:
            logger.exception("audit entry not written, %s (%s) refused", entry.action, entry.route)
            response = PlainTextResponse(REFUSAL, status_code=503, headers=retry_after(exc))
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def entry(self, scope: Scope) -> AuditEntry:
        method = scope["method"]
        template, params = match_route(self.routes, scope)
        root = scope.get("root_path", "")
        query = scope.get("query_string", b"").decode("latin-1")
        relative = template if template is not None else _relative_path(scope)
        if template is not None:
            study = params.get("study")
        else:
            found = STUDY_IN_PATH.search(relative)
            study = found.group(1) if found else None
        if study is None:
            values = dict(parse_qsl(query, keep_blank_values=True))
            study = next((values[p] for p in STUDY_PARAMETERS if p in values), None)
        return http_entry(
            scope,
            clinical_action(method, relative),
            self.default_tenant,
            route=f"{method} {root}{relative}",
            study_uid=single_uid(study),
            detail=query,
        )


def _relative_path(scope: Scope) -> str:
    root, path = str(scope.get("root_path", "")), str(scope.get("path", ""))
    return path[len(root) :] if root and path.startswith(root) else path
