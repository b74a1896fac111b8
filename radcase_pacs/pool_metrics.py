"""Database connection pools in /metrics: how full each is, and how often a request waited
for a connection or got none.

A pool's state lives in the pool (psycopg_pool keeps it); Prometheus needs it in gauges and
counters. :class:`PoolSampler` copies it there: just before each exposition, so a scrape of a
single process reads the pool as it is, and once a second from a thread of its own, because
with several worker processes the scrape is answered by one of them from the values every
process last wrote (``PROMETHEUS_MULTIPROC_DIR``), and an idle process writes nothing
otherwise. Pools are named by their role (``index``, ``audit``, ``users``...): a deployment
opens one per component, and the sum is what PostgreSQL's ``max_connections`` must allow.

Saturation is ``in_use / max``; a pool that is saturated makes requests wait
(``radcase_db_pool_waiting_requests``, ``radcase_db_pool_queued_requests_total``) and then
fail with a timeout (``radcase_db_pool_failed_requests_total``), answered 503. psycopg_pool
keeps a request that gave up in its queue until the next connection comes back, so the
waiting gauge may count it until then.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

from storage.database.base import Database, PoolStats

log = logging.getLogger(__name__)

SAMPLE_SECONDS = 1.0
"""How often each process writes its pools' figures: finer than any scrape interval, and a
few microseconds of work per pool."""


@dataclass(frozen=True)
class PoolMetrics:
    """The pool gauges and counters, labelled by pool. The gauges are summed over live
    worker processes, as their pools add up."""

    connections: Gauge
    max_connections: Gauge
    waiting: Gauge
    requests: Counter
    queued: Counter
    failed: Counter
    wait_seconds: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> PoolMetrics:
        def gauge(name: str, help: str, labels: list[str]) -> Gauge:
            return Gauge(name, help, labels, registry=registry, multiprocess_mode="livesum")

        def counter(name: str, help: str) -> Counter:
            return Counter(name, help, ["pool"], registry=registry)

        return cls(
            connections=gauge(
                "radcase_db_pool_connections",
                "Open database connections by pool and state (in_use: lent to a request; idle)",
                ["pool", "state"],
            ),
            max_connections=gauge(
                "radcase_db_pool_max_connections",
                "The most connections each pool may open (pool_max)",
                ["pool"],
            ),
            waiting=gauge(
                "radcase_db_pool_waiting_requests",
                "Requests waiting for a connection now, by pool",
                ["pool"],
            ),
            requests=counter("radcase_db_pool_requests", "Connections asked of each pool"),
            queued=counter(
                "radcase_db_pool_queued_requests",
                "Requests that waited for a connection because none was idle, by pool",
            ),
            failed=counter(
                "radcase_db_pool_failed_requests",
                "Requests that got no connection (waited past the timeout, or too many "
                "waiting), by pool",
            ),
            wait_seconds=counter(
                "radcase_db_pool_wait_seconds",
                "Seconds spent waiting for a connection, all requests together, by pool",
            ),
        )


class PoolSampler:
    """Copies the figures of ``pools`` (role name to database; those without a pool are
    passed over) into :class:`PoolMetrics`."""

    def __init__(
        self,
        metrics: PoolMetrics,
        pools: Mapping[str, Database],
        interval: float = SAMPLE_SECONDS,
    ) -> None:
        self.metrics = metrics
        self.pools = dict(pools)
        self.interval = interval
        self._lock = threading.Lock()
        self._seen: dict[str, PoolStats] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> None:
        """Write every open pool's figures now (thread-safe)."""
        with self._lock:
            for name, database in self.pools.items():
                stats = database.pool_stats()
                if stats is not None:
                    self._write(name, stats)

    def _write(self, name: str, now: PoolStats) -> None:
        m = self.metrics
        m.connections.labels(name, "in_use").set(now.in_use)
        m.connections.labels(name, "idle").set(now.idle)
        m.max_connections.labels(name).set(now.max_size)
        m.waiting.labels(name).set(now.waiting)
        before = self._seen.get(name)
        self._seen[name] = now
        for counter, current, previous in (
            (m.requests, now.requests, before.requests if before else 0),
            (m.queued, now.queued, before.queued if before else 0),
            (m.failed, now.failed, before.failed if before else 0),
            (m.wait_seconds, now.wait_seconds, before.wait_seconds if before else 0.0),
        ):
            # A pool closed and opened again starts its counts from zero.
            moved = current - previous if current >= previous else current
            if moved:
                counter.labels(name).inc(moved)

    def start(self) -> None:
        """Sample every ``interval`` seconds until :meth:`stop`."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="pool-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample()
            except Exception:  # a sampler that dies would freeze the figures unnoticed
                log.exception("sampling the database pools failed")
