"""The shared cache: Redis, so every process of a deployment sees the same entries.

Keys live under a prefix (one per deployment, tenant or test), values are the bytes callers
give, and every entry has a TTL: the caller's, or ``default_ttl`` when the caller gives none.

Memory budget. Redis itself enforces it: the operator sets ``maxmemory`` and an eviction
policy. Because every key written here carries a TTL, ``volatile-lru`` works (and leaves keys
of other applications alone); ``allkeys-lru`` is right for a Redis dedicated to the cache.
Under ``noeviction`` a full Redis refuses writes, which this cache treats as a skipped set.
On our side, values larger than ``max_value_bytes`` are not cached at all, so one huge study
cannot flush everything else (the in-process cache does the same with a quarter of its budget).

Outages. A cache is best effort (see ``storage.cache.base``): when Redis is unreachable or
slow, ``get`` is a miss and ``set``/``delete`` do nothing, with one warning per outage, never
an exception. Short socket timeouts (``timeout`` for each command, ``connect_timeout`` for
a connection; half a second each by default) bound the cost of a call, no call is
retried, and after a failure Redis is not asked again for ``retry_after`` seconds, so a dead
Redis costs requests nothing. The next call after that tries again and, if Redis answers,
the cache is back.
Missed deletions are harmless: the archive keys cached bodies by version, so a stale entry is
never asked for again and expires with its TTL.

URL: ``redis://[[user]:password@]host[:port][/db]?prefix=P&max_value_bytes=N&default_ttl=S``
(``rediss://`` for TLS); other query parameters go to redis-py as usual.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from storage.errors import BackendFailure

log = logging.getLogger(__name__)

OUTAGE_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)


class RedisCache:
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "radcase:",
        max_value_bytes: int = 32 * 1024 * 1024,
        default_ttl: float = 7 * 24 * 3600.0,
        timeout: float = 0.5,
        connect_timeout: float | None = None,
        retry_after: float = 2.0,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.max_value_bytes = max_value_bytes
        self.default_ttl = default_ttl
        self.timeout = timeout
        self.connect_timeout = timeout if connect_timeout is None else connect_timeout
        self.retry_after = retry_after
        self.hits = 0
        self.misses = 0
        self._client: redis.Redis | None = None
        self._lock = threading.Lock()
        self._skip_until = 0.0
        self._in_outage = False
        self._warned_refusal = False

    def __repr__(self) -> str:
        from storage.urls import mask_password

        return f"RedisCache({mask_password(self.url)!r}, prefix={self.prefix!r})"

    def open(self) -> None:
        if self._client is None:
            self._client = redis.Redis.from_url(
                self.url,
                socket_timeout=self.timeout,
                socket_connect_timeout=self.connect_timeout,
                retry=Retry(NoBackoff(), 0),
                retry_on_timeout=False,
                health_check_interval=30,
            )

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def ping(self) -> None:
        """Ask Redis itself, even during a known outage (so /healthz sees it come back); a
        fault is a BackendFailure here, and only here."""
        client = self._client
        if client is None:
            raise BackendFailure("the Redis cache is not open")
        try:
            client.ping()
        except redis.RedisError as exc:
            raise BackendFailure(f"Redis cache: {exc}") from exc

    @property
    def available(self) -> bool:
        """False while an outage is known and Redis is being left alone."""
        return not self._in_outage

    def get(self, key: str) -> bytes | None:
        value = self._call(lambda client: client.get(self.prefix + key))
        with self._lock:
            if value is None:
                self.misses += 1
            else:
                self.hits += 1
        return bytes(value) if value is not None else None

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        if len(value) > self.max_value_bytes:
            return
        seconds = self.default_ttl if ttl is None else ttl
        if seconds <= 0:
            self.delete(key)
            return
        milliseconds = max(1, round(seconds * 1000))
        self._call(lambda client: client.set(self.prefix + key, value, px=milliseconds))

    def incr(self, key: str, ttl: float) -> int:
        milliseconds = max(1, round(ttl * 1000))

        def bump(client: redis.Redis) -> int:
            pipe = client.pipeline(transaction=True)
            pipe.incr(self.prefix + key)
            pipe.pexpire(self.prefix + key, milliseconds, nx=True)
            return int(pipe.execute()[0])

        return int(self._call(bump) or 0)

    def delete(self, *keys: str) -> None:
        if keys:
            self._call(lambda client: client.delete(*(self.prefix + k for k in keys)))

    def clear(self) -> int:
        """Delete every key under the prefix (tests, a tenant's reset); returns how many."""

        def sweep(client: redis.Redis) -> int:
            removed = 0
            batch: list[Any] = []
            for name in client.scan_iter(match=_glob_escape(self.prefix) + "*", count=1000):
                batch.append(name)
                if len(batch) >= 1000:
                    removed += int(client.delete(*batch))
                    batch.clear()
            if batch:
                removed += int(client.delete(*batch))
            return removed

        return int(self._call(sweep) or 0)

    def _call(self, operation: Any) -> Any:
        """Run one command; any Redis fault becomes None (a miss or a no-op)."""
        client = self._client
        if client is None or time.monotonic() < self._skip_until:
            return None
        try:
            result = operation(client)
        except OUTAGE_ERRORS as exc:
            self._skip_until = time.monotonic() + self.retry_after
            with self._lock:
                first = not self._in_outage
                self._in_outage = True
            if first:
                log.warning("Redis cache unreachable, serving without it until it is back: %s", exc)
            return None
        except redis.RedisError as exc:
            # Redis answered but refused (out of memory under noeviction, read-only replica):
            # not an outage, the entry is simply not cached.
            if not self._warned_refusal:
                self._warned_refusal = True
                log.warning("Redis cache refused a command: %s", exc)
            return None
        if self._in_outage:
            with self._lock:
                recovered = self._in_outage
                self._in_outage = False
            if recovered:
                log.info("Redis cache reachable again")
        return result


def _glob_escape(text: str) -> str:
    """A prefix as a literal in a Redis MATCH pattern."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)
