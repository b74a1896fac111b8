"""Where the primary's WAL stood after the latest write of each scope (a tenant's index, the
teaching database): what a replica must have replayed before it may answer a read of that
scope, so that whoever just wrote finds the write in their next read.

Positions only ever go up: recording one lower than the one held changes nothing, so writers
racing each other can never hide the later write. They are kept where every process of the
deployment reads them when the deployment shares a Redis (its cache), else in the process
(read-your-writes then holds for what the same process wrote).

Redis is asked with short timeouts and left alone for ``retry_after`` seconds after a fault,
like the cache (:mod:`storage.cache.redis`). While it cannot be read, :meth:`required`
answers None and the caller reads from the primary. After an outage a process writes again
every position it holds (Redis may have come back empty), so one it could not write reaches
the others with its next call that reaches Redis.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol
from urllib.parse import parse_qsl, urlencode

import redis
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.retry import Retry

log = logging.getLogger(__name__)

OUTAGE_ERRORS = (redis.RedisError, OSError)
KEEP_SECONDS = 7 * 24 * 3600
"""How long Redis keeps a scope's position after its last write. Far longer than any replica
may lag and still serve reads, so a forgotten position only ever belonged to a write every
usable replica has replayed."""
# Positions are stored as 16 hexadecimal digits, so that comparing the text compares the
# numbers (Lua's numbers are doubles, which would round positions past 2^53).
RAISE = """
local current = redis.call('GET', KEYS[1])
if not current or ARGV[1] > current then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
else
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 1
"""


class WritePositions(Protocol):
    def open(self) -> None: ...

    def close(self) -> None: ...

    def advance(self, scope: str, position: int) -> None:
        """Raise the position recorded for ``scope`` to ``position`` (never lower it)."""

    def required(self, scope: str) -> int | None:
        """The highest position recorded for ``scope`` (0 when none); None when it cannot be
        known (the shared store is unreachable)."""


class LocalPositions:
    """Positions of the writes this process made."""

    def __init__(self) -> None:
        self._positions: dict[str, int] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "LocalPositions()"

    def open(self) -> None:
        return None

    def close(self) -> None:
        return None

    def advance(self, scope: str, position: int) -> None:
        with self._lock:
            if position > self._positions.get(scope, 0):
                self._positions[scope] = position

    def required(self, scope: str) -> int | None:
        with self._lock:
            return self._positions.get(scope, 0)

    def items(self) -> list[tuple[str, int]]:
        with self._lock:
            return list(self._positions.items())


class RedisPositions:
    """Positions every process of a deployment shares, under the deployment's key prefix.

    URL: the cache's ``redis://...?prefix=P`` (``prefix`` is ours, the rest redis-py's)."""

    def __init__(self, url: str, *, timeout: float = 0.5, retry_after: float = 2.0) -> None:
        self.url, self.prefix = _split_prefix(url)
        self.timeout = timeout
        self.retry_after = retry_after
        self._client: redis.Redis | None = None
        self._script: Script | None = None
        self._local = LocalPositions()
        self._unsent = False
        self._skip_until = 0.0
        self._in_outage = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        from storage.urls import mask_password

        return f"RedisPositions({mask_password(self.url)!r}, prefix={self.prefix!r})"

    def open(self) -> None:
        if self._client is None:
            client = redis.Redis.from_url(
                self.url,
                socket_timeout=self.timeout,
                socket_connect_timeout=self.timeout,
                retry=Retry(NoBackoff(), 0),
                retry_on_timeout=False,
                health_check_interval=30,
            )
            self._script = client.register_script(RAISE)
            self._client = client

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def advance(self, scope: str, position: int) -> None:
        self._local.advance(scope, position)
        if self._unsent:
            self._send_all()
        elif not self._send(scope, position):
            self._unsent = True

    def required(self, scope: str) -> int | None:
        client = self._reachable()
        if client is None:
            return None
        try:
            value = client.get(self.prefix + scope)
        except OUTAGE_ERRORS as exc:
            self._outage(exc)
            return None
        self._recovered()
        if self._unsent:
            self._send_all()
        shared = int(value, 16) if value else 0
        return max(shared, self._local.required(scope) or 0)

    def _send(self, scope: str, position: int) -> bool:
        client, script = self._reachable(), self._script
        if client is None or script is None:
            return False
        try:
            script(
                keys=[self.prefix + scope], args=[f"{position:016x}", KEEP_SECONDS], client=client
            )
        except OUTAGE_ERRORS as exc:
            self._outage(exc)
            return False
        self._recovered()
        return True

    def _send_all(self) -> None:
        """Write every position this process holds: those it could not write before."""
        self._unsent = not all(self._send(s, p) for s, p in self._local.items())

    def _reachable(self) -> redis.Redis | None:
        if self._client is None or time.monotonic() < self._skip_until:
            return None
        return self._client

    def _outage(self, exc: Exception) -> None:
        # Redis may come back empty (restarted): every position held here is written again.
        self._unsent = True
        self._skip_until = time.monotonic() + self.retry_after
        with self._lock:
            first, self._in_outage = not self._in_outage, True
        if first:
            log.warning(
                "Redis unreachable for the replica's write positions, reads go to the "
                "primary until it is back: %s",
                exc,
            )

    def _recovered(self) -> None:
        if self._in_outage:
            with self._lock:
                was, self._in_outage = self._in_outage, False
            if was:
                log.info("Redis reachable again for the replica's write positions")


def _split_prefix(url: str) -> tuple[str, str]:
    base, _, query = url.partition("?")
    pairs = parse_qsl(query, keep_blank_values=True)
    prefix = next((v for k, v in pairs if k == "prefix"), "radcase:replica:")
    rest = [(k, v) for k, v in pairs if k != "prefix"]
    return (f"{base}?{urlencode(rest)}" if rest else base), prefix
