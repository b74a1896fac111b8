"""Prometheus metrics: requests per route, ingest outcomes, cache hits and store latencies.

``/metrics`` answers in the Prometheus text format. Everything is measured at the edges the
composition root owns: an ASGI middleware times every request under its route template
(``/dicomweb/studies/{study}/metadata``, never a raw path with UIDs, which would make one
series per study), and thin wrappers time the index, blob store and cache calls the archive
makes. With several worker processes (``serve --workers N``) each process writes its values
to the folder named by ``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` sums them, whichever
worker answers the scrape.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from storage.archive import Archive, IngestOutcome, IngestResult
from storage.errors import InstanceRejected

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STORE_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
UNMATCHED = "unmatched"

INDEX_OPERATIONS = frozenset(
    {
        "find_instance",
        "add_instance",
        "add_instances",
        "query",
        "version",
        "instance_docs",
        "instances",
        "remove",
    }
)
BLOB_OPERATIONS = frozenset(
    {"put", "stage", "publish", "get", "stream", "read_range", "exists", "delete"}
)
CACHE_OPERATIONS = frozenset({"get", "set", "delete"})


@dataclass(frozen=True)
class Metrics:
    """The server's metrics in one registry (a fresh one per app, so tests don't collide)."""

    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    ingests: Counter
    cache: Counter
    store_latency: Histogram

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
                "Instances offered for storage (STOW-RS, C-STORE, import), by outcome",
                ["outcome"],
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
        )

    def exposition(self) -> bytes:
        """The text format; summed over worker processes when they share a folder."""
        if os.environ.get(MULTIPROCESS_ENV):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)

    def endpoint(self) -> Callable[[Request], Any]:
        async def metrics(request: Request) -> Response:
            return Response(self.exposition(), media_type=CONTENT_TYPE_LATEST)

        return metrics


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


class _Timed:
    """Delegates to a store, timing the named operations (streams until exhausted)."""

    def __init__(
        self, target: Any, store: str, operations: frozenset[str], histogram: Histogram
    ) -> None:
        self._target = target
        self._store = store
        self._operations = operations
        self._histogram = histogram

    def __repr__(self) -> str:
        return repr(self._target)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if name not in self._operations:
            return attribute
        observe = self._histogram.labels(self._store, name).observe
        if name == "stream":
            return lambda *a, **k: _timed_iterator(attribute(*a, **k), observe)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return attribute(*args, **kwargs)
            finally:
                observe(time.perf_counter() - started)

        return timed


def _timed_iterator(chunks: Any, observe: Callable[[float], None]) -> Any:
    started = time.perf_counter()
    try:
        yield from chunks
    finally:
        observe(time.perf_counter() - started)


class _CountedCache(_Timed):
    """A timed cache that also counts hits and misses of ``get``."""

    def __init__(self, target: Any, metrics: Metrics) -> None:
        super().__init__(target, "cache", CACHE_OPERATIONS, metrics.store_latency)
        self._counter = metrics.cache

    def get(self, key: str) -> bytes | None:
        value: bytes | None = self.__getattr__("get")(key)
        self._counter.labels("miss" if value is None else "hit").inc()
        return value


@dataclass
class MeasuredArchive(Archive):
    """An archive that counts ingest outcomes; its stores are wrapped by :func:`measured`."""

    metrics: Metrics | None = None

    def ingest(self, source: BinaryIO, *, expected_study_uid: str | None = None) -> IngestResult:
        try:
            result = super().ingest(source, expected_study_uid=expected_study_uid)
        except InstanceRejected:
            self._count("rejected")
            raise
        self._count(str(result.outcome))
        return result

    def ingest_many(
        self, sources: Iterable[BinaryIO], *, expected_study_uid: str | None = None
    ) -> list[IngestOutcome]:
        outcomes = super().ingest_many(sources, expected_study_uid=expected_study_uid)
        for outcome in outcomes:
            if isinstance(outcome, IngestResult):
                self._count(str(outcome.outcome))
            elif isinstance(outcome, InstanceRejected):
                self._count("rejected")
        return outcomes

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.ingests.labels(outcome).inc()


def measured(archive: Archive, metrics: Metrics) -> MeasuredArchive:
    """The same archive with every store call timed, cache hits counted, ingests counted."""
    return MeasuredArchive(
        index=_Timed(archive.index, "index", INDEX_OPERATIONS, metrics.store_latency),  # type: ignore[arg-type]
        blobs=_Timed(archive.blobs, "blobs", BLOB_OPERATIONS, metrics.store_latency),  # type: ignore[arg-type]
        cache=_CountedCache(archive.cache, metrics),  # type: ignore[arg-type]
        tenant=archive.tenant,
        after_ingest=archive.after_ingest,
        _opened=archive._opened,  # one set of stores: opening either opens both
        metrics=metrics,
    )
