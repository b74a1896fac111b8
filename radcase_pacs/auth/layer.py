"""The auth layer as the deployment assembles it: users and the session registry in the
clinical index database, login-failure counts in a cache namespace of their own, the first
admin on an empty deployment."""

from __future__ import annotations

import functools
import secrets
import sys

from fastapi import APIRouter

from radcase_pacs.audit.store import AuditEntry, AuditLog, Channel
from radcase_pacs.auth.api import AuditHook, AuthContext, auth_router
from radcase_pacs.auth.middleware import Authenticator
from radcase_pacs.auth.principal import Principal
from radcase_pacs.auth.sessions import LoginThrottle, Sessions
from radcase_pacs.auth.users import UserStore
from radcase_pacs.settings import Settings
from storage.cache.base import Cache

FIRST_ADMIN = "admin"


class AuthLayer:
    def __init__(self, settings: Settings, users: UserStore, cache: Cache) -> None:
        self.settings = settings
        self.users = users
        self.cache = cache
        self.sessions = Sessions(
            users,
            lambda: users.signing_key(settings.auth_secret),
            access_seconds=settings.access_token_seconds,
            refresh_seconds=settings.refresh_token_seconds,
        )
        self.authenticator = Authenticator(self.sessions, users)

    @property
    def open_tenant(self) -> str | None:
        """The institution every request acts for when authentication is off."""
        return self.settings.tenant if self.settings.auth == "off" else None

    def open(self, *, provision: bool = True) -> None:
        """Open the user store and the session cache and, on a deployment without users,
        create the first admin (unless ``provision`` is False: a migration's target, whose
        institutions and users all come from the source)."""
        self.cache.open()
        self.users.open()
        if not provision:
            return
        self.users.ensure_institution(self.settings.tenant)
        if self.open_tenant is None:
            self.create_first_admin()

    def close(self) -> None:
        self.users.close()
        self.cache.close()

    def create_first_admin(self) -> None:
        """The password comes from ``admin_password`` (RADCASE_ADMIN_PASSWORD) or is
        generated and printed once; of several processes starting together, only the one
        that created the user prints it."""
        if self.users.count_users():
            return
        given = self.settings.admin_password
        password = given or secrets.token_urlsafe(15)
        if self.users.add_first_admin(FIRST_ADMIN, self.settings.tenant, password) and not given:
            print(
                f"radcase-pacs: created the first admin, user {FIRST_ADMIN!r} with password "
                f"{password!r}; it is shown only this once (change it with "
                f"`radcase-pacs user passwd {FIRST_ADMIN}`)",
                file=sys.stderr,
                flush=True,
            )

    @functools.cached_property
    def throttle(self) -> LoginThrottle:
        """One count of failed sign-ins for the API's token route and the web app's form."""
        return LoginThrottle(
            self.cache,
            max_failures=self.settings.login_max_failures,
            window=float(self.settings.login_window_seconds),
        )

    def router(self, audit: AuditHook) -> APIRouter:
        return auth_router(
            AuthContext(
                users=self.users,
                sessions=self.sessions,
                throttle=self.throttle,
                audit=audit,
            )
        )


def login_recorder(
    log: AuditLog, default_tenant: str, route: str = "POST /api/auth/token"
) -> AuditHook:
    """Records sign-in attempts (and the web app's sign-outs) on ``route``; a failure to
    record fails the attempt (503)."""

    def record(action: str, who: Principal | None, detail: str, source: str) -> None:
        log.record(
            AuditEntry(
                tenant=who.tenant if who else default_tenant,
                actor=who.user if who else "anonymous",
                role=who.role.value if who else None,
                action=action,
                channel=Channel.HTTP,
                route=route,
                detail=detail,
                source=source,
            )
        )

    return record
