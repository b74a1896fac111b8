"""Authentication and authorization of every HTTP request, in front of every mounted app.

Credentials: ``Authorization: Bearer <JWT access token>`` (users, from ``POST
/api/auth/token``) or ``Authorization: Bearer rk_...`` / ``X-API-Key: rk_...`` (service
accounts). The principal found is put in the request scope (``principal``, ``user``,
``tenant``), so the protocol apps scope every query by its institution without knowing how
it was established. CORS preflights (OPTIONS) pass unauthenticated: browsers never send
credentials on them, and they reach no data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from radcase_pacs.auth.policy import rule_for
from radcase_pacs.auth.principal import Principal, Role, attach
from radcase_pacs.auth.sessions import Sessions
from radcase_pacs.auth.users import API_KEY_PREFIX, UserStore
from storage.errors import ArchiveError


@dataclass(frozen=True)
class Authenticator:
    sessions: Sessions
    users: UserStore

    def principal(self, authorization: str, api_key: str) -> Principal | None:
        scheme, _, credentials = authorization.partition(" ")
        token = credentials.strip() if scheme.lower() == "bearer" else ""
        token = token or api_key.strip()
        if not token:
            return None
        if token.startswith(API_KEY_PREFIX):
            key = self.users.api_key(token)
            return None if key is None else Principal(key.name, key.tenant, Role.SERVICE)
        return self.sessions.verify(token)


class AuthMiddleware:
    """``open_tenant`` set means authentication is off (a local demo on loopback): every
    request acts as an admin of that institution."""

    def __init__(
        self,
        app: ASGIApp,
        authenticator: Authenticator,
        home_tenant: str,
        open_tenant: str | None = None,
        cors_origins: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.authenticator = authenticator
        self.home_tenant = home_tenant
        self.open_tenant = open_tenant
        self.cors_origins = cors_origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        if self.open_tenant is not None:
            attach(scope, Principal("anonymous", self.open_tenant, Role.ADMIN))
            await self.app(scope, receive, send)
            return
        rule = rule_for(scope["method"], scope["path"])
        principal = await self._principal(scope)
        if principal is not None:
            attach(scope, principal)
        roles = rule.roles if rule is not None else frozenset()
        if roles is None:
            await self.app(scope, receive, send)
        elif principal is None:
            await self._refuse(scope, send, 401, "authentication required")
        elif principal.role not in roles or (
            rule is not None and rule.home_only and principal.tenant != self.home_tenant
        ):
            await self._refuse(scope, send, 403, f"not allowed for the {principal.role.value} role")
        else:
            await self.app(scope, receive, send)

    async def _refuse(self, scope: Scope, send: Send, status: int, detail: str) -> None:
        """A JSON refusal a browser on another origin can read (else a viewer would see a
        CORS failure instead of "log in again")."""
        body = json.dumps({"detail": detail}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        if status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="radcase"'))
        origin = dict(scope["headers"]).get(b"origin")
        allowed = "*" in self.cors_origins or (origin or b"").decode() in self.cors_origins
        if origin is not None and allowed:
            headers.append((b"access-control-allow-origin", origin))
            headers.append((b"vary", b"Origin"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _principal(self, scope: Scope) -> Principal | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        authorization = headers.get("authorization", "")
        api_key = headers.get("x-api-key", "")
        if not (authorization or api_key):
            return None
        try:
            return await run_in_threadpool(self.authenticator.principal, authorization, api_key)
        except ArchiveError:
            return None
