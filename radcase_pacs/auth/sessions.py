"""Login sessions: short-lived JWT access tokens, rotating refresh tokens, and revocation
that every process sees at once.

A login creates a session record in the cache backend (Redis in production, shared by every
process) under its id; each access token names its session, and a request is accepted only
while that record exists. Logging out, changing a password or disabling a user deletes the
records, so their tokens stop working everywhere on the next request, well before they
expire. The database keeps only which sessions a user has (to find them for revocation), never
whether one is valid: a cache that forgets a record logs that session out, never in.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from radcase_pacs.auth.principal import Principal, Role
from radcase_pacs.auth.users import User, UserStore
from storage.cache.base import Cache

ALGORITHM = "HS256"
SESSION_KEY = "session/"
"""The session cache is auth's own (a namespace of the deployment's cache), so its keys need
not keep clear of anyone else's."""


@dataclass(frozen=True)
class Tokens:
    """The OAuth 2.0 token response (RFC 6749 §5.1)."""

    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class Sessions:
    def __init__(
        self,
        cache: Cache,
        users: UserStore,
        signing_key: Callable[[], str],
        *,
        access_seconds: int = 900,
        refresh_seconds: int = 12 * 3600,
        check_registry: bool = False,
    ) -> None:
        """``check_registry``: also require the session's row in the database on every
        request, for a cache that other processes cannot reach (the in-process cache of the
        embedded default, or the file the workers of one server share), so that
        ``radcase-pacs user passwd`` run beside the server still ends the sessions it
        serves."""
        self.cache = cache
        self.users = users
        self._signing_key = signing_key
        self.access_seconds = access_seconds
        self.refresh_seconds = refresh_seconds
        self.check_registry = check_registry

    @functools.cached_property
    def signing_key(self) -> str:
        """Asked for on first use: the store that keeps it is open by then."""
        return self._signing_key()

    def login(self, user: User) -> Tokens:
        sid = secrets.token_urlsafe(18)
        expires = datetime.now(UTC) + timedelta(seconds=self.refresh_seconds)
        self.users.register_session(sid, user.username, expires)
        return self._issue(sid, user.username, user.tenant, user.role)

    def open_browser_session(self, user: User) -> str:
        """A session for a browser: the value of its cookie (``sid.secret``). It is a record
        of the same kind as a token login's, so logout, a password change or disabling the
        user ends it exactly as it ends tokens."""
        sid = secrets.token_urlsafe(18)
        expires = datetime.now(UTC) + timedelta(seconds=self.refresh_seconds)
        self.users.register_session(sid, user.username, expires)
        secret = secrets.token_urlsafe(32)
        record = {"user": user.username, "tenant": user.tenant, "role": user.role.value}
        record["cookie"] = _digest(secret)
        self.cache.set(SESSION_KEY + sid, json.dumps(record).encode(), self.refresh_seconds)
        return f"{sid}.{secret}"

    def verify_cookie(self, value: str) -> Principal | None:
        """The principal of a browser session cookie whose session is alive."""
        sid, _, secret = value.partition(".")
        record = self._record(sid) if sid and secret else None
        if record is None or not hmac.compare_digest(record.get("cookie", ""), _digest(secret)):
            return None
        return self._alive(sid, record)

    def _alive(self, sid: str, record: dict[str, str]) -> Principal | None:
        if self.check_registry and not self.users.session_alive(sid):
            self.cache.delete(SESSION_KEY + sid)
            return None
        return Principal(record["user"], record["tenant"], Role(record["role"]), sid)

    def _issue(self, sid: str, username: str, tenant: str, role: Role) -> Tokens:
        refresh_secret = secrets.token_urlsafe(32)
        record = {"user": username, "tenant": tenant, "role": role.value}
        record["refresh"] = _digest(refresh_secret)
        self.cache.set(SESSION_KEY + sid, json.dumps(record).encode(), self.refresh_seconds)
        now = int(time.time())
        claims = {
            "sub": username,
            "tnt": tenant,
            "role": role.value,
            "sid": sid,
            "iat": now,
            "exp": now + self.access_seconds,
        }
        access = jwt.encode(claims, self.signing_key, algorithm=ALGORITHM)
        return Tokens(access, f"{sid}.{refresh_secret}", self.access_seconds)

    def _record(self, sid: str) -> dict[str, str] | None:
        raw = self.cache.get(SESSION_KEY + sid)
        if raw is None:
            return None
        try:
            record = json.loads(raw)
        except ValueError:
            return None
        return record if isinstance(record, dict) else None

    def verify(self, access_token: str) -> Principal | None:
        """The principal of a valid, unexpired access token whose session is alive."""
        try:
            claims = jwt.decode(
                access_token,
                self.signing_key,
                algorithms=[ALGORITHM],
                options={"require": ["exp", "iat", "sub", "sid"]},
            )
        except jwt.PyJWTError:
            return None
        sid = str(claims["sid"])
        record = self._record(sid)
        if record is None or record.get("user") != claims["sub"]:
            return None
        return self._alive(sid, record)

    def refresh(self, refresh_token: str) -> Tokens | None:
        """New tokens for a live session; the refresh token is single-use (rotated), and
        presenting a spent one ends the session (it may have been stolen)."""
        sid, _, secret = refresh_token.partition(".")
        record = self._record(sid) if sid and secret else None
        if record is None or not self.users.session_alive(sid):
            return None
        if not hmac.compare_digest(record.get("refresh", ""), _digest(secret)):
            self.logout(sid)
            return None
        user = self.users.user(record["user"])
        if user is None or user.disabled:
            self.logout(sid)
            return None
        return self._issue(sid, user.username, user.tenant, user.role)

    def record(self, sid: str) -> bytes | None:
        """A session's record as the cache holds it (what ``migrate`` carries to the new
        deployment, so that its tokens and cookies go on working there)."""
        return self.cache.get(SESSION_KEY + sid)

    def restore(self, sid: str, record: bytes, ttl: float) -> None:
        """Put back a record carried from another deployment, for ``ttl`` more seconds."""
        self.cache.set(SESSION_KEY + sid, record, ttl)

    def logout(self, sid: str) -> None:
        self.cache.delete(SESSION_KEY + sid)
        self.users.forget_sessions([sid])

    def revoke_user(self, username: str) -> int:
        """End every session of a user (password changed, disabled, role changed)."""
        sids = self.users.session_ids(username)
        if sids:
            self.cache.delete(*(SESSION_KEY + sid for sid in sids))
            self.users.forget_sessions(sids)
        return len(sids)


class LoginThrottle:
    """Fixed-window counts of failed logins per username and per client address; over the
    limit, logins are refused (429) until the window ends, right password or not."""

    PREFIX = "login-failures/"

    def __init__(self, cache: Cache, *, max_failures: int = 10, window: float = 900.0) -> None:
        self.cache = cache
        self.max_failures = max_failures
        self.window = window

    def _keys(self, username: str, address: str) -> tuple[str, str]:
        name = hashlib.sha256(username.casefold().encode("utf-8")).hexdigest()[:32]
        return f"{self.PREFIX}user/{name}", f"{self.PREFIX}addr/{address}"

    def blocked(self, username: str, address: str) -> bool:
        user_key, address_key = self._keys(username, address)
        user_count = int(self.cache.get(user_key) or 0)
        address_count = int(self.cache.get(address_key) or 0)
        return user_count >= self.max_failures or address_count >= self.max_failures * 5

    def failed(self, username: str, address: str) -> None:
        for key in self._keys(username, address):
            self.cache.incr(key, self.window)
