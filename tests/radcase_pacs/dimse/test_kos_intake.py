"""IHE RAD TCE over DIMSE: a workstation C-STOREs its images and then a Key Object Selection
Document titled "For Teaching File Export"; the teaching layer makes a draft case of the
referenced images, readable at once through the teaching JSON API."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from starlette.testclient import TestClient

from radcase_pacs.deployment import Deployment
from radcase_pacs.dimse.server import DimseServer
from tests.factories import free_port, make_instance
from tests.radcase_pacs.dimse.conftest import address, dimse_settings, run
from tests.serving import dcmtk, serve
from tests.teaching.kos_builder import TEACHING_FILE_EXPORT_IHE, build_kos

NOTE = "Teaching: tension pneumothorax\nmediastinal shift to the right"
OBSERVER = "CURIE^MARIE"


@pytest.fixture
def dimse_with_intake(
    tmp_path: Path, deployment: Deployment, client: TestClient
) -> Iterator[DimseServer]:
    """A DIMSE server over the deployment the ``client`` app serves, as ``serve`` runs it:
    its clinical archive takes teaching-file KOS in, whichever edge stored them."""
    server = DimseServer(dimse_settings(tmp_path), deployment.clinical, audit=deployment.audit)
    server.start()
    yield server
    server.stop()


def study_and_kos(tmp_path: Path) -> tuple[list[Dataset], Dataset, list[str]]:
    """Three CT images of one study and a teaching KOS referencing the first and the last,
    written as files (images first, KOS last, as a workstation sends them)."""
    study_uid, series_uid = generate_uid(), generate_uid()
    images = [
        make_instance(study_uid=study_uid, series_uid=series_uid, instance_number=number)
        for number in (1, 2, 3)
    ]
    kos = build_kos(
        [images[0], images[2]],
        title=TEACHING_FILE_EXPORT_IHE,
        description=NOTE,
        observer=OBSERVER,
    )
    files = []
    for index, ds in enumerate([*images, kos]):
        path = tmp_path / f"{index}-{ds.Modality}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(str(path))
    return images, kos, files


def teaching_instance_numbers(get: Any, case: dict[str, Any]) -> list[int]:
    response = get(
        f"/teaching/dicomweb/studies/{case['teaching_study_instance_uid']}/instances",
        params={"includefield": "00200013"},
    )
    assert response.status_code == 200, response.text
    return sorted(int(item["00200013"]["Value"][0]) for item in response.json())


def assert_draft_case_of(
    page: dict[str, Any], case: dict[str, Any], images: list[Dataset], kos: Dataset
) -> None:
    assert page["total"] == 1
    assert page["cases"][0]["id"] == case["id"]
    assert case["origin"] == "kos"
    assert case["status"] == "draft"
    assert case["note"] == NOTE
    assert case["title"] == "Teaching: tension pneumothorax"
    assert case["author"] == OBSERVER
    clinical = {
        str(uid)
        for ds in [*images, kos]
        for uid in (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    }
    sop_uids = [i["sop_instance_uid"] for i in case["instances"]]
    assert len(sop_uids) == 2
    assert all(uid.startswith("2.25.") and uid not in clinical for uid in sop_uids)
    assert {k["sop_instance_uid"] for k in case["key_images"]} == set(sop_uids)


@pytest.mark.e2e
def test_a_kos_for_teaching_file_export_sent_with_storescu_creates_a_draft_case(
    dimse_with_intake: DimseServer, client: TestClient, tmp_path: Path
) -> None:
    images, kos, files = study_and_kos(tmp_path)
    result = run("storescu", *address(dimse_with_intake), *files)
    assert result.returncode == 0, result.stdout + result.stderr

    # every file landed in the clinical archive, the KOS included
    response = client.get(f"/dicomweb/studies/{images[0].StudyInstanceUID}/instances")
    assert len(response.json()) == 4
    page = client.get("/api/cases").json()
    assert page["total"] == 1, page
    case = client.get(f"/api/cases/{page['cases'][0]['id']}").json()
    assert_draft_case_of(page, case, images, kos)
    # the case holds the copies of the first and the third image, the ones the KOS names
    assert teaching_instance_numbers(client.get, case) == [1, 3]


@pytest.mark.e2e
def test_images_sent_with_storescu_without_a_kos_create_no_case(
    dimse_with_intake: DimseServer, client: TestClient, tmp_path: Path
) -> None:
    images, _, files = study_and_kos(tmp_path)
    result = run("storescu", *address(dimse_with_intake), *files[:-1])
    assert result.returncode == 0, result.stdout + result.stderr
    response = client.get(f"/dicomweb/studies/{images[0].StudyInstanceUID}/instances")
    assert len(response.json()) == 3
    assert client.get("/api/cases").json()["total"] == 0


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """``radcase-pacs serve`` with its DIMSE listener, in its own process; yields the HTTP
    base URL and the DIMSE port once /healthz answers."""
    dcmtk("storescu")
    dimse_port = free_port()
    env = {
        **os.environ,
        "RADCASE_DIMSE_PORT": str(dimse_port),
        "RADCASE_AE_TITLE": "RADCASE",
        "RADCASE_DATA_DIR": str(tmp_path / "served"),
    }
    with serve(env) as base:
        yield base, dimse_port


@pytest.mark.e2e
def test_the_served_dimse_listener_turns_a_teaching_kos_from_storescu_into_a_draft_case(
    served: tuple[str, int], tmp_path: Path
) -> None:
    base, dimse_port = served
    images, kos, files = study_and_kos(tmp_path)
    result = run("storescu", "-aec", "RADCASE", "127.0.0.1", str(dimse_port), *files)
    assert result.returncode == 0, result.stdout + result.stderr
    with httpx.Client(base_url=base, timeout=30) as http:
        response = http.get(f"/dicomweb/studies/{images[0].StudyInstanceUID}/instances")
        assert len(response.json()) == 4
        page = http.get("/api/cases").json()
        assert page["total"] == 1, page
        case = http.get(f"/api/cases/{page['cases'][0]['id']}").json()
        assert_draft_case_of(page, case, images, kos)
        assert teaching_instance_numbers(http.get, case) == [1, 3]
