"""Teaching cases through the JSON API: a clinical study becomes a de-identified copy in the
teaching collection, served by /teaching/dicomweb, authored, gated for burned-in text and
published; on the embedded default and on PostgreSQL + Redis + S3."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from starlette.testclient import TestClient

from radcase_pacs.settings import Settings
from tests.apps import served
from tests.factories import make_instance, stow, to_bytes

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
DICOM_JSON = {"Accept": "application/dicom+json"}


def store(client: TestClient, *datasets: Dataset) -> None:
    response = stow(client, [to_bytes(ds) for ds in datasets])
    assert response.status_code == 200, response.text  # type: ignore[attr-defined]


def study(
    patient_id: str = "PID1", series: int = 2, per_series: int = 2, **kw: Any
) -> list[Dataset]:
    study_uid = generate_uid()
    out = []
    for s in range(series):
        series_uid = generate_uid()
        for i in range(per_series):
            out.append(
                make_instance(
                    study_uid=study_uid,
                    series_uid=series_uid,
                    patient_id=patient_id,
                    series_number=s + 1,
                    instance_number=i + 1,
                    **kw,
                )
            )
    return out


def secondary_capture(study_uid: str, rows: int = 16, columns: int = 16) -> Dataset:
    """A screen capture with the patient's name burned into its top rows."""
    ds = make_instance(study_uid=study_uid, rows=rows, columns=columns, modality="OT")
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
    ds.BurnedInAnnotation = "YES"
    ds.BitsStored, ds.HighBit = 16, 15
    pixels = np.full((rows, columns), 1000, dtype=np.uint16)
    pixels[:4, :] = 4095  # the "text"
    ds.PixelData = pixels.tobytes()
    return ds


