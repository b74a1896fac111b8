"""The auth tables, kept in the clinical index database (append-only migrations).

Usernames are unique across the deployment (a login names no institution); everything else
is scoped by tenant. Passwords and API keys are stored as hashes only. Times are
:mod:`storage.database.timestamps` text (``expires_at`` is compared as text).
"""

from __future__ import annotations

from storage.database.timestamps import rewrite_older_forms

TIME_COLUMNS = (
    ("institutions", "created_at"),
    ("users", "created_at"),
    ("users", "updated_at"),
    ("user_sessions", "created_at"),
    ("user_sessions", "expires_at"),
    ("api_keys", "created_at"),
)

VERSION_TABLE = "auth_schema_version"

MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE auth_secret (
            id INTEGER PRIMARY KEY,
            secret TEXT NOT NULL
        )""",
        """CREATE TABLE institutions (
            tenant TEXT PRIMARY KEY,
            display_name TEXT NOT NULL,
            created_at TEXT NOT NULL
        )""",
        """CREATE TABLE users (
            id {id},
            username TEXT NOT NULL UNIQUE,
            tenant TEXT NOT NULL REFERENCES institutions (tenant),
            role TEXT NOT NULL,
            password_hash TEXT NOT NULL,
            disabled INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        "CREATE INDEX users_tenant ON users (tenant, username)",
        """CREATE TABLE user_sessions (
            sid TEXT PRIMARY KEY,
            username TEXT NOT NULL,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL
        )""",
        "CREATE INDEX user_sessions_user ON user_sessions (username, expires_at)",
        """CREATE TABLE api_keys (
            key_id TEXT PRIMARY KEY,
            tenant TEXT NOT NULL REFERENCES institutions (tenant),
            name TEXT NOT NULL,
            secret_hash TEXT NOT NULL,
            disabled INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL
        )""",
        "CREATE INDEX api_keys_tenant ON api_keys (tenant, name)",
    ],
    # 2: times written before one form was used everywhere (no fraction at whole seconds).
    rewrite_older_forms(TIME_COLUMNS),
    # 3: the registry decides a session's validity on every request, the cache no longer:
    # it keeps the digests of the refresh token and of the browser cookie's secret. Sessions
    # from before have neither; their access tokens work until they expire, then one new
    # sign-in.
    [
        "ALTER TABLE user_sessions ADD COLUMN refresh_digest TEXT",
        "ALTER TABLE user_sessions ADD COLUMN cookie_digest TEXT",
    ],
]
