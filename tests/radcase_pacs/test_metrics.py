"""/metrics in the Prometheus text format: per-route requests and latencies, ingest outcomes,
cache hits and misses, store latencies; and the cache hit rate of a viewer-like workload."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from pydicom.uid import generate_uid
from starlette.testclient import TestClient

from tests.factories import make_instance, stow, to_bytes

SERIES_METADATA = "/dicomweb/studies/{study}/series/{series}/metadata"
FRAMES = "/dicomweb/studies/{study}/series/{series}/instances/{instance}/frames/{frames}"


def samples(client: TestClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    """The sum of the samples of ``name`` that carry ``labels`` (and perhaps others), as
    PromQL's ``sum(name{labels})`` reads them."""
    wanted = frozenset(labels.items())
    return sum(v for (n, have), v in found.items() if n == name and wanted <= have)


def test_a_viewer_workload_is_served_from_the_cache_above_90_percent(client: TestClient) -> None:
    """A 20-image series opened twelve times (series metadata, then every frame): three
    readers each scrolling through it four times; /metrics gives the hit rate. Only the
    first pass is cold (21 misses in 252 lookups)."""
    study, series = generate_uid(), generate_uid()
    instances = [
        make_instance(study_uid=study, series_uid=series, instance_number=n) for n in range(20)
    ]
    assert stow(client, [to_bytes(ds) for ds in instances]).status_code == 200
    before = samples(client)
    for _ in range(12):
        client.get(f"/dicomweb/studies/{study}/series/{series}/metadata")
        for ds in instances:
            frame = client.get(
                f"/dicomweb/studies/{study}/series/{series}/instances/{ds.SOPInstanceUID}/frames/1",
                headers={"Accept": "application/octet-stream"},
            )
            assert frame.status_code == 200
    after = samples(client)
    hits = value(after, "radcase_cache_requests_total", result="hit") - value(
        before, "radcase_cache_requests_total", result="hit"
    )
    misses = value(after, "radcase_cache_requests_total", result="miss") - value(
        before, "radcase_cache_requests_total", result="miss"
    )
    rate = hits / (hits + misses)
    print(f"viewer workload cache hit rate: {rate:.1%} ({hits:.0f} hits, {misses:.0f} misses)")
    assert rate > 0.9
    assert (
        value(after, "radcase_http_requests_total", method="GET", route=FRAMES, status="200") == 240
    )
    assert (
        value(
            after, "radcase_http_requests_total", method="GET", route=SERIES_METADATA, status="200"
        )
        == 12
    )


def test_requests_ingests_and_store_latencies_are_counted(client: TestClient) -> None:
    good = make_instance()
    bad = make_instance()
    del bad.StudyInstanceUID
    stow(client, [to_bytes(good), to_bytes(bad)])
    stow(client, [to_bytes(good)])
    client.get("/dicomweb/studies", params={"PatientName": "DOE*"})
    client.get("/dicomweb/no-such-thing")
    found = samples(client)
    for outcome in ("stored", "already-present", "rejected"):
        assert value(found, "radcase_ingests_total", edge="stow-rs", outcome=outcome) == 1
    assert value(found, "radcase_ingests_total", outcome="failed") == 0
    assert (
        value(
            found,
            "radcase_http_request_duration_seconds_count",
            method="GET",
            route="/dicomweb/studies",
        )
        == 1
    )
    assert (
        value(found, "radcase_http_requests_total", method="GET", route="unmatched", status="404")
        == 1
    )
    stow_writes = (("index", "add_instances"), ("blobs", "stage"), ("blobs", "publish"))
    for store, operation in (*stow_writes, ("index", "query")):
        assert (
            value(
                found,
                "radcase_store_operation_duration_seconds_count",
                store=store,
                operation=operation,
            )
            >= 1
        )
