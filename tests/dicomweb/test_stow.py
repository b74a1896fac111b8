"""STOW-RS (PS3.18 §10.5): per-instance outcomes, status codes, idempotency.

Through the whole server (``client``), so that every outcome, refusals and partial stores
included, is also held to the audit check of tests/conftest.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from dicomweb import stow as stow_module
from radcase_pacs.settings import Settings
from storage.stores import Stores
from tests.apps import served
from tests.factories import make_instance, multipart_body, stow, to_bytes

pytestmark = pytest.mark.backends

DICOM_JSON = "application/dicom+json"


def _failures(response: object) -> list[int]:
    body = response.json()  # type: ignore[attr-defined]
    return [item["00081197"]["Value"][0] for item in body.get("00081198", {}).get("Value", [])]


def test_all_instances_stored_is_200_with_a_retrieve_url_each(client: TestClient) -> None:
    study = "1.2.826.0.1.3680043.8.498.20"
    datasets = [make_instance(study_uid=study, instance_number=n) for n in (1, 2)]
    response = stow(client, [to_bytes(ds) for ds in datasets])
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(DICOM_JSON)
    body = response.json()
    assert body["00081190"]["Value"] == [f"http://testserver/dicomweb/studies/{study}"]
    urls = [item["00081190"]["Value"][0] for item in body["00081199"]["Value"]]
    for ds, url in zip(datasets, urls, strict=True):
        assert url.endswith(f"/instances/{ds.SOPInstanceUID}")
        assert client.get(url.removeprefix("http://testserver")).status_code == 200


def test_a_malformed_part_is_reported_while_the_good_ones_are_stored(
    client: TestClient,
) -> None:
    good = make_instance()
    response = stow(client, [b"this is not DICOM at all", to_bytes(good), b"\x00" * 10])
    assert response.status_code == 202
    assert _failures(response) == [0xC000, 0xC000]
    stored = response.json()["00081199"]["Value"]
    assert [s["00081155"]["Value"][0] for s in stored] == [str(good.SOPInstanceUID)]
    assert "Warning" in response.headers


def test_nothing_stored_is_409(client: TestClient) -> None:
    response = stow(client, [b"garbage"])
    assert response.status_code == 409
    assert _failures(response) == [0xC000]


def test_instance_of_another_study_than_the_url_is_refused_with_0xA900(
    client: TestClient,
) -> None:
    ds = make_instance(study_uid="1.2.3.4")
    good = make_instance(study_uid="1.2.3.5")
    response = stow(client, [to_bytes(ds), to_bytes(good)], url="/dicomweb/studies/1.2.3.5")
    assert response.status_code == 202
    assert _failures(response) == [0xA900]
    assert response.json()["00081198"]["Value"][0]["00081155"]["Value"] == [str(ds.SOPInstanceUID)]


def test_storing_the_same_instance_twice_is_idempotent(client: TestClient, stores: Stores) -> None:
    data = to_bytes(make_instance())
    assert stow(client, [data]).status_code == 200
    again = stow(client, [data, data])
    assert again.status_code == 200
    assert len(again.json()["00081199"]["Value"]) == 2
    assert len(list(stores.blobs.keys())) == 1
    assert client.get("/dicomweb/instances").json().__len__() == 1


def test_same_sop_instance_uid_with_other_content_is_refused_and_keeps_the_first(
    client: TestClient,
    stores: Stores,
) -> None:
    first = make_instance(sop_uid="1.2.3.99", patient_name="FIRST^COPY")
    second = make_instance(
        sop_uid="1.2.3.99",
        study_uid=first.StudyInstanceUID,
        series_uid=first.SeriesInstanceUID,
        patient_name="SECOND^COPY",
    )
    stow(client, [to_bytes(first)])
    response = stow(client, [to_bytes(second)])
    assert response.status_code == 409
    assert _failures(response) == [0x0111]
    assert len(list(stores.blobs.keys())) == 1
    (doc,) = client.get("/dicomweb/instances").json()
    assert doc["00100010"]["Value"] == [{"Alphabetic": "FIRST^COPY"}]


def test_series_uid_reused_in_another_study_is_refused(client: TestClient) -> None:
    a = make_instance(study_uid="1.2.3.10", series_uid="1.2.3.11")
    b = make_instance(study_uid="1.2.3.12", series_uid="1.2.3.11")
    stow(client, [to_bytes(a)])
    response = stow(client, [to_bytes(b)])
    assert response.status_code == 409
    assert _failures(response) == [0xA900]


def test_wrong_content_type_is_415(client: TestClient) -> None:
    data = to_bytes(make_instance())
    for content_type in (
        "application/dicom",
        "multipart/form-data; boundary=x",
        'multipart/related; type="application/dicom+json"; boundary=x',
        "multipart/related; type=application/dicom",
    ):
        response = client.post(
            "/dicomweb/studies", content=data, headers={"Content-Type": content_type}
        )
        assert response.status_code == 415, content_type


def test_a_part_of_another_media_type_fails_alone(client: TestClient) -> None:
    body, content_type = multipart_body([to_bytes(make_instance())])
    body = body.replace(b"Content-Type: application/dicom", b"Content-Type: image/jpeg", 1)
    response = client.post(
        "/dicomweb/studies", content=body, headers={"Content-Type": content_type}
    )
    assert response.status_code == 409
    assert _failures(response) == [0xC000]


def test_boundary_may_be_quoted_or_not(client: TestClient) -> None:
    ds = make_instance()
    body, _ = multipart_body([to_bytes(ds)], boundary="a:b=c")
    response = client.post(
        "/dicomweb/studies",
        content=body,
        headers={"Content-Type": 'multipart/related; boundary="a:b=c"; type=application/dicom'},
    )
    assert response.status_code == 200


def test_a_body_cut_inside_a_part_stores_the_complete_parts_only(
    client: TestClient, stores: Stores
) -> None:
    first, second = make_instance(), make_instance()
    body, content_type = multipart_body([to_bytes(first), to_bytes(second)])
    cut = body[: body.index(to_bytes(second)) + 200]
    response = client.post("/dicomweb/studies", content=cut, headers={"Content-Type": content_type})
    assert response.status_code == 202
    assert _failures(response) == [0xC000]
    assert len(client.get("/dicomweb/instances").json()) == 1
    assert len(list(stores.blobs.keys())) == 1


def test_a_body_over_the_limit_is_413(settings: Settings, stores: Stores) -> None:
    body, content_type = multipart_body([to_bytes(make_instance())])
    small = settings.model_copy(update={"max_request_bytes": 100})
    with served(small, stores=stores) as client:
        response = client.post(
            "/dicomweb/studies", content=body, headers={"Content-Type": content_type}
        )
        streamed = client.post(
            "/dicomweb/studies", content=iter([body]), headers={"Content-Type": content_type}
        )
    assert response.status_code == 413
    assert streamed.status_code == 413
    assert "100 bytes" in streamed.text


def test_an_empty_body_is_400(client: TestClient) -> None:
    response = client.post(
        "/dicomweb/studies", content=b"", headers={"Content-Type": "multipart/related; boundary=x"}
    )
    assert response.status_code == 400


def test_a_data_set_without_file_meta_is_stored_with_a_warning(client: TestClient) -> None:
    ds = make_instance()
    bare = to_bytes(ds)
    dataset_only = bare[bare.index(b"\x08\x00") :]  # skip preamble and group 0002
    response = stow(client, [dataset_only])
    assert response.status_code == 202
    (stored,) = response.json()["00081199"]["Value"]
    assert stored["00081196"]["Value"] == [0xB000]


def test_outcomes_keep_the_order_of_the_parts_across_batches(
    client: TestClient, stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parts are ingested a few at a time; the response still lists every outcome in the order
    the parts came, a refused part between stored ones included."""
    monkeypatch.setattr(stow_module, "BATCH_PARTS", 2)
    kept = make_instance(patient_name="FIRST^COPY")
    assert stow(client, [to_bytes(kept)]).status_code == 200
    study = "1.2.826.0.1.3680043.8.498.30"
    good = [make_instance(study_uid=study, instance_number=n) for n in range(4)]
    conflicting = make_instance(
        sop_uid=kept.SOPInstanceUID,
        study_uid=kept.StudyInstanceUID,
        series_uid=kept.SeriesInstanceUID,
        patient_name="SECOND^COPY",
    )
    dicom = "application/dicom"
    parts = [
        (dicom, to_bytes(conflicting)),
        ("image/jpeg", b"\xff\xd8\xff"),  # refused at once, reported after the one before
        *((dicom, to_bytes(ds)) for ds in good),
        (dicom, b"not DICOM"),
    ]
    boundary = "order-test-boundary"
    chunks = []
    for content_type, data in parts:
        chunks += [f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode(), data, b"\r\n"]
    chunks.append(f"--{boundary}--\r\n".encode())
    response = client.post(
        "/dicomweb/studies",
        content=b"".join(chunks),
        headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'
        },
    )
    assert response.status_code == 202
    assert _failures(response) == [0x0111, 0xC000, 0xC000]
    failed = response.json()["00081198"]["Value"]
    assert failed[0]["00081155"]["Value"] == [str(kept.SOPInstanceUID)]
    stored = [s["00081155"]["Value"][0] for s in response.json()["00081199"]["Value"]]
    assert stored == [str(ds.SOPInstanceUID) for ds in good]
    assert len(client.get(f"/dicomweb/studies/{study}/instances").json()) == 4
    assert len(list(stores.blobs.keys())) == 5


def test_a_store_is_acknowledged_after_every_file_and_folder_was_synced_once_per_request(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parts of one request share their syncs: each file once, its folder once. The
    embedded default (a folder of blobs) is durable unless told otherwise."""
    root = settings.data_dir.resolve() / "blobs"
    study, series = "1.2.826.0.1.3680043.8.498.40", "1.2.826.0.1.3680043.8.498.41"
    datasets = [
        make_instance(study_uid=study, series_uid=series, instance_number=n) for n in (1, 2, 3)
    ]
    synced: list[Path] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    with served(settings) as client:
        monkeypatch.setattr(os, "fsync", fsync)
        response = stow(client, [to_bytes(ds) for ds in datasets])
        monkeypatch.undo()
    assert response.status_code == 200  # type: ignore[attr-defined]
    folder = root / "default" / study / series
    files = [path for path in synced if path.parent == folder and path.name.endswith(".tmp")]
    assert len(files) == len(set(files)) == 3
    assert synced.count(folder) == 1
    stored = {p.name.rsplit(".", 2)[0] for p in folder.iterdir()}  # SOP UID.digest.dcm
    assert stored == {ds.SOPInstanceUID for ds in datasets}
