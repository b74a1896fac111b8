"""Every edge that takes instances in (STOW-RS, C-STORE, ``import``) goes through the one
clinical archive of the deployment, so each leaves the same traces: the instances counted in
/metrics, an audit entry per stored object naming its study, and a teaching-file KOS turned
into a draft case. /metrics also names the edge each came through."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, KeyObjectSelectionDocumentStorage
from starlette.testclient import TestClient

from radcase_pacs.deployment import Deployment
from radcase_pacs.dimse.server import DimseServer
from radcase_pacs.importer import import_paths
from radcase_pacs.metrics import IngestEdge
from tests.factories import make_instance, multipart_body, to_bytes
from tests.radcase_pacs.dimse.conftest import dimse_settings
from tests.radcase_pacs.test_metrics import samples, value
from tests.teaching.kos_builder import TEACHING_FILE_EXPORT_IHE, build_kos

ACTIONS = {"stow": "clinical.store", "cstore": "dimse.store", "import": "import.store"}
EDGES = {"stow": "stow-rs", "cstore": "c-store", "import": "import"}


def image_and_kos() -> list[Dataset]:
    study, series = generate_uid(), generate_uid()
    image = make_instance(study_uid=study, series_uid=series)
    kos = build_kos([image], title=TEACHING_FILE_EXPORT_IHE, description="Teaching: a finding")
    return [image, kos]


@pytest.fixture
def dimse(tmp_path: Path, deployment: Deployment) -> Iterator[DimseServer]:
    """The DIMSE listener as ``serve`` runs it: over the deployment's clinical archive."""
    server = DimseServer(
        dimse_settings(tmp_path),
        deployment.clinical_via(IngestEdge.C_STORE),
        audit=deployment.audit,
    )
    server.start()
    yield server
    server.stop()


def by_stow(client: TestClient, datasets: list[Dataset]) -> None:
    for ds in datasets:  # one request per object, as the other edges send them
        body, content_type = multipart_body([to_bytes(ds)])
        response = client.post(
            f"/dicomweb/studies/{ds.StudyInstanceUID}",
            content=body,
            headers={"Content-Type": content_type},
        )
        assert response.status_code == 200, response.text


def by_cstore(server: DimseServer, datasets: list[Dataset]) -> None:
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(CTImageStorage)
    ae.add_requested_context(KeyObjectSelectionDocumentStorage)
    assoc = ae.associate("127.0.0.1", server.port, ae_title=server.settings.ae_title)
    assert assoc.is_established
    try:
        for ds in datasets:
            assert assoc.send_c_store(ds).Status == 0x0000
    finally:
        assoc.release()


def by_import(deployment: Deployment, folder: Path, datasets: list[Dataset]) -> None:
    folder.mkdir()
    for number, ds in enumerate(datasets):
        (folder / f"{number}.dcm").write_bytes(to_bytes(ds))
    summary = import_paths(
        deployment.clinical_via(IngestEdge.IMPORT),
        [folder],
        audit=deployment.audit,
        progress=False,
    )
    assert (summary.stored, summary.failed) == (2, [])


def test_stow_cstore_and_import_leave_the_same_traces(
    client: TestClient, deployment: Deployment, dimse: DimseServer, tmp_path: Path
) -> None:
    edges: dict[str, Callable[[list[Dataset]], Any]] = {
        "stow": lambda datasets: by_stow(client, datasets),
        "cstore": lambda datasets: by_cstore(dimse, datasets),
        "import": lambda datasets: by_import(deployment, tmp_path / "files", datasets),
    }
    for edge, send in edges.items():
        image, kos = image_and_kos()
        before = samples(client)
        cases_before = client.get("/api/cases").json()["total"]
        send([image, kos])

        after = samples(client)
        stored = value(after, "radcase_ingests_total", outcome="stored")
        assert stored - value(before, "radcase_ingests_total", outcome="stored") == 2, edge
        through = value(after, "radcase_ingests_total", edge=EDGES[edge], outcome="stored")
        assert through - value(before, "radcase_ingests_total", edge=EDGES[edge]) == 2, edge

        _, entries = deployment.audit.search(None, action=ACTIONS[edge], limit=10)
        mine = [e for e in entries if e.study_uid == image.StudyInstanceUID]
        assert len(mine) == 2, (edge, entries)

        page = client.get("/api/cases").json()
        assert page["total"] == cases_before + 1, edge
        newest = client.get(f"/api/cases/{page['cases'][0]['id']}").json()
        assert (newest["origin"], newest["status"]) == ("kos", "draft"), edge
        copy_of = deployment.cases.exporter("default").teaching_uid(image.StudyInstanceUID)
        assert newest["teaching_study_instance_uid"] == copy_of, edge


def test_a_refused_instance_is_counted_whichever_edge_refused_it(
    client: TestClient, deployment: Deployment, dimse: DimseServer
) -> None:
    """Rejections reach the same observer: a STOW-RS part and a C-STORE both count once."""
    bad = make_instance()
    del bad.StudyInstanceUID
    before = value(samples(client), "radcase_ingests_total", outcome="rejected")
    body, content_type = multipart_body([to_bytes(bad)])
    response = client.post(
        "/dicomweb/studies", content=body, headers={"Content-Type": content_type}
    )
    assert response.status_code == 409
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate("127.0.0.1", dimse.port, ae_title=dimse.settings.ae_title)
    try:
        assert assoc.send_c_store(bad).Status == 0xA900
    finally:
        assoc.release()
    found = samples(client)
    assert value(found, "radcase_ingests_total", outcome="rejected") - before == 2
    for edge in ("stow-rs", "c-store"):
        assert value(found, "radcase_ingests_total", edge=edge, outcome="rejected") == 1, edge
