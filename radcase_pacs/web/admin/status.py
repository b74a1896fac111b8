"""The server's status for a person: what ``/healthz`` and ``/metrics`` say, in words and
tables rather than the Prometheus text format.

Health is the report ``/healthz`` makes (:mod:`radcase_pacs.health`): each backend, whether
it answers, and what that means for the server. The figures are read from the same
exposition ``/metrics`` serves (summed over the worker processes when there are several), so
the page and a Prometheus scrape never disagree: ingest outcomes, requests by route with
their error count and latency (the mean, and the 95th percentile estimated from the
histogram's buckets as Prometheus's ``histogram_quantile`` does), the cache hit rate and the
DIMSE associations, all since the server started. Storage is read from the index: each
institution's studies, instances and stored bytes. The page spans every institution, so it
is for the home institution's admins, as ``/metrics`` is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from radcase_pacs.web.context import Web
from storage.errors import ArchiveError
from storage.records import Usage

TOP_ROUTES = 15


@dataclass
class RouteFigures:
    method: str
    route: str
    requests: float = 0.0
    errors: float = 0.0
    """Answers with a 5xx status: faults of the server or of a backend."""
    seconds: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)
    """Cumulative count by upper bound, as the histogram exports it."""

    @property
    def mean_ms(self) -> float | None:
        count = self.buckets.get(math.inf, 0.0)
        return self.seconds / count * 1000 if count else None

    @property
    def p95_ms(self) -> float | None:
        return _quantile(0.95, self.buckets)


@dataclass
class Figures:
    ingests: dict[str, float] = field(default_factory=dict)
    routes: list[RouteFigures] = field(default_factory=list)
    cache_hits: float = 0.0
    cache_misses: float = 0.0
    associations: dict[str, float] = field(default_factory=dict)
    open_associations: float = 0.0

    @property
    def hit_rate(self) -> float | None:
        looked_up = self.cache_hits + self.cache_misses
        return self.cache_hits / looked_up if looked_up else None

    @property
    def requests(self) -> float:
        return sum(r.requests for r in self.routes)


def _quantile(q: float, buckets: dict[float, float]) -> float | None:
    """The ``q`` quantile in milliseconds by linear interpolation within the bucket that
    holds it; the largest finite bound when it falls in the +Inf bucket."""
    total = buckets.get(math.inf, 0.0)
    if not total:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in sorted(buckets):
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower * 1000
            share = (rank - below) / (count - below) if count > below else 1.0
            return (lower + (bound - lower) * share) * 1000
        lower, below = bound, count
    return lower * 1000


def read_figures(exposition: str) -> Figures:
    """The figures of a Prometheus text exposition of this server's metrics."""
    figures = Figures()
    routes: dict[tuple[str, str], RouteFigures] = {}

    def route(labels: dict[str, str]) -> RouteFigures:
        key = (labels.get("method", ""), labels.get("route", ""))
        if key not in routes:
            routes[key] = RouteFigures(*key)
        return routes[key]

    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, float(sample.value)
            if name == "radcase_http_requests_total":
                found = route(labels)
                found.requests += value
                if labels.get("status", "").startswith("5"):
                    found.errors += value
            elif name == "radcase_http_request_duration_seconds_sum":
                route(labels).seconds += value
            elif name == "radcase_http_request_duration_seconds_bucket":
                bound = float(labels["le"])
                buckets = route(labels).buckets
                buckets[bound] = buckets.get(bound, 0.0) + value
            elif name == "radcase_ingests_total":
                outcome = labels.get("outcome", "")
                figures.ingests[outcome] = figures.ingests.get(outcome, 0.0) + value
            elif name == "radcase_cache_requests_total":
                if labels.get("result") == "hit":
                    figures.cache_hits += value
                elif labels.get("result") == "miss":
                    figures.cache_misses += value
            elif name == "radcase_dimse_associations_total":
                outcome = labels.get("outcome", "")
                figures.associations[outcome] = figures.associations.get(outcome, 0.0) + value
            elif name == "radcase_dimse_open_associations":
                figures.open_associations += value
    figures.routes = sorted(routes.values(), key=lambda r: (-r.requests, r.route))
    return figures


@dataclass(frozen=True)
class Storage:
    tenant: str
    clinical: Usage
    teaching: Usage


def status_routes(web: Web) -> list[Route]:
    deployment = web.deployment

    def storage() -> list[Storage]:
        clinical, teaching = deployment.archive, deployment.teaching
        tenants = sorted(set(clinical.tenants()) | set(teaching.tenants()))
        return [
            Storage(
                t,
                clinical.with_tenant(t).usage(),
                teaching.with_tenant(t).usage(),
            )
            for t in tenants
        ]

    async def status(request: Request) -> Response:
        health = await deployment.health.report()
        try:
            used: list[Storage] | None = await run_in_threadpool(storage)
        except ArchiveError:
            used = None
        exposition = await run_in_threadpool(deployment.metrics.exposition)
        figures = read_figures(exposition.decode("utf-8"))
        context = {
            "health": health,
            "storage": used,
            "figures": figures,
            "routes": figures.routes[:TOP_ROUTES],
            "more_routes": max(0, len(figures.routes) - TOP_ROUTES),
            "size": size_text,
        }
        return web.pages.render(request, "admin_status.html", context)

    return [Route("/admin/status", status, methods=["GET"])]


def size_text(size: int) -> str:
    """Bytes in the largest unit that keeps the figure at least 1 (binary units)."""
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"
