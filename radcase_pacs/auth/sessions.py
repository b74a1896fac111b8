"""Login sessions: short-lived JWT access tokens, rotating refresh tokens, browser session
cookies, and revocation that every process sees on the next request.

A session is a row of the database's session registry (``user_sessions``, beside the users):
its id, its user, when it ends, and digests of its refresh token and of its browser cookie's
secret. Every request is checked against that row: an access token is accepted while its
signature and expiry hold and its session's row exists, for its user, who is not disabled; a
cookie while its secret matches the row's digest. Logging out, changing a password or a role,
or disabling a user deletes the rows, so their tokens and cookies stop working in every process
at once, whichever process (or ``radcase-pacs user`` in a shell) did it.

Why the database and not the cache: a cache is best effort (:mod:`storage.cache.base`). Redis
may be down, may evict under ``maxmemory``, and misses the deletions made while it was down. A
session kept there logs every signed-in person out when Redis dies (a 401 for everyone, and
clients that answer 401 by signing in again fail too), and a session revoked during an outage
comes back to life with the stale record when Redis returns. The registry is durable, and its
check is one read by primary key per request (a median of 0.08 ms on PostgreSQL over
loopback, 0.05 ms more than a Redis GET: ``python -m tests.benchmarks.session_check``). When
the database cannot answer, the request is refused with 503
(:mod:`radcase_pacs.auth.middleware`), never 401: nobody is told they are signed out because a
store is down. The cache keeps only the login-failure counts (:class:`LoginThrottle`).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from radcase_pacs.auth.principal import Principal
from radcase_pacs.auth.users import LiveSession, User, UserStore
from storage.cache.base import Cache
from storage.cache.memory import MemoryCache

log = logging.getLogger(__name__)

ALGORITHM = "HS256"
# Login-failure counts kept in this process while the shared cache cannot count: about a
# hundred bytes per username or address counted, so tens of thousands fit.
LOCAL_COUNTS_BYTES = 4 * 1024 * 1024


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
        users: UserStore,
        signing_key: Callable[[], str],
        *,
        access_seconds: int = 900,
        refresh_seconds: int = 12 * 3600,
    ) -> None:
        self.users = users
        self._signing_key = signing_key
        self.access_seconds = access_seconds
        self.refresh_seconds = refresh_seconds

    @functools.cached_property
    def signing_key(self) -> str:
        """Asked for on first use: the store that keeps it is open by then."""
        return self._signing_key()

    def login(self, user: User) -> Tokens:
        sid = secrets.token_urlsafe(18)
        refresh_secret = secrets.token_urlsafe(32)
        self.users.register_session(
            sid, user.username, self._ends(), refresh_digest=_digest(refresh_secret)
        )
        return self._tokens(sid, user.username, user.tenant, user.role.value, refresh_secret)

    def open_browser_session(self, user: User) -> str:
        """A session for a browser: the value of its cookie (``sid.secret``). It is a row of
        the same registry as a token login's, so logout, a password change or disabling the
        user ends it exactly as it ends tokens."""
        sid = secrets.token_urlsafe(18)
        secret = secrets.token_urlsafe(32)
        self.users.register_session(sid, user.username, self._ends(), cookie_digest=_digest(secret))
        return f"{sid}.{secret}"

    def verify_cookie(self, value: str) -> Principal | None:
        """The principal of a browser session cookie whose session is alive."""
        sid, _, secret = value.partition(".")
        live = self.users.live_session(sid) if sid and secret else None
        if live is None or not _matches(live.cookie_digest, secret):
            return None
        return _principal(live)

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
        live = self.users.live_session(str(claims["sid"]))
        if live is None or live.username != claims["sub"]:
            return None
        return _principal(live)

    def refresh(self, refresh_token: str) -> Tokens | None:
        """New tokens for a live session; the refresh token is single-use (rotated), and
        presenting a spent one ends the session (it may have been stolen). Of two refreshes
        with the same token at once, one wins and the other counts as the replay."""
        sid, _, secret = refresh_token.partition(".")
        live = self.users.live_session(sid) if sid and secret else None
        if live is None:
            return None
        if not _matches(live.refresh_digest, secret):
            self.logout(sid)
            return None
        new_secret = secrets.token_urlsafe(32)
        if not self.users.rotate_refresh(sid, _digest(secret), _digest(new_secret)):
            self.logout(sid)
            return None
        return self._tokens(sid, live.username, live.tenant, live.role.value, new_secret)

    def logout(self, sid: str) -> None:
        self.users.forget_sessions([sid])

    def revoke_user(self, username: str) -> int:
        """End every session of a user (password changed, disabled, role changed)."""
        sids = self.users.session_ids(username)
        if sids:
            self.users.forget_sessions(sids)
        return len(sids)

    def _ends(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.refresh_seconds)

    def _tokens(
        self, sid: str, username: str, tenant: str, role: str, refresh_secret: str
    ) -> Tokens:
        now = int(time.time())
        claims = {
            "sub": username,
            "tnt": tenant,
            "role": role,
            "sid": sid,
            "iat": now,
            "exp": now + self.access_seconds,
        }
        access = jwt.encode(claims, self.signing_key, algorithm=ALGORITHM)
        return Tokens(access, f"{sid}.{refresh_secret}", self.access_seconds)


def _matches(digest: str | None, secret: str) -> bool:
    return digest is not None and hmac.compare_digest(digest, _digest(secret))


def _principal(live: LiveSession) -> Principal:
    """The user's tenant and role as they are now (a role change ends the sessions anyway)."""
    return Principal(live.username, live.tenant, live.role, live.sid)


class LoginThrottle:
    """Fixed-window counts of failed logins per username and per client address; over the
    limit, logins are refused (429) until the window ends, right password or not.

    The counts are kept in the shared cache, so that every process sees every failure. While
    the cache cannot count (Redis down: its ``incr`` answers 0), this process counts the
    failures itself rather than dropping them, so an outage gives a password-guessing run no
    free attempts; each process then has its own count (N processes allow up to N times the
    limit until Redis is back). A login is refused when the shared and local counts together
    reach the limit."""

    PREFIX = "login-failures/"

    def __init__(self, cache: Cache, *, max_failures: int = 10, window: float = 900.0) -> None:
        self.cache = cache
        self.max_failures = max_failures
        self.window = window
        self.local = MemoryCache(max_bytes=LOCAL_COUNTS_BYTES)
        self._counting_locally = False

    def _keys(self, username: str, address: str) -> tuple[str, str]:
        name = hashlib.sha256(username.casefold().encode("utf-8")).hexdigest()[:32]
        return f"{self.PREFIX}user/{name}", f"{self.PREFIX}addr/{address}"

    def _count(self, key: str) -> int:
        return int(self.cache.get(key) or 0) + int(self.local.get(key) or 0)

    def blocked(self, username: str, address: str) -> bool:
        user_key, address_key = self._keys(username, address)
        return (
            self._count(user_key) >= self.max_failures
            or self._count(address_key) >= self.max_failures * 5
        )

    def failed(self, username: str, address: str) -> None:
        for key in self._keys(username, address):
            if self.cache.incr(key, self.window):
                self._counting_locally = False
                continue
            if not self._counting_locally:
                self._counting_locally = True
                log.warning("the cache cannot count failed logins: counting them in this process")
            self.local.incr(key, self.window)
