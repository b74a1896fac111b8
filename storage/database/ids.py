"""Public identifiers of rows (cases, questions, groups, assignments, quiz sessions)."""

from __future__ import annotations

import secrets


def new_id() -> str:
    """24 hex digits, random, not sequential: an identifier tells nobody how many others
    exist, nor when it was made."""
    return secrets.token_hex(12)
