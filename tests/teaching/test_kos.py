"""KOS "For Teaching File Export" (IHE RAD TCE): reading the request a Key Object Selection
Document carries, and the draft case the clinical archive makes of one stored by STOW-RS."""

from __future__ import annotations

import io
import warnings
from typing import Any

import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import generate_uid
from starlette.testclient import TestClient

from teaching.cases.kos import KeyImageReference, Reference, teaching_file_request
from tests.factories import make_instance, stow, to_bytes
from tests.teaching.kos_builder import (
    FOR_TEACHING,
    OF_INTEREST,
    TEACHING_FILE_EXPORT_DCM,
    TEACHING_FILE_EXPORT_IHE,
    TEACHING_TITLES,
    build_kos,
    code,
)

NOTE = "Pneumothorax, left apex\nnote the deep sulcus sign"
OBSERVER = "HOUSE^GREGORY"


def title_id(title: tuple[str, str, str]) -> str:
    return f"{title[1]}-{title[0]}"


def read_back(ds: Dataset) -> Dataset:
    """The data set as the archive reads it: encoded and decoded again."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(io.BytesIO(to_bytes(ds)))


def study(count: int = 3, frames: int = 1) -> list[Dataset]:
    """A CT study of ``count`` images in two series."""
    study_uid, first, second = generate_uid(), generate_uid(), generate_uid()
    return [
        make_instance(
            study_uid=study_uid,
            series_uid=first if number < count else second,
            series_number=1 if number < count else 2,
            instance_number=number,
            frames=frames,
        )
        for number in range(1, count + 1)
    ]


# -- reading the request ------------------------------------------------------------------


@pytest.mark.parametrize("title", TEACHING_TITLES, ids=title_id)
def test_a_kos_with_a_teaching_title_is_read_as_a_teaching_file_request(
    title: tuple[str, str, str],
) -> None:
    images = study()
    kos = build_kos(images, title=title, description=NOTE, observer=OBSERVER, key_images=images[:1])
    request = teaching_file_request(read_back(kos))
    assert request is not None
    assert request.kos_sop_uid == kos.SOPInstanceUID
    assert request.title == title[2]
    assert request.description == NOTE
    assert request.observer == OBSERVER
    assert request.references == tuple(
        Reference(i.StudyInstanceUID, i.SeriesInstanceUID, i.SOPInstanceUID) for i in images
    )
    assert request.study_uids == [images[0].StudyInstanceUID]
    assert request.key_images == (KeyImageReference(images[0].SOPInstanceUID),)


def test_a_kos_titled_of_interest_is_not_a_teaching_file_request() -> None:
    kos = build_kos(study(), title=OF_INTEREST)
    assert teaching_file_request(read_back(kos)) is None


def test_a_kos_with_the_teaching_code_value_in_another_scheme_is_not_a_teaching_file_request() -> (
    None
):
    kos = build_kos(study(), title=("TCE001", "99LOCAL", "For Teaching File Export"))
    assert teaching_file_request(read_back(kos)) is None


def test_a_dataset_of_another_class_with_a_teaching_title_is_not_a_teaching_file_request() -> None:
    image = make_instance()
    image.ConceptNameCodeSequence = Sequence([code(*TEACHING_FILE_EXPORT_IHE)])
    assert teaching_file_request(read_back(image)) is None


def test_a_kos_without_description_or_observer_gives_empty_ones() -> None:
    kos = build_kos(study(), title=FOR_TEACHING, description=None, observer=None)
    request = teaching_file_request(read_back(kos))
    assert request is not None
    assert (request.description, request.observer) == ("", "")


def test_referenced_frame_numbers_are_read_per_key_image() -> None:
    images = study(frames=4)
    kos = build_kos(
        images,
        frames={images[0].SOPInstanceUID: [1, 3], images[1].SOPInstanceUID: 2},
    )
    request = teaching_file_request(read_back(kos))
    assert request is not None
    assert request.key_images == (
        KeyImageReference(images[0].SOPInstanceUID, (1, 3)),
        KeyImageReference(images[1].SOPInstanceUID, (2,)),
        KeyImageReference(images[2].SOPInstanceUID, ()),
    )


def with_raw_frame_numbers(kos: Dataset, raw: bytes) -> Dataset:
    """The KOS with its first key image's Referenced Frame Number encoded as ``raw`` (values
    pydicom refuses to assign, as a sender may still put them on the wire)."""
    tag = Tag("ReferencedFrameNumber")
    ref = next(i for i in kos.ContentSequence if i.ValueType == "IMAGE").ReferencedSOPSequence[0]
    ref[tag] = RawDataElement(tag, "IS", len(raw), raw, 0, False, True)
    return kos


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"0 ", ()),
        (b"-1", ()),
        (b"abc ", ()),
        (b"1.5 ", ()),
        (b"2\\0\\x\\3 ", (2, 3)),
        (b"", ()),
    ],
    ids=["zero", "negative", "not-a-number", "fraction", "mixed", "empty"],
)
@pytest.mark.filterwarnings("ignore:.*VR (of )?IS:UserWarning")
def test_frame_numbers_that_are_not_positive_integers_are_ignored(
    raw: bytes, expected: tuple[int, ...]
) -> None:
    images = study(count=1, frames=4)
    kos = with_raw_frame_numbers(build_kos(images, title=TEACHING_FILE_EXPORT_DCM), raw)
    request = teaching_file_request(read_back(kos))
    assert request is not None
    assert request.key_images == (KeyImageReference(images[0].SOPInstanceUID, expected),)


# -- the draft case a stored KOS makes ----------------------------------------------------


def stored(client: TestClient, datasets: list[Dataset]) -> None:
    response = stow(client, [to_bytes(ds) for ds in datasets])
    assert response.status_code == 200, response.text  # type: ignore[attr-defined]


def cases(client: TestClient) -> list[dict[str, Any]]:
    response = client.get("/api/cases", params={"limit": 500})
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["total"] == len(page["cases"])
    return [client.get(f"/api/cases/{c['id']}").json() for c in page["cases"]]


def teaching_instance_numbers(client: TestClient, case: dict[str, Any]) -> dict[str, int]:
    """Teaching SOP Instance UID -> Instance Number, read from the teaching DICOMweb root."""
    response = client.get(
        f"/teaching/dicomweb/studies/{case['teaching_study_instance_uid']}/instances",
        params={"includefield": "00200013"},
    )
    assert response.status_code == 200, response.text
    return {
        item["00080018"]["Value"][0]: int(item["00200013"]["Value"][0]) for item in response.json()
    }


@pytest.mark.parametrize("title", TEACHING_TITLES, ids=title_id)
def test_a_stored_teaching_kos_makes_one_draft_case_of_the_teaching_copies_it_references(
    client: TestClient, title: tuple[str, str, str]
) -> None:
    images = study(count=3, frames=2)
    stored(client, images)
    assert cases(client) == []
    first, second = images[0], images[2]
    kos = build_kos(
        [first, second],
        title=title,
        description=NOTE,
        observer=OBSERVER,
        frames={first.SOPInstanceUID: [2]},
    )
    stored(client, [kos])

    (case,) = cases(client)
    assert case["origin"] == "kos"
    assert case["status"] == "draft"
    assert case["note"] == NOTE
    assert case["title"] == "Pneumothorax, left apex"
    assert case["author"] == OBSERVER
    clinical_uids = {
        str(uid)
        for ds in [*images, kos]
        for uid in (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    }
    assert case["teaching_study_instance_uid"].startswith("2.25.")
    assert case["teaching_study_instance_uid"] not in clinical_uids
    assert len(case["instances"]) == 2
    for instance in case["instances"]:
        for uid in (instance["sop_instance_uid"], instance["series_instance_uid"]):
            assert uid.startswith("2.25.")
            assert uid not in clinical_uids
        assert instance["sop_class_uid"] == first.SOPClassUID
    # the copies are those of the two referenced images, not of the third nor of the KOS
    numbers = teaching_instance_numbers(client, case)
    assert sorted(numbers.values()) == [first.InstanceNumber, second.InstanceNumber]
    assert set(numbers) == {i["sop_instance_uid"] for i in case["instances"]}
    by_number = {number: uid for uid, number in numbers.items()}
    assert case["key_images"] == [
        {"sop_instance_uid": by_number[first.InstanceNumber], "frame": 2, "note": ""},
        {"sop_instance_uid": by_number[second.InstanceNumber], "frame": None, "note": ""},
    ]


def test_the_same_kos_stored_again_makes_no_second_case(client: TestClient) -> None:
    images = study()
    stored(client, images)
    kos = build_kos(images[:2])
    stored(client, [kos])
    (case,) = cases(client)
    stored(client, [kos])
    assert cases(client) == [case]


def test_a_kos_titled_of_interest_makes_no_case(client: TestClient) -> None:
    images = study()
    stored(client, images)
    stored(client, [build_kos(images[:2], title=OF_INTEREST)])
    assert cases(client) == []


def test_a_kos_referencing_an_instance_missing_from_the_archive_makes_a_case_of_the_present_ones(
    client: TestClient,
) -> None:
    images = study()
    present, missing = images[:2], images[2]
    stored(client, present)
    stored(client, [build_kos([*present, missing])])
    (case,) = cases(client)
    assert len(case["instances"]) == 2
    numbers = teaching_instance_numbers(client, case)
    assert sorted(numbers.values()) == [i.InstanceNumber for i in present]
    assert [k["sop_instance_uid"] for k in case["key_images"]] == [
        uid for number in (1, 2) for uid, n in numbers.items() if n == number
    ]


def test_a_kos_whose_instances_are_all_missing_makes_no_case(client: TestClient) -> None:
    images = study()
    stored(client, [build_kos(images[:2])])
    assert cases(client) == []


def test_a_kos_without_description_is_titled_by_its_document_title_and_authored_by_kos(
    client: TestClient,
) -> None:
    images = study()
    stored(client, images)
    stored(client, [build_kos(images[:1], title=FOR_TEACHING, description=None, observer=None)])
    (case,) = cases(client)
    assert (case["title"], case["note"], case["author"]) == ("For Teaching", "", "kos")
    assert len(case["instances"]) == 1
