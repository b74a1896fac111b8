"""Who is calling the teaching API: the user, their institution (tenant) and their role."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    user: str
    tenant: str
    role: str | None = None
    """``admin``, ``educator``, ``learner`` or ``service``; None when no one signed in (the
    server runs without authentication)."""
