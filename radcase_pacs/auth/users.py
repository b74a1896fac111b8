"""Institutions, users, API keys, the login-session registry and the token signing key.

Every read that could cross institutions takes the tenant; a user of one institution is
never found through another's. One SQL text for SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from radcase_pacs.auth.passwords import ROUNDS, dummy_hash, hash_password, verify_password
from radcase_pacs.auth.principal import Role
from radcase_pacs.auth.schema import MIGRATIONS, VERSION_TABLE
from storage.database.base import Cursor, Database
from storage.database.tables import Tables
from storage.database.timestamps import from_text, now_text, to_text

API_KEY_PREFIX = "rk_"


@dataclass(frozen=True)
class User:
    username: str
    tenant: str
    role: Role
    disabled: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    tenant: str
    name: str
    disabled: bool
    created_at: datetime


@dataclass(frozen=True)
class LiveSession:
    """A session of the registry that has not ended, of a user who is not disabled."""

    sid: str
    username: str
    tenant: str
    role: Role
    refresh_digest: str | None
    cookie_digest: str | None


class Taken(ValueError):
    """A username or institution name that already exists."""


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class UserStore(Tables):
    version_table = VERSION_TABLE
    migrations = MIGRATIONS

    def __init__(self, db: Database, *, rounds: int = ROUNDS) -> None:
        super().__init__(db)
        self.rounds = rounds

    def signing_key(self, configured: str | None) -> str:
        """The JWT key shared by every process: the configured one, else one made on first
        use and kept here."""
        return configured or self.kept_secret("auth_secret")

    # -- institutions ---------------------------------------------------------------------

    def ensure_institution(self, tenant: str, display_name: str = "") -> None:
        with self.db.transaction() as cur:
            self._ensure_institution(cur, tenant, display_name)

    @staticmethod
    def _ensure_institution(cur: Cursor, tenant: str, display_name: str) -> None:
        cur.execute(
            "INSERT INTO institutions (tenant, display_name, created_at) VALUES (?, ?, ?) "
            "ON CONFLICT (tenant) DO NOTHING",
            (tenant, display_name or tenant, now_text()),
        )

    def create_institution(self, tenant: str, display_name: str) -> None:
        with self.db.transaction() as cur:
            if cur.execute("SELECT 1 FROM institutions WHERE tenant = ?", (tenant,)).fetchone():
                raise Taken(f"institution {tenant} exists")
            self._ensure_institution(cur, tenant, display_name)

    def institutions(self) -> list[tuple[str, str]]:
        with self.db.read() as cur:
            rows = cur.execute(
                "SELECT tenant, display_name FROM institutions ORDER BY tenant"
            ).fetchall()
        return [(str(r[0]), str(r[1])) for r in rows]

    # -- users ----------------------------------------------------------------------------

    def count_users(self) -> int:
        with self.db.read() as cur:
            return int(cur.execute("SELECT COUNT(*) FROM users").fetchone()[0])

    def add_user(self, username: str, tenant: str, role: Role, password: str) -> User:
        """Raises Taken when the name exists (in any institution) and WeakPassword."""
        hashed = hash_password(password, self.rounds)
        stamp = now_text()
        with self.db.transaction() as cur:
            self._ensure_institution(cur, tenant, "")
            if cur.execute("SELECT 1 FROM users WHERE username = ?", (username,)).fetchone():
                raise Taken(f"user {username} exists")
            cur.execute(
                "INSERT INTO users (username, tenant, role, password_hash, disabled, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, 0, ?, ?)",
                (username, tenant, role.value, hashed, stamp, stamp),
            )
        found = self.user(username)
        assert found is not None
        return found

    def add_first_admin(self, username: str, tenant: str, password: str) -> bool:
        """Create the first admin unless any user exists; True when this call created it (so
        that of several processes starting together, only one announces a password)."""
        hashed = hash_password(password, self.rounds)
        stamp = now_text()
        with self.db.transaction() as cur:
            self._ensure_institution(cur, tenant, "")
            if cur.execute("SELECT 1 FROM users").fetchone():
                return False
            cur.execute(
                "INSERT INTO users (username, tenant, role, password_hash, disabled, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, 0, ?, ?) "
                "ON CONFLICT (username) DO NOTHING",
                (username, tenant, Role.ADMIN.value, hashed, stamp, stamp),
            )
            row = cur.execute(
                "SELECT password_hash FROM users WHERE username = ?", (username,)
            ).fetchone()
        return row is not None and row[0] == hashed

    def user(self, username: str, tenant: str | None = None) -> User | None:
        sql = "SELECT username, tenant, role, disabled, created_at, updated_at FROM users "
        sql += "WHERE username = ?" + (" AND tenant = ?" if tenant is not None else "")
        params: Sequence[Any] = (username,) if tenant is None else (username, tenant)
        with self.db.read() as cur:
            row = cur.execute(sql, params).fetchone()
        return None if row is None else _user(row)

    def users(self, tenant: str) -> list[User]:
        with self.db.read() as cur:
            rows = cur.execute(
                "SELECT username, tenant, role, disabled, created_at, updated_at FROM users "
                "WHERE tenant = ? ORDER BY username",
                (tenant,),
            ).fetchall()
        return [_user(r) for r in rows]

    def authenticate(self, username: str, password: str) -> User | None:
        """The user when the password is right and the account enabled; the same work is done
        whatever is wrong, so the time taken tells nothing."""
        with self.db.read() as cur:
            row = cur.execute(
                "SELECT username, tenant, role, disabled, created_at, updated_at, "
                "password_hash FROM users WHERE username = ?",
                (username,),
            ).fetchone()
        hashed = str(row[6]) if row is not None else dummy_hash(self.rounds)
        good = verify_password(password, hashed)
        if row is None or not good or bool(row[3]):
            return None
        return _user(row)

    def set_password(self, username: str, password: str, tenant: str | None = None) -> bool:
        hashed = hash_password(password, self.rounds)
        return self._update(username, tenant, "password_hash = ?", (hashed,))

    def set_disabled(self, username: str, disabled: bool, tenant: str | None = None) -> bool:
        return self._update(username, tenant, "disabled = ?", (int(disabled),))

    def set_role(self, username: str, role: Role, tenant: str | None = None) -> bool:
        return self._update(username, tenant, "role = ?", (role.value,))

    def _update(
        self, username: str, tenant: str | None, assignment: str, values: tuple[Any, ...]
    ) -> bool:
        if self.user(username, tenant) is None:
            return False
        where = "username = ?" + (" AND tenant = ?" if tenant is not None else "")
        params = (*values, now_text(), username, *(() if tenant is None else (tenant,)))
        with self.db.transaction() as cur:
            cur.execute(f"UPDATE users SET {assignment}, updated_at = ? WHERE {where}", params)
        return True

    # -- login sessions (the registry, which decides whether one is valid) ----------------

    def register_session(
        self,
        sid: str,
        username: str,
        expires_at: datetime,
        *,
        refresh_digest: str | None = None,
        cookie_digest: str | None = None,
    ) -> None:
        with self.db.transaction() as cur:
            cur.execute("DELETE FROM user_sessions WHERE expires_at < ?", (now_text(),))
            cur.execute(
                "INSERT INTO user_sessions (sid, username, created_at, expires_at, "
                "refresh_digest, cookie_digest) VALUES (?, ?, ?, ?, ?, ?)",
                (sid, username, now_text(), to_text(expires_at), refresh_digest, cookie_digest),
            )

    def live_session(self, sid: str) -> LiveSession | None:
        """The session ``sid`` with its user's tenant and role, if it has not ended and its
        user is enabled: the check of every request that a session authenticates."""
        with self.db.read() as cur:
            row = cur.execute(
                "SELECT s.sid, s.username, u.tenant, u.role, s.refresh_digest, s.cookie_digest "
                "FROM user_sessions s JOIN users u ON u.username = s.username "
                "WHERE s.sid = ? AND s.expires_at >= ? AND u.disabled = 0",
                (sid, now_text()),
            ).fetchone()
        if row is None:
            return None
        return LiveSession(str(row[0]), str(row[1]), str(row[2]), Role(row[3]), row[4], row[5])

    def rotate_refresh(self, sid: str, spent: str, fresh: str) -> bool:
        """Replace the refresh digest ``spent`` by ``fresh``; False when ``spent`` is no longer
        the session's (another refresh used it first)."""
        with self.db.transaction() as cur:
            row = cur.execute(
                "UPDATE user_sessions SET refresh_digest = ? "
                "WHERE sid = ? AND refresh_digest = ? RETURNING sid",
                (fresh, sid, spent),
            ).fetchone()
        return row is not None

    def session_ids(self, username: str) -> list[str]:
        with self.db.read() as cur:
            rows = cur.execute(
                "SELECT sid FROM user_sessions WHERE username = ? AND expires_at >= ?",
                (username, now_text()),
            ).fetchall()
        return [str(r[0]) for r in rows]

    def session_alive(self, sid: str) -> bool:
        with self.db.read() as cur:
            row = cur.execute(
                "SELECT 1 FROM user_sessions WHERE sid = ? AND expires_at >= ?", (sid, now_text())
            ).fetchone()
        return row is not None

    def forget_sessions(self, sids: Sequence[str]) -> None:
        with self.db.transaction() as cur:
            for sid in sids:
                cur.execute("DELETE FROM user_sessions WHERE sid = ?", (sid,))

    # -- API keys (service accounts) ------------------------------------------------------

    def add_api_key(self, tenant: str, name: str) -> tuple[ApiKey, str]:
        """A new key for a system; the returned token is shown once and stored hashed."""
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        stamp = now_text()
        with self.db.transaction() as cur:
            self._ensure_institution(cur, tenant, "")
            cur.execute(
                "INSERT INTO api_keys (key_id, tenant, name, secret_hash, disabled, created_at) "
                "VALUES (?, ?, ?, ?, 0, ?)",
                (key_id, tenant, name, _digest(secret), stamp),
            )
        key = ApiKey(key_id, tenant, name, False, from_text(stamp))
        return key, f"{API_KEY_PREFIX}{key_id}_{secret}"

    def api_key(self, token: str) -> ApiKey | None:
        """The enabled key a presented token stands for, None otherwise."""
        if not token.startswith(API_KEY_PREFIX):
            return None
        key_id, _, secret = token[len(API_KEY_PREFIX) :].partition("_")
        with self.db.read() as cur:
            row = cur.execute(
                "SELECT key_id, tenant, name, disabled, created_at, secret_hash FROM api_keys "
                "WHERE key_id = ?",
                (key_id,),
            ).fetchone()
        if row is None or bool(row[3]):
            return None
        if not hmac.compare_digest(str(row[5]), _digest(secret)):
            return None
        return ApiKey(row[0], row[1], row[2], False, from_text(row[4]))

    def api_keys(self, tenant: str) -> list[ApiKey]:
        with self.db.read() as cur:
            rows = cur.execute(
                "SELECT key_id, tenant, name, disabled, created_at FROM api_keys "
                "WHERE tenant = ? ORDER BY created_at",
                (tenant,),
            ).fetchall()
        return [ApiKey(r[0], r[1], r[2], bool(r[3]), from_text(r[4])) for r in rows]

    def disable_api_key(self, tenant: str, key_id: str) -> bool:
        with self.db.transaction() as cur:
            row = cur.execute(
                "SELECT 1 FROM api_keys WHERE key_id = ? AND tenant = ?", (key_id, tenant)
            ).fetchone()
            if row is None:
                return False
            cur.execute("UPDATE api_keys SET disabled = 1 WHERE key_id = ?", (key_id,))
        return True


def _user(row: Sequence[Any]) -> User:
    return User(
        username=row[0],
        tenant=row[1],
        role=Role(row[2]),
        disabled=bool(row[3]),
        created_at=from_text(row[4]),
        updated_at=from_text(row[5]),
    )
