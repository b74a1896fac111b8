"""The administrators' pages: users, API keys and institutions.

Everything acts inside the administrator's own institution, as the JSON API's routes do
(:mod:`radcase_pacs.auth.api`), and validates with the same models, so a page accepts exactly
what the API accepts. Every change is audited before it is made (:mod:`.changes`); a new
password, role or disabled flag ends the user's sessions everywhere at once. A new API key's
secret is shown once, on the page that answers its creation, and never again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from radcase_pacs.auth.api import ApiKeyIn, Institution, UserChange, UserIn
from radcase_pacs.auth.passwords import WeakPassword
from radcase_pacs.auth.principal import Role
from radcase_pacs.auth.users import Taken
from radcase_pacs.web.changes import record_change
from radcase_pacs.web.context import Web, who
from radcase_pacs.web.forms import field, submitted

ROLES = (Role.LEARNER, Role.EDUCATOR, Role.ADMIN)
NOTICES = {
    "added": "User added.",
    "changed": "Saved. The user's sessions have ended; they sign in again.",
    "revoked": "Key revoked: it stops working at once.",
    "institution": "Institution added.",
}


def problems(error: ValidationError) -> list[str]:
    """A form's validation errors as sentences naming the field."""
    out = []
    for item in error.errors():
        name = ".".join(str(part) for part in item["loc"]) or "form"
        out.append(f"{name.replace('_', ' ').capitalize()}: {item['msg']}.")
    return out


def parsed(model: type[BaseModel], values: dict[str, Any]) -> tuple[Any, list[str]]:
    try:
        return model.model_validate(values), []
    except ValidationError as exc:
        return None, problems(exc)


def admin_routes(web: Web) -> list[Route]:
    users = web.deployment.auth.users
    sessions = web.deployment.auth.sessions
    home = web.deployment.settings.tenant

    def notice(request: Request) -> str:
        return NOTICES.get(request.query_params.get("notice", ""), "")

    async def users_page(
        request: Request, errors: list[str] | None = None, status: int = 200
    ) -> Response:
        tenant = who(request).tenant
        listed = await run_in_threadpool(users.users, tenant)
        context = {
            "users": listed,
            "roles": ROLES,
            "errors": errors or [],
            "notice": notice(request),
        }
        return web.pages.render(request, "admin_users.html", context, status_code=status)

    async def list_users(request: Request) -> Response:
        return await users_page(request)

    async def add_user(request: Request) -> Response:
        form = await submitted(request, web.signing_key)
        values = {k: field(form, k, limit=300) for k in ("username", "password", "role")}
        body, errors = parsed(UserIn, values)
        if errors:
            return await users_page(request, errors, 400)
        await record_change(web, request, "user.create", f"username={body.username}")
        try:
            await run_in_threadpool(
                users.add_user, body.username, who(request).tenant, Role(body.role), body.password
            )
        except WeakPassword as exc:
            return await users_page(request, [f"Password: {exc}."], 400)
        except Taken:
            return await users_page(request, ["Username: that username is taken."], 409)
        return RedirectResponse("/admin/users?notice=added", 303)

    async def change_user(request: Request) -> Response:
        username = request.path_params["username"]
        tenant = who(request).tenant
        if await run_in_threadpool(users.user, username, tenant) is None:
            return web.pages.render(
                request, "error.html", {"message": "There is no such user."}, status_code=404
            )
        form = await submitted(request, web.signing_key)
        change: dict[str, Any] = {}
        action = field(form, "action", limit=20)
        if action == "role":
            change["role"] = field(form, "role", limit=20)
        elif action in ("disable", "enable"):
            change["disabled"] = action == "disable"
        elif action == "password":
            change["password"] = field(form, "password", limit=300)
        body, errors = parsed(UserChange, change)
        if errors or not change:
            return await users_page(request, errors or ["Choose what to change."], 400)
        await record_change(web, request, "user.update", f"username={username} {action}")

        def apply() -> None:
            if body.password is not None:
                users.set_password(username, body.password, tenant)
            if body.role is not None:
                users.set_role(username, Role(body.role), tenant)
            if body.disabled is not None:
                users.set_disabled(username, body.disabled, tenant)
            sessions.revoke_user(username)

        try:
            await run_in_threadpool(apply)
        except WeakPassword as exc:
            return await users_page(request, [f"Password: {exc}."], 400)
        return RedirectResponse("/admin/users?notice=changed", 303)

    async def keys_page(
        request: Request, context: dict[str, Any] | None = None, status: int = 200
    ) -> Response:
        listed = await run_in_threadpool(users.api_keys, who(request).tenant)
        values = {"keys": listed, "errors": [], "notice": notice(request), **(context or {})}
        return web.pages.render(request, "admin_keys.html", values, status_code=status)

    async def list_keys(request: Request) -> Response:
        return await keys_page(request)

    async def add_key(request: Request) -> Response:
        form = await submitted(request, web.signing_key)
        body, errors = parsed(ApiKeyIn, {"name": field(form, "name", limit=100)})
        if errors:
            return await keys_page(request, {"errors": errors}, 400)
        await record_change(web, request, "apikey.create", f"name={body.name}")
        key, token = await run_in_threadpool(users.add_api_key, who(request).tenant, body.name)
        return await keys_page(request, {"created": key, "token": token}, 201)

    async def revoke_key(request: Request) -> Response:
        await submitted(request, web.signing_key)
        key_id = request.path_params["key_id"][:64]
        await record_change(web, request, "apikey.disable", f"key_id={key_id}")
        if not await run_in_threadpool(users.disable_api_key, who(request).tenant, key_id):
            return web.pages.render(
                request, "error.html", {"message": "There is no such key."}, status_code=404
            )
        return RedirectResponse("/admin/keys?notice=revoked", 303)

    async def institutions_page(
        request: Request, errors: list[str] | None = None, status: int = 200
    ) -> Response:
        listed = await run_in_threadpool(users.institutions)
        context = {
            "institutions": listed,
            "home": home,
            "errors": errors or [],
            "notice": notice(request),
        }
        return web.pages.render(request, "admin_institutions.html", context, status_code=status)

    async def list_institutions(request: Request) -> Response:
        return await institutions_page(request)

    async def add_institution(request: Request) -> Response:
        form = await submitted(request, web.signing_key)
        values = {
            "tenant": field(form, "tenant", limit=100),
            "display_name": field(form, "name", limit=300),
        }
        body, errors = parsed(Institution, values)
        if errors:
            return await institutions_page(request, errors, 400)
        await record_change(web, request, "institution.create", f"tenant={body.tenant}")
        try:
            await run_in_threadpool(users.create_institution, body.tenant, body.display_name)
        except Taken:
            return await institutions_page(request, ["Tenant: that institution exists."], 409)
        return RedirectResponse("/admin/institutions?notice=institution", 303)

    def get(path: str, endpoint: Callable[..., Any]) -> Route:
        return Route(path, endpoint, methods=["GET"])

    def post(path: str, endpoint: Callable[..., Any]) -> Route:
        return Route(path, endpoint, methods=["POST"])

    return [
        get("/admin/users", list_users),
        post("/admin/users", add_user),
        post("/admin/users/{username}", change_user),
        get("/admin/keys", list_keys),
        post("/admin/keys", add_key),
        post("/admin/keys/{key_id}/revoke", revoke_key),
        get("/admin/institutions", list_institutions),
        post("/admin/institutions", add_institution),
    ]
