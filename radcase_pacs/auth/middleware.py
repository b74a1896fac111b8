"""Authentication and authorization of every HTTP request, in front of every mounted app.

Credentials: ``Authorization: Bearer <JWT access token>`` (users, from ``POST
/api/auth/token``), ``Authorization: Bearer rk_...`` / ``X-API-Key: rk_...`` (service
accounts), or the web app's session cookie (people in a browser; :mod:`.browser`), which the
same role rules apply to and which must come with its CSRF token on any request that changes
state. The principal found is put in the request scope (``principal``, ``user``, ``tenant``),
so the protocol apps scope every query by its institution without knowing how it was
established. CORS preflights (OPTIONS) pass unauthenticated: browsers never send credentials
on them, and they reach no data.

Refusals are JSON for the protocol roots; for the web app's pages they are what a browser
needs: a redirect to the sign-in page (401) or a page saying the role may not go there (403).

Credentials are checked against the users and the session registry in the database, never
against the cache (:mod:`radcase_pacs.auth.sessions`), so a cache outage changes nothing here.
When the database cannot answer, a request that needs a principal is refused with 503 and a
Retry-After, never 401: a 401 tells a client its credentials are bad, and clients answer it by
discarding their token and signing in again, which would fail too. A route that needs none
(static files, the sign-in form, ``/healthz``) goes on without one, even when the request
carries credentials.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from urllib.parse import quote

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dicomweb.lanes import in_thread
from radcase_pacs.auth import browser
from radcase_pacs.auth.policy import Rule, rule_for
from radcase_pacs.auth.principal import Principal, Role, attach
from radcase_pacs.auth.sessions import Sessions
from radcase_pacs.auth.users import API_KEY_PREFIX, UserStore
from storage.errors import BackendFailure

log = logging.getLogger(__name__)

UNCHECKED = "credentials cannot be checked right now (the user database is unavailable)"
RETRY_AFTER_SECONDS = 5
"""Retry-After of a 503 for unchecked credentials: a database restart or failover takes
seconds, and a client should neither hammer nor give up."""


class Unchecked(Exception):
    """The credentials presented could not be checked: a store failed, not the client."""


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

    def cookie_principal(self, cookie: str) -> Principal | None:
        return self.sessions.verify_cookie(cookie)

    def csrf_valid(self, principal: Principal, given: str) -> bool:
        return browser.csrf_valid(self.sessions.signing_key, principal.session, given)


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
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        rule = rule_for(scope["method"], scope["path"])
        try:
            principal, by_cookie = await self._principal(headers)
        except Unchecked:
            if rule is None or rule.roles is not None:
                await self._refuse(scope, send, 503, UNCHECKED, rule)
                return
            principal, by_cookie = None, False
        if principal is not None:
            attach(scope, principal)
            scope["state"][browser.BY_COOKIE] = by_cookie
        refusal = self._refusal(principal, rule)
        if refusal is None and by_cookie and scope["method"] in browser.UNSAFE:
            forged = self._forged(scope, headers, principal, rule)
            refusal = (403, forged) if forged else None
        if refusal is not None:
            await self._refuse(scope, send, *refusal, rule)
            return
        await self.app(scope, receive, _private_to_the_cookie(send) if by_cookie else send)

    def _refusal(self, principal: Principal | None, rule: Rule | None) -> tuple[int, str] | None:
        """(status, reason) when the access rule refuses the principal, else None."""
        roles = rule.roles if rule is not None else frozenset()
        if roles is None:
            return None
        if principal is None:
            return 401, "authentication required"
        if principal.role not in roles or (
            rule is not None and rule.home_only and principal.tenant != self.home_tenant
        ):
            return 403, f"not allowed for the {principal.role.value} role"
        return None

    def _forged(
        self, scope: Scope, headers: dict[str, str], principal: Principal | None, rule: Rule | None
    ) -> str:
        """Why a state-changing request carried by the session cookie may be forged, or ""
        when it is not. A page's form carries its token in the body, which the page's own
        handler checks (:func:`radcase_pacs.web.forms.submitted`); everything else must
        carry it in the header."""
        if browser.cross_origin(headers, scope.get("scheme", "http")):
            return "cross-origin request refused"
        if rule is not None and rule.page:
            return ""
        token = headers.get(browser.CSRF_HEADER, "")
        if principal is None or not self.authenticator.csrf_valid(principal, token):
            return f"missing or invalid {browser.CSRF_HEADER} header"
        return ""

    async def _refuse(
        self, scope: Scope, send: Send, status: int, detail: str, rule: Rule | None
    ) -> None:
        """A JSON refusal a browser on another origin can read (else a viewer would see a
        CORS failure instead of "log in again"); on a page, what a person needs."""
        if rule is not None and rule.page:
            await _refuse_page(scope, send, status, detail)
            return
        body = json.dumps({"detail": detail}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        if status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="radcase"'))
        if status == 503:
            headers.append((b"retry-after", str(RETRY_AFTER_SECONDS).encode()))
        origin = dict(scope["headers"]).get(b"origin")
        allowed = "*" in self.cors_origins or (origin or b"").decode() in self.cors_origins
        if origin is not None and allowed:
            headers.append((b"access-control-allow-origin", origin))
            headers.append((b"vary", b"Origin"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _principal(self, headers: dict[str, str]) -> tuple[Principal | None, bool]:
        """The principal and whether the session cookie (rather than a header) named it;
        :class:`Unchecked` when the database could not tell."""
        authorization = headers.get("authorization", "")
        api_key = headers.get("x-api-key", "")
        cookie = "" if authorization or api_key else browser.cookie_value(headers)
        if not (authorization or api_key or cookie):
            return None, False
        try:
            if cookie:
                found = await in_thread(self.authenticator.cookie_principal, cookie)
                return found, found is not None
            found = await in_thread(self.authenticator.principal, authorization, api_key)
            return found, False
        except BackendFailure as exc:
            log.warning("credentials not checked, the user database failed: %s", exc)
            raise Unchecked from exc


async def _refuse_page(scope: Scope, send: Send, status: int, detail: str) -> None:
    """401 on a page: to the sign-in form, back here afterwards (GET only: a form's post
    cannot be replayed). 403: a short page saying so, with a way home; 503: a page saying to
    try again in a moment (the session is not ended: the same page works once the database
    answers)."""
    if status == 401:
        here = scope["path"] if scope["method"] == "GET" else "/"
        query = scope.get("query_string", b"").decode("latin-1")
        target = here + (f"?{query}" if query and scope["method"] == "GET" else "")
        location = "/login" if target == "/" else f"/login?next={quote(target, safe='')}"
        headers = [(b"location", location.encode()), (b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 303, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return
    title, text = "Not allowed", f"{detail.capitalize()}."
    if status == 503:
        title = "Try again in a moment"
        text = "The server cannot check your sign-in right now. You are still signed in."
    body = (
        f'<!doctype html><html lang="en"><meta charset="utf-8"><title>{title}</title>'
        f'<main><h1>{title}</h1><p>{text}</p><p><a href="/">Home</a></p>'
        "</main></html>"
    ).encode()
    headers = [
        (b"content-type", b"text/html; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
    ]
    if status == 503:
        headers.append((b"retry-after", str(RETRY_AFTER_SECONDS).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _private_to_the_cookie(send: Send) -> Send:
    """What a cookie-authenticated request gets is one user's: a browser cache must not hand
    it to the next user of a shared workstation (``Vary: Cookie``, never ``public``)."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            headers.add_vary_header("Cookie")
            control = headers.get("cache-control", "")
            if "public" in control:
                headers["cache-control"] = control.replace("public", "private")
        await send(message)

    return sending
