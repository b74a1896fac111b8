"""The production set-up: server processes sharing PostgreSQL, Redis and S3 behave as one
server; several workers share one port; a Redis outage slows requests, never fails them."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage

from radcase_pacs.settings import Settings
from storage.blobs.filesystem import FilesystemBlobStore
from storage.cache.redis import RedisCache
from storage.index.sqlite import SqliteIndex
from storage.stores import Stores
from tests.apps import served
from tests.backends import PrivateRedis
from tests.factories import free_port, make_instance, multipart_body, to_bytes
from tests.serving import production_environment, serve

FRAME = {"Accept": "application/octet-stream"}


@pytest.fixture
def production_env(
    tmp_path: Path,
    postgres_url: str,
    redis_key_prefix: str,
    s3_bucket_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    """The environment of a server process of the production set-up."""
    for name in list(os.environ):
        if name.startswith("RADCASE_"):
            monkeypatch.delenv(name)
    return {
        **os.environ,
        **production_environment(postgres_url, redis_key_prefix, s3_bucket_name),
        "RADCASE_DATA_DIR": str(tmp_path / "unused"),
        "RADCASE_DIMSE_PORT": "0",
        "RADCASE_AUTH": "off",
    }


def store(base: str, *datasets: object) -> None:
    body, content_type = multipart_body([to_bytes(ds) for ds in datasets])  # type: ignore[arg-type]
    response = httpx.post(
        f"{base}/dicomweb/studies",
        content=body,
        headers={"Content-Type": content_type, "Accept": "application/dicom+json"},
        timeout=30,
    )
    assert response.status_code == 200, response.text


def sop_uids(metadata: list[dict]) -> set[str]:  # type: ignore[type-arg]
    return {doc["00080018"]["Value"][0] for doc in metadata}


@pytest.mark.e2e
def test_two_processes_sharing_postgres_redis_and_s3_answer_as_one(
    production_env: dict[str, str],
) -> None:
    study, series = generate_uid(), generate_uid()
    first = make_instance(study_uid=study, series_uid=series, instance_number=1)
    second = make_instance(study_uid=study, series_uid=series, instance_number=2)
    metadata_path = f"/dicomweb/studies/{study}/series/{series}/metadata"
    with serve(production_env) as a, serve(production_env) as b:
        store(a, first)
        found = httpx.get(f"{b}/dicomweb/studies", params={"StudyInstanceUID": study}).json()
        assert len(found) == 1
        cached = httpx.get(b + metadata_path)  # now in Redis, served by b
        assert sop_uids(cached.json()) == {first.SOPInstanceUID}
        frame = httpx.get(
            f"{b}/dicomweb/studies/{study}/series/{series}/instances/{first.SOPInstanceUID}"
            "/frames/1",
            headers=FRAME,
        )
        assert frame.status_code == 200 and frame.content == first.PixelData

        store(a, second)
        after_store = httpx.get(b + metadata_path)
        assert sop_uids(after_store.json()) == {first.SOPInstanceUID, second.SOPInstanceUID}
        assert after_store.headers["etag"] != cached.headers["etag"]
        unchanged = httpx.get(b + metadata_path, headers={"If-None-Match": cached.headers["etag"]})
        assert unchanged.status_code == 200  # the old tag no longer matches

        deleted = httpx.delete(
            f"{a}/dicomweb/studies/{study}/series/{series}/instances/{second.SOPInstanceUID}"
        )
        assert deleted.status_code in (200, 202, 204)
        after_delete = httpx.get(b + metadata_path)
        assert sop_uids(after_delete.json()) == {first.SOPInstanceUID}
        gone = httpx.get(
            f"{b}/dicomweb/studies/{study}/series/{series}/instances/{second.SOPInstanceUID}"
            "/frames/1",
            headers=FRAME,
        )
        assert gone.status_code == 404


@pytest.mark.e2e
def test_workers_share_one_port_and_their_metrics_add_up(
    production_env: dict[str, str],
) -> None:
    """The HTTP workers' counts add up in /metrics, and so do those of the supervising
    process, which alone runs the DIMSE listener, and every process's database pools."""
    ds = make_instance()
    dimse_port = free_port()
    env = {**production_env, "RADCASE_DIMSE_PORT": str(dimse_port), "RADCASE_AE_TITLE": "PACS"}
    with serve(env, "--workers", "2") as base:
        store(base, ds)
        for _ in range(30):
            response = httpx.get(f"{base}/dicomweb/studies", params={"PatientID": "PID1"})
            assert response.status_code == 200 and len(response.json()) == 1
        ae = AE(ae_title="MODALITY")
        ae.add_requested_context(CTImageStorage)
        assoc = ae.associate("127.0.0.1", dimse_port, ae_title="PACS")
        assert assoc.is_established
        try:
            assert assoc.send_c_store(make_instance()).Status == 0x0000
        finally:
            assoc.release()
        text = httpx.get(f"{base}/metrics").text
    found: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            found[key] = found.get(key, 0.0) + sample.value

    def total(name: str, **labels: str) -> float:
        wanted = frozenset(labels.items())
        return sum(v for (n, have), v in found.items() if n == name and wanted <= have)

    assert total("radcase_http_requests_total", route="/dicomweb/studies", method="GET") == 30
    assert total("radcase_ingests_total", edge="stow-rs", outcome="stored") == 1
    assert total("radcase_ingests_total", edge="c-store", outcome="stored") == 1
    assert total("radcase_dimse_associations_total", outcome="accepted") == 1
    # Three processes (the supervisor and two workers), each with the default pool_max of 10.
    assert total("radcase_db_pool_max_connections", pool="index") == 30


def test_a_redis_outage_slows_requests_but_fails_none(
    tmp_path: Path, private_redis: PrivateRedis, request: pytest.FixtureRequest
) -> None:
    cache = RedisCache(
        f"redis://127.0.0.1:{private_redis.port}/0", prefix="outage:", retry_after=0.3
    )
    stores = Stores(
        index=SqliteIndex(tmp_path / "index.sqlite3"),
        blobs=FilesystemBlobStore(tmp_path / "blobs"),
        cache=cache,
    )
    stores.open()
    request.addfinalizer(stores.close)
    study, series = generate_uid(), generate_uid()
    datasets = [
        make_instance(study_uid=study, series_uid=series, instance_number=n) for n in (1, 2)
    ]
    url = f"/dicomweb/studies/{study}/series/{series}/metadata"
    with served(Settings(data_dir=tmp_path / "data"), stores=stores) as client:
        body, content_type = multipart_body([to_bytes(ds) for ds in datasets])
        assert (
            client.post(
                "/dicomweb/studies", content=body, headers={"Content-Type": content_type}
            ).status_code
            == 200
        )
        expected = client.get(url).json()
        assert client.get(url).json() == expected and cache.hits >= 1

        private_redis.kill()
        for _ in range(20):
            during = client.get(url)
            assert during.status_code == 200 and during.json() == expected
            frame = client.get(
                f"/dicomweb/studies/{study}/series/{series}/instances/"
                f"{datasets[0].SOPInstanceUID}/frames/1",
                headers=FRAME,
            )
            assert frame.status_code == 200
        assert not cache.available

        private_redis.start()
        deadline = time.monotonic() + 10
        hits = cache.hits
        while cache.hits == hits:
            assert client.get(url).status_code == 200
            assert time.monotonic() < deadline, "the cache did not come back with Redis"
            time.sleep(0.1)
        assert cache.available
