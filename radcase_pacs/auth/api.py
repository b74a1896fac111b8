"""The auth and administration routes of the JSON API: login (OAuth 2.0 password and
refresh-token grants, RFC 6749 §4.3 and §6), logout, users, institutions and API keys.

Every administrative route acts inside the caller's own institution; only the admins of the
deployment's home institution manage institutions themselves (``policy.Rule.home_only``).
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from radcase_pacs.auth.passwords import WeakPassword
from radcase_pacs.auth.principal import Principal, Role, principal_of
from radcase_pacs.auth.sessions import LoginThrottle, Sessions, Tokens
from radcase_pacs.auth.users import ApiKey, Taken, User, UserStore
from storage.tenants import TENANT_PATTERN

Username = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._@-]{1,64}$")]
TenantName = Annotated[str, StringConstraints(pattern=TENANT_PATTERN.pattern)]
Password = Annotated[str, StringConstraints(min_length=1, max_length=200)]
AuditHook = Callable[[str, Principal | None, str, str], None]
"""(action, actor, detail, source address): records a login attempt in the audit log (the
changes made through the API are recorded by the composition root's change audit)."""


@dataclass(frozen=True)
class AuthContext:
    users: UserStore
    sessions: Sessions
    throttle: LoginThrottle
    audit: AuditHook


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int


class UserOut(BaseModel):
    username: str
    tenant: str
    role: Role
    disabled: bool
    created_at: datetime
    updated_at: datetime


class UserIn(Strict):
    username: Username
    password: Password
    role: Literal[Role.ADMIN, Role.EDUCATOR, Role.LEARNER]


class UserChange(Strict):
    password: Password | None = None
    role: Literal[Role.ADMIN, Role.EDUCATOR, Role.LEARNER] | None = None
    disabled: bool | None = None


class Institution(Strict):
    tenant: TenantName
    display_name: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class ApiKeyIn(Strict):
    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,64}$")]


class ApiKeyOut(BaseModel):
    key_id: str
    tenant: str
    name: str
    disabled: bool
    created_at: datetime
    token: str | None = Field(None, description="shown once, at creation")


def caller(request: Request) -> Principal:
    principal = principal_of(request.scope)
    if principal is None:
        raise HTTPException(401, "authentication required")
    return principal


Caller = Annotated[Principal, Depends(caller)]


def _user_out(user: User) -> UserOut:
    return UserOut(**user.__dict__)


def _key_out(key: ApiKey, token: str | None = None) -> ApiKeyOut:
    return ApiKeyOut(**key.__dict__, token=token)


def _field_error(field: str, message: str) -> HTTPException:
    return HTTPException(422, [{"loc": ["body", field], "msg": message, "type": "value_error"}])


def _address(request: Request) -> str:
    return request.client.host if request.client else ""


def _token_error(error: str, description: str, status: int = 400) -> JSONResponse:
    """RFC 6749 §5.2 error response."""
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