def create(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post("/api/cases", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def teaching_json(client: TestClient, path: str) -> Any:
    response = client.get(f"/teaching/dicomweb{path}", headers=DICOM_JSON)
    assert response.status_code == 200, response.text
    return response.json()


def test_creating_a_case_answers_201_with_its_id_and_teaching_study(server: TestClient) -> None:
    instances = study()
    store(server, *instances)
    case = create(server, study_instance_uid=instances[0].StudyInstanceUID, title="Chest CT")
    assert case["id"] and case["status"] == "draft" and case["title"] == "Chest CT"
    teaching_uid = case["teaching_study_instance_uid"]
    assert teaching_uid.startswith("2.25.") and teaching_uid != instances[0].StudyInstanceUID
    assert len(case["instances"]) == 4
    assert server.get(f"/api/cases/{case['id']}").json() == case


def test_the_teaching_root_serves_the_de_identified_copy(server: TestClient) -> None:
    instances = study()
    store(server, *instances)
    case = create(server, study_instance_uid=instances[0].StudyInstanceUID, title="t")
    teaching_uid = case["teaching_study_instance_uid"]
    (found,) = teaching_json(server, f"/studies?StudyInstanceUID={teaching_uid}")
    assert "Value" not in found.get("00100010", {})  # Patient's Name emptied
    metadata = teaching_json(server, f"/studies/{teaching_uid}/metadata")
    assert len(metadata) == 4
    for item in metadata:
        assert item["00120062"]["Value"] == ["YES"]  # Patient Identity Removed
        assert item["0020000D"]["Value"] == [teaching_uid]
    first = case["instances"][0]
    frame = server.get(
        f"/teaching/dicomweb/studies/{teaching_uid}/series/{first['series_instance_uid']}"
        f"/instances/{first['sop_instance_uid']}/frames/1",
        headers={"Accept": "multipart/related; type=application/octet-stream"},
    )
    assert frame.status_code == 200
    rendered = server.get(
        f"/teaching/dicomweb/studies/{teaching_uid}/series/{first['series_instance_uid']}"
        f"/instances/{first['sop_instance_uid']}/rendered",
        headers={"Accept": "image/png"},
    )
    assert rendered.status_code == 200 and rendered.content.startswith(b"\x89PNG")
    thumbnail = server.get(
        f"/teaching/dicomweb/studies/{teaching_uid}/thumbnail", headers={"Accept": "image/jpeg"}
    )
    assert thumbnail.status_code == 200


def test_clinical_uids_are_unknown_to_the_teaching_root(server: TestClient) -> None:
    instances = study(series=1, per_series=1)
    store(server, *instances)
    create(server, study_instance_uid=instances[0].StudyInstanceUID, title="t")
    ds = instances[0]
    base = (
        f"/teaching/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )
    for path in (base, f"{base}/metadata", f"{base}/frames/1", f"{base}/rendered"):
        assert server.get(path).status_code == 404, path
    assert server.get(f"/dicomweb/studies/{ds.StudyInstanceUID}/metadata").status_code == 200


def test_the_teaching_root_is_read_only(server: TestClient) -> None:
    instances = study(series=1, per_series=1)
    store(server, *instances)
    case = create(server, study_instance_uid=instances[0].StudyInstanceUID, title="t")
    other = make_instance()
    assert stow(server, [to_bytes(other)], "/teaching/dicomweb/studies").status_code == 405  # type: ignore[attr-defined]
    uid = case["teaching_study_instance_uid"]
    assert server.delete(f"/teaching/dicomweb/studies/{uid}").status_code == 405
    assert len(teaching_json(server, f"/studies/{uid}/metadata")) == 1
    assert server.get("/teaching/dicomweb/studies", headers=DICOM_JSON).json()[0]


def test_the_same_study_exported_twice_gets_the_same_uids(server: TestClient) -> None:
    instances = study()
    store(server, *instances)
    uid = instances[0].StudyInstanceUID
    first = create(server, study_instance_uid=uid, title="one")
    second = create(server, study_instance_uid=uid, title="two")
    assert first["id"] != second["id"]
    assert first["teaching_study_instance_uid"] == second["teaching_study_instance_uid"]
    assert first["instances"] == second["instances"]


def test_another_deployment_secret_gives_other_uids(tmp_path: Any) -> None:
    instances = study(series=1)
    answers = []
    for index, secret in enumerate(("a" * 32, "b" * 32)):
        settings = Settings(data_dir=tmp_path / str(index), deid_secret=secret)
        with served(settings) as client:
            store(client, *instances)
            answers.append(
                create(client, study_instance_uid=instances[0].StudyInstanceUID, title="t")
            )
    assert answers[0]["teaching_study_instance_uid"] != answers[1]["teaching_study_instance_uid"]
    sops = [{i["sop_instance_uid"] for i in a["instances"]} for a in answers]
    assert not sops[0] & sops[1]


def test_the_generated_secret_survives_a_restart(tmp_path: Any) -> None:
    instances = study(series=1, per_series=1)
    settings = Settings(data_dir=tmp_path / "data")
    uids = []
    for _ in range(2):
        with served(settings) as client:
            store(client, *instances)
            case = create(client, study_instance_uid=instances[0].StudyInstanceUID, title="t")
            uids.append(case["teaching_study_instance_uid"])
    assert uids[0] == uids[1]


def test_a_follow_up_series_joins_the_same_teaching_study(server: TestClient) -> None:
    instances = study(series=1)
    store(server, *instances)
    uid = instances[0].StudyInstanceUID
    first = create(server, study_instance_uid=uid, title="initial")
    follow_up = make_instance(study_uid=uid, series_number=7)
    store(server, follow_up)
    later = create(
        server,
        study_instance_uid=uid,
        series_instance_uids=[follow_up.SeriesInstanceUID],
        title="follow-up",
    )
    assert later["teaching_study_instance_uid"] == first["teaching_study_instance_uid"]
    assert len(later["instances"]) == 1
    teaching_uid = first["teaching_study_instance_uid"]
    series = teaching_json(server, f"/studies/{teaching_uid}/series")
    assert len(series) == 2


def test_chosen_series_only_are_copied(server: TestClient) -> None:
    instances = study(series=3, per_series=1)
    store(server, *instances)
    chosen = [instances[0].SeriesInstanceUID, instances[2].SeriesInstanceUID]
    case = create(
        server,
        study_instance_uid=instances[0].StudyInstanceUID,
        series_instance_uids=chosen,
        title="t",
    )
    assert len({i["series_instance_uid"] for i in case["instances"]}) == 2
    series = teaching_json(server, f"/studies/{case['teaching_study_instance_uid']}/series")
    assert len(series) == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"study_instance_uid": "1.2.3.4", "title": "t"}, ["body", "study_instance_uid"]),
        ({"study_instance_uid": "1.2.03", "title": "t"}, ["body", "study_instance_uid"]),
        ({"study_instance_uid": "1.2.3"}, ["body", "title"]),
        ({"study_instance_uid": "1.2.3", "title": "  "}, ["body", "title"]),
        ({"study_instance_uid": "1.2.3", "title": "t", "colour": 1}, ["body", "colour"]),
        (
            {"study_instance_uid": "1.2.3", "title": "t", "tags": {"categories": ["TCE399"]}},
            ["body", "tags", "categories", 0],
        ),
        (
            {"study_instance_uid": "1.2.3", "title": "t", "tags": {"level": "TCE204"}},
            ["body", "tags", "level"],
        ),
        (
            {"study_instance_uid": "1.2.3", "title": "t", "status": "published"},
            ["body", "status"],
        ),
    ],
)
def test_a_bad_case_body_is_refused_naming_the_field(
    client: TestClient, body: dict[str, Any], field: list[Any]
) -> None:
    response = client.post("/api/cases", json=body)
    assert response.status_code == 422, response.text
    assert [item["loc"] for item in response.json()["detail"]] == [field]


def test_an_unknown_series_is_refused_naming_its_position(client: TestClient) -> None:
    instances = study(series=1)
    store(client, *instances)
    response = client.post(
        "/api/cases",
        json={
            "study_instance_uid": instances[0].StudyInstanceUID,
            "series_instance_uids": [instances[0].SeriesInstanceUID, "1.2.3"],
            "title": "t",
        },
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "series_instance_uids", 1]


def test_key_images_given_at_creation_point_at_the_teaching_copy(client: TestClient) -> None:
    instances = study(series=1, frames=3)
    store(client, *instances)
    case = create(
        client,
        study_instance_uid=instances[0].StudyInstanceUID,
        title="t",
        key_images=[{"sop_instance_uid": instances[1].SOPInstanceUID, "frame": 2, "note": "here"}],
    )
    (key,) = case["key_images"]
    members = {i["sop_instance_uid"] for i in case["instances"]}
    assert key["sop_instance_uid"] in members and key["frame"] == 2 and key["note"] == "here"
    bad = client.post(
        "/api/cases",
        json={
            "study_instance_uid": instances[0].StudyInstanceUID,
            "title": "t",
            "key_images": [{"sop_instance_uid": "1.2.3"}],
        },
    )
    assert bad.json()["detail"][0]["loc"] == ["body", "key_images", 0, "sop_instance_uid"]


def test_a_case_is_updated_searched_and_filtered_by_tags(server: TestClient) -> None:
    instances = study(series=1, per_series=1)
    store(server, *instances)
    uid = instances[0].StudyInstanceUID
    lung = create(server, study_instance_uid=uid, title="Nodule")
    brain = create(server, study_instance_uid=uid, title="Glioma")
    changed = server.patch(
        f"/api/cases/{lung['id']}",
        json={
            "findings": "Spiculated nodule in the right upper lobe",
            "diagnosis": "Adenocarcinoma",
            "differential": ["Granuloma", "Metastasis"],
            "tags": {
                "categories": ["TCE302"],
                "level": "TCE202",
                "modalities": ["CT"],
                "anatomy": ["Lung"],
                "free": ["oncology"],
            },
            "status": "awaiting_pathology",
        },
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["status"] == "awaiting_pathology"
    assert changed.json()["title"] == "Nodule"
    server.patch(f"/api/cases/{brain['id']}", json={"tags": {"categories": ["TCE306"]}})

    def ids(query: str) -> set[str]:
        page = server.get(f"/api/cases?{query}")
        assert page.status_code == 200, page.text
        return {c["id"] for c in page.json()["cases"]}

    assert ids("q=upper lobe") == {lung["id"]}
    assert ids("q=METASTASIS") == {lung["id"]}
    assert ids("q=glioma") == {brain["id"]}
    assert ids("category=TCE302") == {lung["id"]}
    assert ids("category=TCE306") == {brain["id"]}
    assert ids("level=TCE202&modality=CT&anatomy=lung&tag=Oncology") == {lung["id"]}
    assert ids("status=awaiting_pathology") == {lung["id"]}
    assert ids("q=nothing-like-this") == set()
    assert ids("q=50%25") == set()
    page = server.get("/api/cases?limit=1").json()
    assert page["total"] == 2 and len(page["cases"]) == 1


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("category=TCE312", "category"),
        ("level=primary", "level"),
        ("limit=0", "limit"),
        ("limit=100000", "limit"),
        ("offset=-1", "offset"),
        ("status=lost", "status"),
        ("modality=ct", "modality"),
    ],
)
def test_a_bad_search_parameter_is_refused_naming_it(
    client: TestClient, query: str, name: str
) -> None:
    response = client.get(f"/api/cases?{query}")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", name]


def test_unknown_cases_are_404(client: TestClient) -> None:
    assert client.get("/api/cases/nope").status_code == 404
    assert client.patch("/api/cases/nope", json={"title": "x"}).status_code == 404
    assert client.post("/api/cases/nope/publish").status_code == 404
    assert client.delete("/api/cases/nope").status_code == 404


def test_null_fields_and_foreign_key_images_are_refused_on_update(client: TestClient) -> None:
    instances = study(series=1, per_series=1)
    store(client, *instances)
    case = create(client, study_instance_uid=instances[0].StudyInstanceUID, title="t")
    nulled = client.patch(f"/api/cases/{case['id']}", json={"title": None})
    assert nulled.status_code == 422 and nulled.json()["detail"][0]["loc"] == ["body", "title"]
    foreign = client.patch(
        f"/api/cases/{case['id']}",
        json={"key_images": [{"sop_instance_uid": instances[0].SOPInstanceUID}]},
    )
    assert foreign.status_code == 422
    assert foreign.json()["detail"][0]["loc"] == ["body", "key_images", 0, "sop_instance_uid"]


def test_a_flagged_instance_holds_publication_until_blanked(server: TestClient) -> None:
    instances = study(series=1, per_series=1)
    capture = secondary_capture(instances[0].StudyInstanceUID)
    store(server, *instances, capture)
    case = create(server, study_instance_uid=capture.StudyInstanceUID, title="t")
    flagged = [i for i in case["instances"] if i["burned_in"]]
    assert len(flagged) == 1 and flagged[0]["review"] == "pending"
    assert any("Burned In Annotation" in r for r in flagged[0]["reasons"])
    assert case["pending_reviews"] == 1
    teaching_uid = case["teaching_study_instance_uid"]
    # Held back: not in the teaching collection while it awaits review.
    assert len(teaching_json(server, f"/studies/{teaching_uid}/metadata")) == 1
    refused = server.post(f"/api/cases/{case['id']}/publish")
    assert refused.status_code == 409
    assert refused.json()["instances"] == [flagged[0]["sop_instance_uid"]]

    sop = flagged[0]["sop_instance_uid"]
    outside = server.post(
        f"/api/cases/{case['id']}/instances/{sop}/review",
        json={"action": "blank", "regions": [{"x": 0, "y": 0, "width": 99, "height": 4}]},
    )
    assert outside.status_code == 422
    blanked = server.post(
        f"/api/cases/{case['id']}/instances/{sop}/review",
        json={"action": "blank", "regions": [{"x": 0, "y": 0, "width": 16, "height": 4}]},
    )
    assert blanked.status_code == 200, blanked.text
    assert blanked.json()["pending_reviews"] == 0
    again = server.post(
        f"/api/cases/{case['id']}/instances/{sop}/review", json={"action": "confirm_clean"}
    )
    assert again.status_code == 409
    series_uid = flagged[0]["series_instance_uid"]
    response = server.get(
        f"/teaching/dicomweb/studies/{teaching_uid}/series/{series_uid}/instances/{sop}",
        headers={"Accept": "multipart/related; type=application/dicom; transfer-syntax=*"},
    )
    assert response.status_code == 200
    body = response.content
    start = body.index(b"\r\n\r\n") + 4
    copy = pydicom.dcmread(io.BytesIO(body[start:]))
    pixels = copy.pixel_array
    assert (pixels[:4] == 0).all() and (pixels[4:] == 1000).all()
    assert copy.BurnedInAnnotation == "NO"
    published = server.post(f"/api/cases/{case['id']}/publish")
    assert published.status_code == 200 and published.json()["status"] == "published"
    assert published.json()["published_at"]


def test_confirming_a_flagged_instance_clean_puts_it_in_the_collection(
    client: TestClient,
) -> None:
    capture = secondary_capture(generate_uid())
    store(client, capture)
    case = create(client, study_instance_uid=capture.StudyInstanceUID, title="t")
    (inst,) = case["instances"]
    with_regions = client.post(
        f"/api/cases/{case['id']}/instances/{inst['sop_instance_uid']}/review",
        json={"action": "confirm_clean", "regions": [{"x": 0, "y": 0, "width": 1, "height": 1}]},
    )
    assert with_regions.status_code == 422
    confirmed = client.post(
        f"/api/cases/{case['id']}/instances/{inst['sop_instance_uid']}/review",
        json={"action": "confirm_clean"},
    )
    assert confirmed.json()["instances"][0]["review"] == "confirmed_clean"
    metadata = teaching_json(client, f"/studies/{case['teaching_study_instance_uid']}/metadata")
    assert len(metadata) == 1
    assert client.post(f"/api/cases/{case['id']}/publish").status_code == 200


def test_a_published_case_cannot_go_back_to_draft(client: TestClient) -> None:
    instances = study(series=1, per_series=1)
    store(client, *instances)
    case = create(client, study_instance_uid=instances[0].StudyInstanceUID, title="t")
    client.post(f"/api/cases/{case['id']}/publish")
    back = client.patch(f"/api/cases/{case['id']}", json={"status": "draft"})
    assert back.status_code == 409
    edited = client.patch(f"/api/cases/{case['id']}", json={"discussion": "more"})
    assert edited.json()["status"] == "published" and edited.json()["discussion"] == "more"


def test_unpublishing_takes_a_case_back_to_draft_and_away_from_learners(
    client: TestClient,
) -> None:
    instances = study(series=1, per_series=1)
    store(client, *instances)
    case = create(client, study_instance_uid=instances[0].StudyInstanceUID, title="t")
    teaching_uid = case["teaching_study_instance_uid"]
    store_ = client.app.state.deployment.cases.store  # type: ignore[attr-defined]
    not_yet = client.post(f"/api/cases/{case['id']}/unpublish")
    assert not_yet.status_code == 200 and not_yet.json()["status"] == "draft"
    client.post(f"/api/cases/{case['id']}/publish")
    assert teaching_uid in store_.published_study_uids("default")
    back = client.post(f"/api/cases/{case['id']}/unpublish")
    assert back.status_code == 200, back.text
    assert back.json()["status"] == "draft" and back.json()["published_at"] is None
    assert teaching_uid not in store_.published_study_uids("default")
    assert (
        client.patch(f"/api/cases/{case['id']}", json={"status": "awaiting_pathology"}).json()[
            "status"
        ]
        == "awaiting_pathology"
    )
    assert client.post("/api/cases/nope/unpublish").status_code == 404


def test_cases_are_filtered_by_origin(client: TestClient) -> None:
    instances = study(series=1, per_series=1)
    store(client, *instances)
    case = create(client, study_instance_uid=instances[0].StudyInstanceUID, title="made")
    store_ = client.app.state.deployment.cases.store  # type: ignore[attr-defined]
    with store_.db.transaction() as cur:
        cur.execute("UPDATE cases SET origin = 'kos' WHERE case_id = ?", (case["id"],))
    other = create(client, study_instance_uid=instances[0].StudyInstanceUID, title="other")
    kos = client.get("/api/cases", params={"origin": "kos"}).json()["cases"]
    assert [(c["id"], c["origin"]) for c in kos] == [(case["id"], "kos")]
    api = client.get("/api/cases", params={"origin": "api"}).json()["cases"]
    assert [c["id"] for c in api] == [other["id"]]
    assert client.get("/api/cases", params={"origin": "pacs"}).status_code == 422


def test_deleting_a_case_removes_copies_no_other_case_uses(server: TestClient) -> None:
    instances = study(series=2, per_series=1)
    store(server, *instances)
    uid = instances[0].StudyInstanceUID
    whole = create(server, study_instance_uid=uid, title="whole")
    part = create(
        server,
        study_instance_uid=uid,
        series_instance_uids=[instances[0].SeriesInstanceUID],
        title="part",
    )
    teaching_uid = whole["teaching_study_instance_uid"]
    assert server.delete(f"/api/cases/{whole['id']}").status_code == 204
    assert server.get(f"/api/cases/{whole['id']}").status_code == 404
    assert len(teaching_json(server, f"/studies/{teaching_uid}/metadata")) == 1
    assert server.delete(f"/api/cases/{part['id']}").status_code == 204
    gone = server.get(f"/teaching/dicomweb/studies/{teaching_uid}/metadata", headers=DICOM_JSON)
    assert gone.status_code == 404
    assert server.get(f"/dicomweb/studies/{uid}/metadata").status_code == 200


def test_the_openapi_document_describes_the_case_api(client: TestClient) -> None:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    assert {"post", "get"} <= set(paths["/cases"])
    assert {"get", "patch", "delete"} <= set(paths["/cases/{case_id}"])
    assert "post" in paths["/cases/{case_id}/publish"]
    create_schema = document["components"]["schemas"]["CaseCreate"]
    assert {"study_instance_uid", "title"} <= set(create_schema["required"])
    assert "201" in paths["/cases"]["post"]["responses"]
    assert document.get("servers") == [{"url": "/api"}]


def test_the_codes_endpoint_lists_tce_categories_and_levels(client: TestClient) -> None:
    codes = client.get("/api/codes").json()
    assert len(codes["categories"]) == 11 and codes["categories"]["TCE306"] == "Neuro"
    assert list(codes["levels"]) == ["TCE201", "TCE202", "TCE203"]
