"""Prometheus metrics: requests per route, ingest outcomes, cache hits, store latencies and
failures, audit writes and database pools.

``/metrics`` answers in the Prometheus text format. Everything is measured at the edges the
composition root owns: an ASGI middleware times every request under its route template
(``/dicomweb/studies/{study}/metadata``, never a raw path with UIDs, which would make one
series per study); typed wrappers that implement the store protocols time the index, blob
store and cache calls the archive makes and count those that fail; an ingest observer on the
archive counts what each edge (STOW-RS, C-STORE, import) offered for storage, by outcome; the
audit log counts the entries it wrote and failed to write; and the database pools are
sampled (:mod:`radcase_pacs.pool_metrics`). The Grafana dashboard and the Prometheus alerts
in ``deploy/`` read these names, and a test holds them to it. With several worker processes
(``serve --workers N``) each process writes its values to the folder named by
``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` sums them, whichever process answers the
scrape.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, BinaryIO

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import values as prometheus_values
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from radcase_pacs.audit.store import AuditEntry, AuditLog
from radcase_pacs.pool_metrics import PoolMetrics, PoolSampler
from storage.archive import Archive, IngestObserver, IngestOutcome
from storage.blobs.base import CHUNK_SIZE, BlobEntry, BlobStore, PartialWrite, Staged
from storage.cache.base import Cache
from storage.database.base import Database
from storage.errors import ArchiveError, BackendFailure, InstanceRejected
from storage.index.base import Index
from storage.query import Query
from storage.records import (
    AddResult,
    InstanceRecord,
    Match,
    Removed,
    StoredInstance,
    Usage,
    View,
)
from storage.stores import Stores

if TYPE_CHECKING:
    from storage.replica.router import ReplicaState

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STORE_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
UNMATCHED = "unmatched"


def share_folder(folder: str) -> None:
    """Make this process, and the worker processes it starts, write their metrics to
    ``folder``, from which ``/metrics`` sums them whichever process answers.

    prometheus_client chooses where values live (in memory or in the folder) when it is
    first imported, which in ``serve`` happens before the folder exists: it is chosen again
    here, before any metric of the deployment is made, or what this process alone counts
    (the DIMSE listener's associations and C-STORE ingests) would never reach a scrape."""
    os.environ[MULTIPROCESS_ENV] = folder
    prometheus_values.ValueClass = prometheus_values.get_value_class()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class Metrics:
    """The server's metrics in one registry (a fresh one per app, so tests don't collide)."""

    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    ingests: Counter
    cache: Counter
    store_latency: Histogram
    store_errors: Counter
    associations: Counter
    open_associations: Gauge
    audit_writes: Counter
    pools: PoolMetrics
    index_reads: Counter
    replica_lag: Gauge
    replica_up: Gauge
    _before_exposition: list[Callable[[], None]] = field(default_factory=list)

    @classmethod
    def create(cls) -> Metrics:
        registry = CollectorRegistry(auto_describe=True)
        return cls(
            registry=registry,
            requests=Counter(
                "radcase_http_requests",
                "HTTP requests by method, route template and status",
                ["method", "route", "status"],
                registry=registry,
            ),
            latency=Histogram(
                "radcase_http_request_duration_seconds",
                "Time to the last byte of the response, by method and route template",
                ["method", "route"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            ingests=Counter(
                "radcase_ingests",
                "Instances offered for storage, by the edge they came through (stow-rs, "
                "c-store, import) and outcome (stored, already-present, rejected: the sender's "
                "problem, failed: a backend's)",
                ["edge", "outcome"],
                registry=registry,
            ),
            cache=Counter(
                "radcase_cache_requests",
                "Cache lookups by result (hit or miss): the hit rate is hit / (hit + miss)",
                ["result"],
                registry=registry,
            ),
            store_latency=Histogram(
                "radcase_store_operation_duration_seconds",
                "Time of each index, blob store and cache operation",
                ["store", "operation"],
                buckets=STORE_BUCKETS,
                registry=registry,
            ),
            store_errors=Counter(
                "radcase_store_errors",
                "Index, blob store and cache operations that failed (a backend fault such as an "
                "S3 error or a lost connection; an absent key is an answer, not a failure)",
                ["store", "operation"],
                registry=registry,
            ),
            associations=Counter(
                "radcase_dimse_associations",
                "DIMSE associations by outcome: accepted, rejected, released or aborted",
                ["outcome"],
                registry=registry,
            ),
            open_associations=Gauge(
                "radcase_dimse_open_associations",
                "DIMSE associations accepted and not yet released or aborted",
                registry=registry,
                multiprocess_mode="livesum",
            ),
            audit_writes=Counter(
                "radcase_audit_writes",
                "Audit log entries by result (written or failed); a request whose entry "
                "failed was refused (HTTP 503, DIMSE 0xA700), never served unrecorded",
                ["result"],
                registry=registry,
            ),
            pools=PoolMetrics.create(registry),
            index_reads=Counter(
                "radcase_index_reads",
                "Reads that may go to the read replica (searches, teaching analytics), by the "
                "server that answered them: replica or primary",
                ["target"],
                registry=registry,
            ),
            replica_lag=Gauge(
                "radcase_index_replica_lag_seconds",
                "How far the read replica was behind the primary when last checked (0: it had "
                "replayed all it received)",
                registry=registry,
                multiprocess_mode="livemostrecent",
            ),
            replica_up=Gauge(
                "radcase_index_replica_up",
                "1 when the read replica was reachable and a standby when last checked, else 0",
                registry=registry,
                multiprocess_mode="livemostrecent",
            ),
        )

    def instrument(self, stores: Stores) -> Stores:
        """The same stores, each operation timed, its failures and the cache's hits and
        misses counted (they share the inner stores' connections: opening either opens
        both)."""
        return Stores(
            index=TimedIndex(stores.index, self.store_latency, self.store_errors),
            blobs=TimedBlobStore(stores.blobs, self.store_latency, self.store_errors),
            cache=CountedCache(stores.cache, self.store_latency, self.store_errors, self.cache),
        )

    def ingest_counter(self, edge: IngestEdge) -> IngestObserver:
        """An ingest observer counting each instance offered through ``edge`` by outcome."""
        ingests = self.ingests

        def count(archive: Archive, outcome: IngestOutcome) -> None:
            ingests.labels(edge, outcome_label(outcome)).inc()

        return count

    def audit_log(self, db: Database) -> AuditLog:
        """The audit log over ``db``, its writes counted."""
        return CountedAuditLog(db, self.audit_writes)

    @contextmanager
    def pools_sampled(self, pools: Mapping[str, Database]) -> Iterator[None]:
        """The figures of the connection pools of ``pools`` (role name to database) in
        every exposition and, from a thread, every second, while the block runs (see
        :mod:`radcase_pacs.pool_metrics`). Nothing runs when none of them has a pool."""
        if all(database.pool_stats() is None for database in pools.values()):
            yield
            return
        sampler = PoolSampler(self.pools, pools)
        self._before_exposition.append(sampler.sample)
        sampler.start()
        try:
            yield
        finally:
            sampler.stop()
            self._before_exposition.remove(sampler.sample)

    def read_routed(self, target: str) -> None:
        """A replica observer (:class:`storage.replica.router.ReplicaObserver`): one count
        per routed read, by the server that answered it."""
        self.index_reads.labels(target).inc()

    def replica_checked(self, state: ReplicaState) -> None:
        """A replica observer: the replica's lag and reachability as last found."""
        self.replica_up.set(0 if state.replayed is None else 1)
        if state.lag is not None:
            self.replica_lag.set(state.lag)

    def exposition(self) -> bytes:
        """The text format; summed over worker processes when they share a folder."""
        for refresh in list(self._before_exposition):
            refresh()
        if os.environ.get(MULTIPROCESS_ENV):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)

    def endpoint(self) -> Callable[[Request], Any]:
        async def metrics(request: Request) -> Response:
            return Response(self.exposition(), media_type=CONTENT_TYPE_LATEST)

        return metrics


class IngestEdge(StrEnum):
    """Where instances come in: the ``edge`` label of ``radcase_ingests_total``."""

    STOW_RS = "stow-rs"
    C_STORE = "c-store"
    IMPORT = "import"
    OTHER = "other"
    """Code that ingests through the deployment's archive directly (tests, embedding)."""


def outcome_label(outcome: IngestOutcome) -> str:
    """The ``outcome`` label of one ingest: the archive's own outcome when it stored the
    instance (``stored``, ``already-present``), else who is to blame."""
    if isinstance(outcome, InstanceRejected):
        return "rejected"
    if isinstance(outcome, BackendFailure):
        return "failed"
    return str(outcome.outcome)


class MetricsMiddleware:
    """Counts and times every HTTP request under the template of the route that served it."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]
        outer_root = scope.get("root_path", "")

        async def send_and_note(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = _route_template(scope, outer_root)
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(status[0])).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - started)


def _route_template(scope: Scope, outer_root: str) -> str:
    """Mount prefixes plus the innermost route's path template (Starlette records the
    matched route in the scope), or ``unmatched`` for a 404 no route claimed."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if path is None or isinstance(route, Mount):  # a mount whose own routes matched nothing
        return UNMATCHED
    prefix = str(scope.get("root_path", ""))[len(outer_root) :]
    return f"{prefix}{path}" or "/"


class TimedIndex:
    """An :class:`~storage.index.base.Index` that times each operation of the one it wraps
    and counts those that fail."""

    def __init__(self, inner: Index, histogram: Histogram, errors: Counter) -> None:
        self._inner = inner
        self._histogram = histogram
        self._errors = errors

    def __repr__(self) -> str:
        return repr(self._inner)

    def _timed(self, operation: str) -> _Timer:
        return _Timer(self._histogram, self._errors, "index", operation)

    def open(self) -> None:
        self._inner.open()

    def close(self) -> None:
        self._inner.close()

    def ping(self) -> None:
        self._inner.ping()

    def find_instance(self, tenant: str, sop_uid: str) -> StoredInstance | None:
        with self._timed("find_instance"):
            return self._inner.find_instance(tenant, sop_uid)

    def add_instance(self, record: InstanceRecord) -> AddResult:
        with self._timed("add_instance"):
            return self._inner.add_instance(record)

    def add_instances(
        self, records: Sequence[InstanceRecord]
    ) -> list[AddResult | InstanceRejected]:
        with self._timed("add_instances"):
            return self._inner.add_instances(records)

    def query(self, view: View, query: Query, limit: int) -> list[Match]:
        with self._timed("query"):
            return self._inner.query(view, query, limit)

    def generation(self, tenant: str) -> str:
        with self._timed("generation"):
            return self._inner.generation(tenant)

    def version(self, view: View, study_uid: str, series_uid: str | None = None) -> str | None:
        with self._timed("version"):
            return self._inner.version(view, study_uid, series_uid)

    def instance_docs(
        self,
        view: View,
        study_uid: str,
        series_uid: str | None = None,
        sop_uid: str | None = None,
    ) -> list[bytes]:
        with self._timed("instance_docs"):
            return self._inner.instance_docs(view, study_uid, series_uid, sop_uid)

    def instances(
        self,
        view: View,
        study_uid: str,
        series_uid: str | None = None,
        sop_uid: str | None = None,
    ) -> list[StoredInstance]:
        with self._timed("instances"):
            return self._inner.instances(view, study_uid, series_uid, sop_uid)

    def remove(
        self,
        view: View,
        study_uid: str,
        series_uid: str | None = None,
        sop_uid: str | None = None,
    ) -> Removed:
        with self._timed("remove"):
            return self._inner.remove(view, study_uid, series_uid, sop_uid)

    def usage(self, tenant: str) -> Usage:
        with self._timed("usage"):
            return self._inner.usage(tenant)

    def tenants(self) -> list[str]:
        return self._inner.tenants()

    def stored_instances(self, tenant: str, after: str, limit: int) -> list[StoredInstance]:
        return self._inner.stored_instances(tenant, after, limit)

    def referenced_keys(self, keys: Collection[str]) -> set[str]:
        with self._timed("referenced_keys"):
            return self._inner.referenced_keys(keys)


class TimedBlobStore:
    """A :class:`~storage.blobs.base.BlobStore` that times each operation of the one it
    wraps (a stream until it is exhausted) and counts those that fail (S3 errors, a full or
    failing disk)."""

    def __init__(self, inner: BlobStore, histogram: Histogram, errors: Counter) -> None:
        self._inner = inner
        self._histogram = histogram
        self._errors = errors
        self.local = inner.local

    def __repr__(self) -> str:
        return repr(self._inner)

    def _timed(self, operation: str) -> _Timer:
        return _Timer(self._histogram, self._errors, "blobs", operation)

    def open(self) -> None:
        self._inner.open()

    def close(self) -> None:
        self._inner.close()

    def ping(self) -> None:
        self._inner.ping()

    def put(self, key: str, source: BinaryIO, size: int) -> None:
        with self._timed("put"):
            self._inner.put(key, source, size)

    def stage(self, key: str, source: BinaryIO, size: int) -> Staged:
        with self._timed("stage"):
            return self._inner.stage(key, source, size)

    def publish(self, staged: Sequence[Staged]) -> list[BackendFailure | None]:
        with self._timed("publish"):
            return self._inner.publish(staged)

    def discard(self, staged: Sequence[Staged]) -> None:
        self._inner.discard(staged)

    def get(self, key: str) -> bytes:
        with self._timed("get"):
            return self._inner.get(key)

    def view(self, key: str) -> bytes | memoryview:
        with self._timed("view"):
            return self._inner.view(key)

    def prefetch(self, keys: Sequence[str]) -> None:
        self._inner.prefetch(keys)

    def stream(self, key: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        with self._timed("stream"):
            yield from self._inner.stream(key, chunk_size)

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        with self._timed("read_range"):
            return self._inner.read_range(key, offset, length)

    def exists(self, key: str) -> bool:
        with self._timed("exists"):
            return self._inner.exists(key)

    def delete(self, key: str) -> None:
        with self._timed("delete"):
            self._inner.delete(key)

    def keys(self, prefix: str = "") -> Iterator[str]:
        return self._inner.keys(prefix)

    def entries(self, prefix: str = "") -> Iterator[BlobEntry]:
        return self._inner.entries(prefix)

    def delete_if_older(self, key: str, cutoff: datetime) -> bool:
        with self._timed("delete_if_older"):
            return self._inner.delete_if_older(key, cutoff)

    def partial_writes(self, prefix: str = "") -> Iterator[PartialWrite]:
        return self._inner.partial_writes(prefix)

    def discard_partial(self, write: PartialWrite) -> None:
        with self._timed("discard_partial"):
            self._inner.discard_partial(write)


class CountedCache:
    """A :class:`~storage.cache.base.Cache` that times each operation of the one it wraps,
    counts those that fail, and counts the hits and misses of ``get``."""

    def __init__(
        self, inner: Cache, histogram: Histogram, errors: Counter, lookups: Counter
    ) -> None:
        self._inner = inner
        self._histogram = histogram
        self._errors = errors
        self._lookups = lookups

    def __repr__(self) -> str:
        return repr(self._inner)

    def _timed(self, operation: str) -> _Timer:
        return _Timer(self._histogram, self._errors, "cache", operation)

    def open(self) -> None:
        self._inner.open()

    def close(self) -> None:
        self._inner.close()

    def ping(self) -> None:
        self._inner.ping()

    def get(self, key: str) -> bytes | None:
        with self._timed("get"):
            value = self._inner.get(key)
        self._lookups.labels("miss" if value is None else "hit").inc()
        return value

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        with self._timed("set"):
            self._inner.set(key, value, ttl)

    def delete(self, *keys: str) -> None:
        with self._timed("delete"):
            self._inner.delete(*keys)

    def incr(self, key: str, ttl: float) -> int:
        with self._timed("incr"):
            return self._inner.incr(key, ttl)


class CountedAuditLog(AuditLog):
    """An :class:`~radcase_pacs.audit.store.AuditLog` that counts each entry written and
    each it failed to write (whatever the reason: the entry is missing either way)."""

    def __init__(self, db: Database, writes: Counter) -> None:
        super().__init__(db)
        self._written = writes.labels("written")
        self._failed = writes.labels("failed")

    def record(self, entry: AuditEntry) -> None:
        try:
            super().record(entry)
        except Exception:
            self._failed.inc()
            raise
        self._written.inc()


class _Timer:
    """Observes the seconds one store operation spends inside a ``with`` block, whether it
    returns or raises, and counts it in ``errors`` when what it raises is a store's failure
    (:func:`is_store_failure`; the error's series is looked up only then)."""

    __slots__ = ("_errors", "_histogram", "_labels", "_started")

    def __init__(self, histogram: Histogram, errors: Counter, store: str, operation: str) -> None:
        self._histogram = histogram
        self._errors = errors
        self._labels = (store, operation)
        self._started = 0.0

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        self._histogram.labels(*self._labels).observe(time.perf_counter() - self._started)
        if error is not None and is_store_failure(error):
            self._errors.labels(*self._labels).inc()


def is_store_failure(error: BaseException) -> bool:
    """Whether a store operation raising ``error`` failed: a BackendFailure, or an exception
    the store should have translated and did not. The archive's other errors are answers
    (NotFound: no such key), and GeneratorExit is a reader that stopped early."""
    if isinstance(error, ArchiveError):
        return isinstance(error, BackendFailure)
    return isinstance(error, Exception)