def auth_router(ctx: AuthContext) -> APIRouter:
    router = APIRouter()

    @router.post("/auth/token", tags=["auth"], response_model=TokenResponse)
    def token(
        request: Request,
        grant_type: Annotated[str, Form()],
        username: Annotated[str, Form(max_length=200)] = "",
        password: Annotated[str, Form(max_length=200)] = "",
        refresh_token: Annotated[str, Form(max_length=500)] = "",
    ) -> Response:
        """OAuth 2.0 token endpoint: ``grant_type=password`` or ``refresh_token``. A failure
        never says which part was wrong; repeated failures are refused for a while (429)."""
        address = _address(request)
        if grant_type == "password":
            if ctx.throttle.blocked(username, address):
                response = _token_error("invalid_request", "too many failed logins", 429)
                response.headers["Retry-After"] = str(int(ctx.throttle.window))
                return response
            user = ctx.users.authenticate(username, password)
            if user is None:
                ctx.throttle.failed(username, address)
                ctx.audit("auth.login_failed", None, f"username={username[:64]}", address)
                return _token_error("invalid_grant", "invalid username or password")
            tokens = ctx.sessions.login(user)
            principal = Principal(user.username, user.tenant, user.role)
            ctx.audit("auth.login", principal, "", address)
        elif grant_type == "refresh_token":
            refreshed = ctx.sessions.refresh(refresh_token)
            if refreshed is None:
                return _token_error("invalid_grant", "the refresh token is not valid")
            tokens = refreshed
        else:
            return _token_error("unsupported_grant_type", "use password or refresh_token")
        return _tokens(tokens)

    @router.post("/auth/logout", status_code=204, tags=["auth"])
    def logout(who: Caller) -> Response:
        """Ends the session of the access token used: it and its refresh token stop working
        in every process at once."""
        if who.session is not None:
            ctx.sessions.logout(who.session)
        return Response(status_code=204)

    @router.get("/me", tags=["auth"])
    def me(who: Caller) -> dict[str, str]:
        return {"username": who.user, "tenant": who.tenant, "role": who.role.value}

    @router.get("/users", tags=["admin"], response_model=list[UserOut])
    def list_users(who: Caller) -> list[UserOut]:
        return [_user_out(u) for u in ctx.users.users(who.tenant)]

    @router.post("/users", status_code=201, tags=["admin"], response_model=UserOut)
    def add_user(body: UserIn, who: Caller) -> UserOut:
        try:
            user = ctx.users.add_user(body.username, who.tenant, Role(body.role), body.password)
        except WeakPassword as exc:
            raise _field_error("password", str(exc)) from exc
        except Taken as exc:
            raise HTTPException(409, "that username is taken") from exc
        return _user_out(user)

    @router.get("/users/{username}", tags=["admin"], response_model=UserOut)
    def read_user(username: str, who: Caller) -> UserOut:
        user = ctx.users.user(username, who.tenant)
        if user is None:
            raise HTTPException(404, "no such user")
        return _user_out(user)

    @router.patch("/users/{username}", tags=["admin"], response_model=UserOut)
    def change_user(username: str, body: UserChange, who: Caller) -> UserOut:
        """A new password, role or disabled flag ends the user's sessions everywhere."""
        if ctx.users.user(username, who.tenant) is None:
            raise HTTPException(404, "no such user")
        if body.password is not None:
            try:
                ctx.users.set_password(username, body.password, who.tenant)
            except WeakPassword as exc:
                raise _field_error("password", str(exc)) from exc
        if body.role is not None:
            ctx.users.set_role(username, Role(body.role), who.tenant)
        if body.disabled is not None:
            ctx.users.set_disabled(username, body.disabled, who.tenant)
        if body.model_dump(exclude_none=True):
            ctx.sessions.revoke_user(username)
        user = ctx.users.user(username, who.tenant)
        assert user is not None
        return _user_out(user)

    @router.get("/institutions", tags=["admin"], response_model=list[Institution])
    def list_institutions(who: Caller) -> list[Institution]:
        return [Institution(tenant=t, display_name=d) for t, d in ctx.users.institutions()]

    @router.post("/institutions", status_code=201, tags=["admin"], response_model=Institution)
    def add_institution(body: Institution, who: Caller) -> Institution:
        try:
            ctx.users.create_institution(body.tenant, body.display_name)
        except Taken as exc:
            raise HTTPException(409, "that institution exists") from exc
        return body

    @router.get("/api-keys", tags=["admin"], response_model=list[ApiKeyOut])
    def list_keys(who: Caller) -> list[ApiKeyOut]:
        return [_key_out(k) for k in ctx.users.api_keys(who.tenant)]

    @router.post("/api-keys", status_code=201, tags=["admin"], response_model=ApiKeyOut)
    def add_key(body: ApiKeyIn, who: Caller) -> ApiKeyOut:
        """A key for a system (role service); its token is in this answer and nowhere else."""
        key, token = ctx.users.add_api_key(who.tenant, body.name)
        return _key_out(key, token)

    @router.delete("/api-keys/{key_id}", status_code=204, tags=["admin"])
    def disable_key(key_id: str, who: Caller) -> Response:
        if not ctx.users.disable_api_key(who.tenant, key_id):
            raise HTTPException(404, "no such key")
        return Response(status_code=204)

    return router


def _tokens(tokens: Tokens) -> JSONResponse:
    return JSONResponse(
        {
            "access_token": tokens.access_token,
            "refresh_token": tokens.refresh_token,
            "token_type": tokens.token_type,
            "expires_in": tokens.expires_in,
        },
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )
