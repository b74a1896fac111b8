"""The metrics the alerts rest on move when the thing they count happens, on real backends:
S3 errors by operation (moto's server, a bucket removed behind the server's back) and the
instances that such a failure lost, by the edge (STOW-RS, C-STORE, import) they came
through; audit entries written and failed (PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage
from pynetdicom.status import STATUS_FAILURE, code_to_category
from starlette.testclient import TestClient

from radcase_pacs.deployment import Deployment
from radcase_pacs.dimse.server import DimseServer
from radcase_pacs.importer import import_paths
from radcase_pacs.metrics import IngestEdge, is_store_failure
from radcase_pacs.settings import Settings
from storage.blobs.s3 import S3BlobStore
from storage.cache.memory import MemoryCache
from storage.errors import BackendFailure, NotFound, OutOfResources
from storage.index.sqlite import SqliteIndex
from storage.stores import Stores
from tests.apps import served
from tests.backends import MOTO, MotoS3
from tests.factories import make_instance, stow, to_bytes
from tests.radcase_pacs.dimse.conftest import dimse_settings
from tests.radcase_pacs.test_metrics import samples, value

FRAME = {"Accept": "application/octet-stream"}


def remove_bucket(name: str) -> None:
    """Empty and delete ``name`` as an operator's mistake or an outage would leave it."""
    client = MOTO.client()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
        objects = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if objects:
            client.delete_objects(Bucket=name, Delete={"Objects": objects})
    client.delete_bucket(Bucket=name)


@contextmanager
def s3_stores(tmp_path: Path, server: MotoS3) -> Iterator[tuple[Stores, str]]:
    """Opened stores whose blobs are in a bucket of the test's own on moto's server (the
    test may remove the bucket; whatever is left is removed afterwards)."""
    bucket = f"radcase-test-{generate_uid()[-12:].replace('.', '')}"
    server.client().create_bucket(Bucket=bucket)
    stores = Stores(
        index=SqliteIndex(tmp_path / "index.sqlite3"),
        blobs=S3BlobStore(
            bucket, "archive", endpoint_url=server.endpoint, session=server.session()
        ),
        cache=MemoryCache(16 * 1024 * 1024),
    )
    stores.open()
    try:
        yield stores, bucket
    finally:
        stores.close()
        if bucket in {b["Name"] for b in server.client().list_buckets()["Buckets"]}:
            remove_bucket(bucket)


@pytest.fixture
def s3_client(tmp_path: Path, s3_server: MotoS3) -> Iterator[tuple[TestClient, str]]:
    """The whole server over a SQLite index and an S3 bucket of its own."""
    with (
        s3_stores(tmp_path, s3_server) as (stores, bucket),
        served(Settings(data_dir=tmp_path / "data"), stores=stores) as client,
    ):
        yield client, bucket


def test_s3_errors_are_counted_by_operation(s3_client: tuple[TestClient, str]) -> None:
    client, bucket = s3_client
    stored = make_instance()
    assert stow(client, [to_bytes(stored)]).status_code == 200
    assert value(samples(client), "radcase_store_errors_total", store="blobs") == 0

    remove_bucket(bucket)
    frame = client.get(
        f"/dicomweb/studies/{stored.StudyInstanceUID}/series/{stored.SeriesInstanceUID}"
        f"/instances/{stored.SOPInstanceUID}/frames/1",
        headers=FRAME,
    )
    assert frame.status_code == 503, frame.text
    assert stow(client, [to_bytes(make_instance())]).status_code == 503

    found = samples(client)
    failed = {
        dict(labels)["operation"]: count
        for (name, labels), count in found.items()
        if name == "radcase_store_errors_total" and ("store", "blobs") in labels and count
    }
    assert failed == {"read_range": 1, "stage": 1}
    assert value(found, "radcase_store_errors_total", store="index") == 0


def test_an_instance_a_failing_backend_lost_is_counted_under_its_edge(
    s3_client: tuple[TestClient, str], tmp_path: Path
) -> None:
    """With the bucket gone, STOW-RS answers 503, C-STORE a failure status (PS3.4 B.2.3) and
    ``import`` reports the file failed; each is counted as failed under its own edge, and
    the rejections that are the sender's problem stay apart."""
    client, bucket = s3_client
    deployment: Deployment = client.app.state.deployment  # type: ignore[attr-defined]
    remove_bucket(bucket)

    assert stow(client, [to_bytes(make_instance())]).status_code == 503

    server = DimseServer(
        dimse_settings(tmp_path),
        deployment.clinical_via(IngestEdge.C_STORE),
        audit=deployment.audit,
        metrics=deployment.metrics,
    )
    server.start()
    try:
        ae = AE(ae_title="MODALITY")
        ae.add_requested_context(CTImageStorage)
        assoc = ae.associate("127.0.0.1", server.port, ae_title=server.settings.ae_title)
        assert assoc.is_established
        try:
            status = assoc.send_c_store(make_instance()).Status
            assert code_to_category(status) == STATUS_FAILURE, hex(status)
        finally:
            assoc.release()
    finally:
        server.stop()

    folder = tmp_path / "to-import"
    folder.mkdir()
    (folder / "one.dcm").write_bytes(to_bytes(make_instance()))
    summary = import_paths(
        deployment.clinical_via(IngestEdge.IMPORT),
        [folder],
        audit=deployment.audit,
        progress=False,
    )
    assert len(summary.failed) == 1

    found = samples(client)
    for edge in ("stow-rs", "c-store", "import"):
        assert value(found, "radcase_ingests_total", edge=edge, outcome="failed") == 1, edge
    assert value(found, "radcase_ingests_total", outcome="rejected") == 0
    assert value(found, "radcase_ingests_total", outcome="stored") == 0


@pytest.mark.parametrize(
    ("error", "failed"),
    [
        (BackendFailure("S3 unreachable"), True),
        (OutOfResources("bucket full"), True),
        (OSError("a driver error nobody translated"), True),
        (NotFound("no such blob: an answer"), False),
        (GeneratorExit(), False),
    ],
    ids=["backend", "full", "untranslated", "not-found", "reader-stopped"],
)
def test_only_a_store_fault_counts_as_a_store_error(error: BaseException, failed: bool) -> None:
    assert is_store_failure(error) is failed


def test_audit_entries_are_counted_written_and_failed(tmp_path: Path, postgres_url: str) -> None:
    """The audit log in PostgreSQL, then closed under the server (its database gone as far
    as the server can tell): the clinical request is refused and the failure counted."""
    instance = make_instance()
    with served(Settings(data_dir=tmp_path / "data", index_url=postgres_url)) as client:
        assert stow(client, [to_bytes(instance)]).status_code == 200
        before = samples(client)
        assert value(before, "radcase_audit_writes_total", result="written") >= 1
        assert value(before, "radcase_audit_writes_total", result="failed") == 0

        client.app.state.audit.close()  # type: ignore[attr-defined]
        refused = client.get(f"/dicomweb/studies/{instance.StudyInstanceUID}/metadata")
        assert refused.status_code == 503

        after = samples(client)
        assert value(after, "radcase_audit_writes_total", result="failed") == 1
        assert value(after, "radcase_audit_writes_total", result="written") == value(
            before, "radcase_audit_writes_total", result="written"
        )
