"""Login sessions carried to the new deployment, so that tokens and browser cookies issued
before the switch go on working after it.

A session is a row of ``user_sessions`` (copied with the other tables) and a record in the
deployment's auth cache (Redis in production) holding the user, role and the digests of the
refresh token and cookie secret. The records are copied for every session the registry says
is alive, with the time it has left. Access tokens are signed with the auth key, which is
copied too (``auth_secret``), or configured alike on both sides (checked, see
:mod:`radcase_pacs.migration.keys`).

A record the source's cache does not hold cannot be carried: a server of one process on the
embedded default keeps its sessions in its own memory (restarting it logs everyone out as
well). Those users sign in again; the report counts them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from radcase_pacs.deployment import Deployment
from storage.database.timestamps import from_text, now_text


@dataclass
class SessionsCarried:
    carried: int = 0
    """Records written to the target (new, or changed since: a refreshed token)."""
    current: int = 0
    """Records the target already held as they are."""
    not_found: int = 0
    """Live sessions whose record the source's cache does not hold."""


def carry_sessions(source: Deployment, target: Deployment) -> SessionsCarried:
    outcome = SessionsCarried()
    with source.databases["clinical"].read() as cur:
        rows = cur.execute(
            "SELECT sid, expires_at FROM user_sessions WHERE expires_at >= ?", (now_text(),)
        ).fetchall()
    now = datetime.now(UTC)
    for sid, expires_at in rows:
        record = source.auth.sessions.record(sid)
        if record is None:
            outcome.not_found += 1
            continue
        if target.auth.sessions.record(sid) == record:
            outcome.current += 1
            continue
        left = (from_text(expires_at) - now).total_seconds()
        if left > 0:
            target.auth.sessions.restore(sid, record, left)
            outcome.carried += 1
    return outcome
