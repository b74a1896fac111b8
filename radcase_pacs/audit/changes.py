"""Auditing of changes made through the JSON API: cases, users, API keys, institutions,
logouts. One entry per changing request, written before the request runs (a change that
cannot be recorded because the log's database fails is not made: 503; any other exception is
a fault of ours and propagates to the server's 500, the change not made either). Logins are
recorded by the login route itself, which alone knows whether the attempt succeeded."""

from __future__ import annotations

import logging

import anyio.to_thread
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from dicomweb.errors import retry_after
from radcase_pacs.audit.middleware import http_entry, match_route
from radcase_pacs.audit.store import AuditEntry, AuditLog
from radcase_pacs.routes import leaves
from storage.errors import BackendFailure, ReadOnly

logger = logging.getLogger(__name__)

CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ACTIONS: dict[tuple[str, str], str] = {
    ("POST", "/cases"): "case.create",
    ("PATCH", "/cases/{case_id}"): "case.update",
    ("DELETE", "/cases/{case_id}"): "case.delete",
    ("POST", "/cases/{case_id}/publish"): "case.publish",
    ("POST", "/cases/{case_id}/unpublish"): "case.unpublish",
    ("POST", "/cases/{case_id}/instances/{sop_instance_uid}/review"): "case.review",
    ("POST", "/users"): "user.create",
    ("PATCH", "/users/{username}"): "user.update",
    ("POST", "/institutions"): "institution.create",
    ("POST", "/api-keys"): "apikey.create",
    ("DELETE", "/api-keys/{key_id}"): "apikey.disable",
    ("POST", "/auth/logout"): "auth.logout",
}
NOT_HERE = frozenset({("POST", "/auth/token")})


class ChangeAuditMiddleware:
    def __init__(self, app: ASGIApp, log: AuditLog, default_tenant: str) -> None:
        self.app = app
        self.log = log
        self.default_tenant = default_tenant
        self.routes: list[BaseRoute] = [r for _, r in leaves(getattr(app, "routes", ()))]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        entry = self.entry(scope) if scope["type"] == "http" else None
        if entry is not None:
            try:
                await anyio.to_thread.run_sync(self.log.record, entry)
            except ReadOnly as exc:  # a switch to other stores: try again soon
                await JSONResponse({"detail": str(exc)}, 503)(scope, receive, send)
                return
            except BackendFailure as exc:
                logger.exception("audit entry not written, %s refused", entry.route)
                response = JSONResponse(
                    {"detail": "the audit log is unavailable; nothing was changed"},
                    503,
                    headers=retry_after(exc),
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def entry(self, scope: Scope) -> AuditEntry | None:
        method = scope["method"]
        if method not in CHANGES:
            return None
        template, params = match_route(self.routes, scope)
        if template is None or (method, template) in NOT_HERE:
            return None
        action = ACTIONS.get((method, template), f"api.{method.lower()}")
        detail = " ".join(f"{k}={v}" for k, v in sorted(params.items()))
        root = scope.get("root_path", "")
        return http_entry(
            scope, action, self.default_tenant, route=f"{method} {root}{template}", detail=detail
        )
