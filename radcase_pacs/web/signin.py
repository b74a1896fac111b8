"""Signing in and out from a browser.

The form posts a username and password; the same user store, throttle and audit entries as
the API's token route decide and record it, and success opens a browser session (a cookie,
:mod:`radcase_pacs.auth.browser`). Signing out ends that session in every process and tells
the browser to drop what it kept for this user (``Clear-Site-Data``: its cache, cookies and
storage), for the next person at a shared reading-room workstation.
"""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from radcase_pacs.auth import browser
from radcase_pacs.auth.layer import login_recorder
from radcase_pacs.auth.middleware import RETRY_AFTER_SECONDS
from radcase_pacs.auth.principal import Principal, principal_of
from radcase_pacs.web.context import Web
from radcase_pacs.web.forms import field, submitted
from storage.errors import BackendFailure

log = logging.getLogger(__name__)

SIGN_IN_ROUTE = "POST /login"
SIGN_OUT_ROUTE = "POST /logout"
UNAVAILABLE = (
    "Signing in is not possible for a moment: the server cannot reach its user database. "
    "Try again shortly."
)


def safe_next(target: str) -> str:
    """Where to go after signing in: a path of this site only (never ``//host`` or a URL,
    which would make the form an open redirect)."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def signin_routes(web: Web) -> list[Route]:
    auth = web.deployment.auth
    settings = web.deployment.settings
    record = login_recorder(web.deployment.audit, settings.tenant, SIGN_IN_ROUTE)
    record_out = login_recorder(web.deployment.audit, settings.tenant, SIGN_OUT_ROUTE)

    def secure(request: Request) -> bool:
        return request.url.scheme == "https"

    async def sign_in_form(request: Request) -> Response:
        principal = principal_of(request.scope)
        target = safe_next(request.query_params.get("next", "/"))
        if not web.auth_on or (principal is not None and principal.session is not None):
            return RedirectResponse(target, 303)
        return web.pages.render(request, "login.html", {"next": target, "username": ""})

    async def sign_in(request: Request) -> Response:
        if not web.auth_on:
            return RedirectResponse("/", 303)
        if browser.cross_origin(
            {k.lower(): v for k, v in request.headers.items()}, request.url.scheme
        ):
            message = "Sign in from this site's own page."
            context = {"error": message, "next": "/", "username": ""}
            return web.pages.render(request, "login.html", context, status_code=403)
        form = await submitted(request, web.signing_key)
        username, password = field(form, "username", limit=200), field(form, "password", limit=200)
        target = safe_next(field(form, "next"))
        address = request.client.host if request.client else ""
        context = {"next": target, "username": username}
        try:
            return await checked(request, username, password, address, context)
        except BackendFailure as exc:
            log.warning("sign-in not possible, the user database failed: %s", exc)
            context["error"] = UNAVAILABLE
            headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
            return web.pages.render(
                request, "login.html", context, status_code=503, headers=headers
            )

    async def checked(
        request: Request, username: str, password: str, address: str, context: dict[str, str]
    ) -> Response:
        """The sign-in decided against the user store (BackendFailure when it cannot be)."""
        target = context["next"]
        if await run_in_threadpool(auth.throttle.blocked, username, address):
            message = "Too many failed sign-ins. Wait a few minutes, then try again."
            headers = {"Retry-After": str(int(auth.throttle.window))}
            context["error"] = message
            return web.pages.render(
                request, "login.html", context, status_code=429, headers=headers
            )
        user = await run_in_threadpool(auth.users.authenticate, username, password)
        if user is None:
            await run_in_threadpool(auth.throttle.failed, username, address)
            detail = f"username={username[:64]}"
            await run_in_threadpool(record, "auth.login_failed", None, detail, address)
            message = "That username and password do not match an active account."
            return web.pages.render(
                request, "login.html", {**context, "error": message}, status_code=400
            )
        who = Principal(user.username, user.tenant, user.role)
        await run_in_threadpool(record, "auth.login", who, "web", address)
        cookie = await run_in_threadpool(auth.sessions.open_browser_session, user)
        response = RedirectResponse(target, 303)
        response.headers.append(
            "Set-Cookie",
            browser.set_cookie_header(
                cookie, secure=secure(request), max_age=settings.refresh_token_seconds
            ),
        )
        return response

    async def sign_out(request: Request) -> Response:
        await submitted(request, web.signing_key)
        principal = principal_of(request.scope)
        by_cookie = request.scope.get("state", {}).get(browser.BY_COOKIE, False)
        if principal is not None and principal.session is not None and by_cookie:
            await run_in_threadpool(auth.sessions.logout, principal.session)
            address = request.client.host if request.client else ""
            await run_in_threadpool(record_out, "auth.logout", principal, "web", address)
        response = RedirectResponse("/login" if web.auth_on else "/", 303)
        response.headers.append("Set-Cookie", browser.clear_cookie_header(secure=secure(request)))
        response.headers["Clear-Site-Data"] = '"cache", "cookies", "storage"'
        return response

    return [
        Route("/login", sign_in_form, methods=["GET"]),
        Route("/login", sign_in, methods=["POST"]),
        Route("/logout", sign_out, methods=["POST"]),
    ]
