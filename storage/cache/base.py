"""The cache contract: bytes under string keys, best effort.

A cache may forget anything at any time; callers always know how to rebuild a value. That is
why a cache failure is never an error for a request: implementations swallow and log their
own faults and behave as a miss.
"""

from __future__ import annotations

from typing import Protocol


class Cache(Protocol):
    def open(self) -> None: ...

    def close(self) -> None: ...

    def ping(self) -> None:
        """Raise BackendFailure when the cache cannot answer now (for ``/healthz`` only: every
        other method swallows the cache's faults, as the contract above says)."""

    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None: ...

    def delete(self, *keys: str) -> None: ...

    def incr(self, key: str, ttl: float) -> int:
        """Add one to the counter under ``key`` and return its new value; a new counter
        lives ``ttl`` seconds from its first increment (a fixed window). 0 when the cache is
        unavailable: callers limiting a rate then let the request through."""
        ...
