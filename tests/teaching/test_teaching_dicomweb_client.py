"""The teaching DICOMweb root (``/teaching/dicomweb``) through a real HTTP server and a
third-party client (dicomweb-client): it serves the de-identified copy of a case's study and
nothing of the clinical archive, not even when asked by clinical UIDs, and it takes no writes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from tests.factories import make_instance, multipart_body, to_bytes

ROWS, COLUMNS = 8, 8
DICOM = 'multipart/related; type="application/dicom"; transfer-syntax=*'


@dataclass
class Published:
    """A clinical study on the live server and the case made of it."""

    clinical: str
    teaching: str
    http: httpx.Client
    images: list[Dataset]
    case: dict[str, Any]

    @property
    def study_uid(self) -> str:
        return str(self.images[0].StudyInstanceUID)


def stow(http: httpx.Client, url: str, datasets: list[Dataset]) -> httpx.Response:
    body, content_type = multipart_body([to_bytes(ds) for ds in datasets])
    return http.post(
        url,
        content=body,
        headers={"Content-Type": content_type, "Accept": "application/dicom+json"},
    )


@pytest.fixture
def published(live_server: str) -> Iterator[Published]:
    teaching = live_server.removesuffix("/dicomweb") + "/teaching/dicomweb"
    api = live_server.removesuffix("/dicomweb") + "/api"
    study_uid, series_uid = generate_uid(), generate_uid()
    images = [
        make_instance(
            study_uid=study_uid,
            series_uid=series_uid,
            instance_number=number,
            patient_name="CLINICAL^PATIENT",
            rows=ROWS,
            columns=COLUMNS,
        )
        for number in (1, 2)
    ]
    with httpx.Client(timeout=30) as http:
        response = stow(http, f"{live_server}/studies", images)
        assert response.status_code == 200, response.text
        response = http.post(
            f"{api}/cases", json={"study_instance_uid": study_uid, "title": "Teaching case"}
        )
        assert response.status_code == 201, response.text
        yield Published(live_server, teaching, http, images, response.json())


def test_the_teaching_root_serves_the_deidentified_copy_to_a_dicomweb_client(
    published: Published,
) -> None:
    case = published.case
    study_uid = case["teaching_study_instance_uid"]
    (series_uid,) = {i["series_instance_uid"] for i in case["instances"]}
    sop_uids = {i["sop_instance_uid"] for i in case["instances"]}
    clinical_uids = {
        str(uid)
        for ds in published.images
        for uid in (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    }
    assert study_uid.startswith("2.25.") and study_uid not in clinical_uids
    assert not sop_uids & clinical_uids
    client = DICOMwebClient(url=published.teaching)

    studies = client.search_for_studies()
    assert [s["0020000D"]["Value"] for s in studies] == [[study_uid]]
    series = client.search_for_series(study_uid)
    assert [s["0020000E"]["Value"] for s in series] == [[series_uid]]
    instances = client.search_for_instances(study_uid, series_uid)
    assert {i["00080018"]["Value"][0] for i in instances} == sop_uids

    metadata = client.retrieve_study_metadata(study_uid)
    assert len(metadata) == 2
    for item in metadata:
        assert item["00120062"]["Value"] == ["YES"]
        assert item["0020000D"]["Value"] == [study_uid]
        assert item["00080018"]["Value"][0] in sop_uids
        assert item["00100010"].get("Value") != [{"Alphabetic": "CLINICAL^PATIENT"}]

    sop_uid = sorted(sop_uids)[0]
    ds = client.retrieve_instance(study_uid, series_uid, sop_uid)
    assert ds.PatientIdentityRemoved == "YES"
    assert (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID) == (
        study_uid,
        series_uid,
        sop_uid,
    )
    assert str(ds.PatientName) != "CLINICAL^PATIENT"
    frames = client.retrieve_instance_frames(study_uid, series_uid, sop_uid, frame_numbers=[1])
    assert [len(f) for f in frames] == [ROWS * COLUMNS * 2]
    assert frames[0] == ds.PixelData


def clinical_paths(p: Published) -> list[str]:
    """Every retrieve route of the teaching root, addressed by clinical UIDs (and by the
    teaching study with clinical series and instance UIDs below it)."""
    image = p.images[0]
    study, series, sop = image.StudyInstanceUID, image.SeriesInstanceUID, image.SOPInstanceUID
    teaching_study = p.case["teaching_study_instance_uid"]
    paths = []
    for study_uid in (study, teaching_study):
        series_path = f"/studies/{study_uid}/series/{series}"
        instance_path = f"{series_path}/instances/{sop}"
        if study_uid == study:
            paths += [f"/studies/{study}{tail}" for tail in ("", "/metadata", "/rendered")]
            paths += [f"/studies/{study}/thumbnail"]
        paths += [f"{series_path}{tail}" for tail in ("", "/metadata", "/rendered", "/thumbnail")]
        paths += [
            f"{instance_path}{tail}"
            for tail in (
                "",
                "/metadata",
                "/rendered",
                "/thumbnail",
                "/frames/1",
                "/frames/1/rendered",
                "/frames/1/thumbnail",
            )
        ]
    return paths


ACCEPT = {
    "metadata": "application/dicom+json",
    "rendered": 'multipart/related; type="image/jpeg", image/jpeg',
    "thumbnail": "image/jpeg",
    "frames": 'multipart/related; type="application/octet-stream"; transfer-syntax=*',
}


def accept_for(path: str) -> str:
    last = [part for part in path.split("/") if not part[:1].isdigit()][-1]
    return ACCEPT.get(last, DICOM)


def test_clinical_uids_are_not_found_on_the_teaching_root(published: Published) -> None:
    http = published.http
    clinical = published.images[0]
    answers = {}
    for path in clinical_paths(published):
        response = http.get(published.teaching + path, headers={"Accept": accept_for(path)})
        answers[path] = response.status_code
    response = http.get(
        f"{published.teaching}/wado",
        params={
            "requestType": "WADO",
            "studyUID": clinical.StudyInstanceUID,
            "seriesUID": clinical.SeriesInstanceUID,
            "objectUID": clinical.SOPInstanceUID,
            "contentType": "application/dicom",
        },
    )
    answers["/wado"] = response.status_code
    assert answers == dict.fromkeys(answers, 404)
    # the clinical root answers the same requests: the 404s are the teaching root's own
    study = published.study_uid
    for path in clinical_paths(published):
        if path.startswith(f"/studies/{study}"):
            response = http.get(published.clinical + path, headers={"Accept": accept_for(path)})
            assert response.status_code == 200, path


@pytest.mark.parametrize(
    ("resource", "attribute"),
    [
        ("/studies", "StudyInstanceUID"),
        ("/series", "StudyInstanceUID"),
        ("/instances", "StudyInstanceUID"),
        ("/series", "SeriesInstanceUID"),
        ("/instances", "SOPInstanceUID"),
    ],
)
def test_a_search_on_the_teaching_root_by_a_clinical_uid_finds_nothing(
    published: Published, resource: str, attribute: str
) -> None:
    image = published.images[0]
    response = published.http.get(
        published.teaching + resource,
        params={attribute: str(image[attribute].value)},
        headers={"Accept": "application/dicom+json"},
    )
    assert response.status_code in (200, 204), response.text
    assert response.status_code == 204 or response.json() == []


def teaching_state(p: Published) -> list[str]:
    response = p.http.get(f"{p.teaching}/instances", headers={"Accept": "application/dicom+json"})
    assert response.status_code == 200, response.text
    return sorted(item["00080018"]["Value"][0] for item in response.json())


def test_stow_and_delete_on_the_teaching_root_are_not_allowed_and_change_nothing(
    published: Published,
) -> None:
    http, teaching = published.http, published.teaching
    before = teaching_state(published)
    assert len(before) == 2
    case = published.case
    study_uid = case["teaching_study_instance_uid"]
    instance = case["instances"][0]
    series_uid, sop_uid = instance["series_instance_uid"], instance["sop_instance_uid"]
    intruder = make_instance(study_uid=study_uid)

    answers = {
        "POST /studies": stow(http, f"{teaching}/studies", [intruder]).status_code,
        "POST /studies/{study}": stow(
            http, f"{teaching}/studies/{study_uid}", [intruder]
        ).status_code,
    }
    for name, path in [
        ("study", f"/studies/{study_uid}"),
        ("series", f"/studies/{study_uid}/series/{series_uid}"),
        ("instance", f"/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}"),
    ]:
        answers[f"DELETE {name}"] = http.delete(teaching + path).status_code
    assert answers == dict.fromkeys(answers, 405)

    assert teaching_state(published) == before
    for root in (teaching, published.clinical):
        response = http.get(
            f"{root}/instances",
            params={"SOPInstanceUID": intruder.SOPInstanceUID},
            headers={"Accept": "application/dicom+json"},
        )
        assert response.status_code == 204 or response.json() == [], root
    response = http.get(f"{published.clinical.removesuffix('/dicomweb')}/api/cases/{case['id']}")
    assert response.json()["instances"] == case["instances"]
