"""Password hashing with bcrypt: salted, deliberately slow, the cost stored in the hash."""

from __future__ import annotations

import functools

import bcrypt

ROUNDS = 12
MIN_LENGTH = 8
MAX_BYTES = 72
"""bcrypt reads at most 72 bytes; longer passwords are refused rather than silently cut."""


class WeakPassword(ValueError):
    pass


def check_strength(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_LENGTH} characters")
    if len(password.encode("utf-8")) > MAX_BYTES:
        raise WeakPassword(f"a password may be at most {MAX_BYTES} bytes (bcrypt's limit)")


def hash_password(password: str, rounds: int = ROUNDS) -> str:
    check_strength(password)
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds)).decode("ascii")


def verify_password(password: str, hashed: str) -> bool:
    try:
        encoded = password.encode("utf-8")
        if len(encoded) > MAX_BYTES:
            return False
        return bcrypt.checkpw(encoded, hashed.encode("ascii"))
    except ValueError:
        return False


@functools.cache
def dummy_hash(rounds: int = ROUNDS) -> str:
    """A real hash to check against when the user does not exist, so that a login for an
    unknown name costs the same time as one with a wrong password."""
    return bcrypt.hashpw(b"no such user", bcrypt.gensalt(rounds)).decode("ascii")
