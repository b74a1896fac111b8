"""QIDO-RS through HTTP (PS3.18 §10.6, §8.3.4) with the matching of PS3.4 C.2.2.2.

The same five generated studies are stored through STOW-RS once per backend combination and
searched through the DICOMweb app, as a viewer would, by every test that only reads (the
``qido`` client); the tests that delete store them in an archive of their own:

======  =========================  ========  ======  ======  ===============  ==========
study   PatientName                StudyDate  Time   Acc.    Description      series
======  =========================  ========  ======  ======  ===============  ==========
doe     DOE^JOHN                   20240102  101500  ACC1    CT CHEST         CT (2), MR (1)
muller  Müller^Jürgen (ISO_IR 100) 20240115  143000  ACC10   MR BRAIN         MR (1)
yamada  Yamada^Tarou=山田^太郎       20231231  080000  acc3    ct abdomen       CT (1)
wang    Wang^XiaoDong=王^小東        20240201  235959  XR-7    CR HAND [LEFT]   CR (1)
jane    Doe^Jane                   20240102  091500  ACC5    CT HEAD          CT (1)
======  =========================  ========  ======  ======  ===============  ==========

Yamada is encoded in ISO 2022 IR 87 (JIS X 0208 with escape sequences), Wang in ISO_IR 192.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from starlette.testclient import TestClient

from radcase_pacs.settings import Settings
from storage.archive import Archive
from storage.cache.memory import MemoryCache
from storage.stores import Stores
from tests.apps import served
from tests.backends import archive_for, backend_names
from tests.factories import dicomweb_app, make_instance, stow, to_bytes

pytestmark = pytest.mark.backends

JSON = {"Accept": "application/dicom+json"}
ROOT = "http://testserver/dicomweb"

# DICOM JSON keys (PS3.18 §F.2.1.1) used below.
SPECIFIC_CHARACTER_SET = "00080005"
SOP_CLASS_UID = "00080016"
SOP_INSTANCE_UID = "00080018"
STUDY_DATE = "00080020"
STUDY_TIME = "00080030"
ACCESSION_NUMBER = "00080050"
MODALITY = "00080060"
MODALITIES_IN_STUDY = "00080061"
RETRIEVE_URL = "00081190"
STUDY_DESCRIPTION = "00081030"
PATIENT_NAME = "00100010"
PATIENT_ID = "00100020"
ISSUER_OF_PATIENT_ID = "00100021"
PATIENT_AGE = "00101010"
PATIENT_WEIGHT = "00101030"
STUDY_UID = "0020000D"
SERIES_UID = "0020000E"
SERIES_NUMBER = "00200011"
INSTANCE_NUMBER = "00200013"
STUDY_RELATED_SERIES = "00201206"
STUDY_RELATED_INSTANCES = "00201208"
SERIES_RELATED_INSTANCES = "00201209"
ROWS = "00280010"


@dataclass(frozen=True)
class Study:
    uid: str
    series: tuple[str, ...]
    instances: tuple[tuple[str, ...], ...]  # SOP Instance UIDs per series


@dataclass(frozen=True)
class Archive5:
    doe: Study
    muller: Study
    yamada: Study
    wang: Study
    jane: Study

    @property
    def all(self) -> tuple[Study, ...]:
        return (self.doe, self.muller, self.yamada, self.wang, self.jane)


def _study(
    client: TestClient,
    series: list[tuple[str, int, int]],
    *,
    charset: str | list[str] | None = None,
    extra: dict[str, Any] | None = None,
    **attributes: Any,
) -> Study:
    """Store one study: ``series`` is (modality, series number, number of instances)."""
    study_uid = generate_uid()
    series_uids, instance_uids, parts = [], [], []
    for modality, number, count in series:
        series_uid = generate_uid()
        series_uids.append(series_uid)
        sops = []
        for instance_number in range(1, count + 1):
            ds = make_instance(
                study_uid=study_uid,
                series_uid=series_uid,
                modality=modality,
                series_number=number,
                instance_number=instance_number,
                **attributes,
            )
            if charset is not None:
                ds.SpecificCharacterSet = charset
            for keyword, value in (extra or {}).items():
                setattr(ds, keyword, value)
            sops.append(str(ds.SOPInstanceUID))
            parts.append(to_bytes(ds))
        instance_uids.append(tuple(sops))
    response = stow(client, parts)
    assert response.status_code == 200, response.text  # type: ignore[attr-defined]
    return Study(study_uid, tuple(series_uids), tuple(instance_uids))


def populate(client: TestClient) -> Archive5:
    return Archive5(
        doe=_study(
            client,
            [("CT", 1, 2), ("MR", 2, 1)],
            extra={"PatientAge": "054Y", "PatientWeight": "70"},
            patient_name="DOE^JOHN",
            patient_id="PID1",
            study_date="20240102",
            study_time="101500",
            accession="ACC1",
            study_description="CT CHEST",
        ),
        muller=_study(
            client,
            [("MR", 1, 1)],
            charset="ISO_IR 100",
            patient_name="Müller^Jürgen",
            patient_id="PID2",
            study_date="20240115",
            study_time="143000",
            accession="ACC10",
            study_description="MR BRAIN",
        ),
        yamada=_study(
            client,
            [("CT", 1, 1)],
            charset=["", "ISO 2022 IR 87"],
            patient_name="Yamada^Tarou=山田^太郎",
            patient_id="PID3",
            study_date="20231231",
            study_time="080000",
            accession="acc3",
            study_description="ct abdomen",
        ),
        wang=_study(
            client,
            [("CR", 1, 1)],
            charset="ISO_IR 192",
            patient_name="Wang^XiaoDong=王^小東",
            patient_id="PID4",
            study_date="20240201",
            study_time="235959",
            accession="XR-7",
            study_description="CR HAND [LEFT]",
        ),
        jane=_study(
            client,
            [("CT", 1, 1)],
            patient_name="Doe^Jane",
            patient_id="PID5",
            study_date="20240102",
            study_time="091500",
            accession="ACC5",
            study_description="CT HEAD",
        ),
    )


@pytest.fixture(scope="module", params=backend_names())
def searched(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, Archive5]]:
    """The five studies stored once for the module's searches, on each backend combination."""
    with (
        archive_for(request.param, tmp_path_factory.mktemp("qido")) as archive,
        TestClient(dicomweb_app(archive)) as client,
    ):
        yield client, populate(client)


@pytest.fixture(scope="module")
def qido(searched: tuple[TestClient, Archive5]) -> TestClient:
    """A client of the archive holding the five studies; tests using it only read."""
    return searched[0]


@pytest.fixture(scope="module")
def studies(searched: tuple[TestClient, Archive5]) -> Archive5:
    return searched[1]


@pytest.fixture
def stored_studies(dicomweb_client: TestClient) -> Archive5:
    """The five studies in an archive of the test's own, for the tests that delete."""
    return populate(dicomweb_client)


def search(
    client: TestClient,
    path: str,
    params: list[tuple[str, str]] | dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    response = client.get(f"/dicomweb{path}", params=params, headers=JSON)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/dicom+json")
    body = response.json()
    assert isinstance(body, list)
    return body


def value(result: dict[str, Any], key: str) -> Any:
    """The only value of an attribute in a DICOM JSON result."""
    (only,) = result[key]["Value"]
    return only


def study_uids(results: list[dict[str, Any]]) -> set[str]:
    return {value(r, STUDY_UID) for r in results}


def found(client: TestClient, params: list[tuple[str, str]] | dict[str, str]) -> set[str]:
    return study_uids(search(client, "/studies", params))


def by_study(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {value(r, STUDY_UID): r for r in results}


def bad_request(client: TestClient, path: str, params: Any, names: str) -> None:
    response = client.get(f"/dicomweb{path}", params=params, headers=JSON)
    assert response.status_code == 400, response.text
    assert names in response.text


# -- single value, UID list and universal matching (PS3.4 C.2.2.2.1-3) ---------------------


def test_a_patient_id_matches_only_the_study_with_exactly_that_id(
    qido: TestClient, studies: Archive5
) -> None:
    assert found(qido, {"PatientID": "PID2"}) == {studies.muller.uid}
    assert found(qido, {"PatientID": "PID"}) == set()


def test_single_value_matching_of_text_is_case_sensitive(
    qido: TestClient, studies: Archive5
) -> None:
    assert found(qido, {"AccessionNumber": "acc3"}) == {studies.yamada.uid}
    assert found(qido, {"AccessionNumber": "ACC3"}) == set()
    assert found(qido, {"StudyDescription": "CT CHEST"}) == {studies.doe.uid}
    assert found(qido, {"StudyDescription": "ct chest"}) == set()


def test_a_matching_key_can_be_given_by_its_tag(qido: TestClient, studies: Archive5) -> None:
    assert found(qido, {"00080050": "ACC5"}) == {studies.jane.uid}


def test_a_single_study_uid_matches_that_study(qido: TestClient, studies: Archive5) -> None:
    assert found(qido, {"StudyInstanceUID": studies.wang.uid}) == {studies.wang.uid}


def test_a_comma_separated_uid_list_matches_every_listed_study(
    qido: TestClient, studies: Archive5
) -> None:
    listed = f"{studies.doe.uid},{studies.wang.uid},1.2.3.4.5.6.7.8.9"
    assert found(qido, {"StudyInstanceUID": listed}) == {
        studies.doe.uid,
        studies.wang.uid,
    }


def test_a_uid_list_also_matches_series_and_instances(qido: TestClient, studies: Archive5) -> None:
    ct, mr = studies.doe.series
    series = search(qido, "/series", {"SeriesInstanceUID": f"{mr},{studies.muller.series[0]}"})
    assert {value(r, SERIES_UID) for r in series} == {mr, studies.muller.series[0]}
    first, second = studies.doe.instances[0]
    instances = search(qido, "/instances", {"SOPInstanceUID": f"{second},{first}"})
    assert {value(r, SOP_INSTANCE_UID) for r in instances} == {first, second}
    assert {value(r, SERIES_UID) for r in instances} == {ct}


def test_an_empty_value_matches_every_study_and_returns_the_attribute(
    qido: TestClient, studies: Archive5
) -> None:
    results = by_study(search(qido, "/studies", {"StudyDescription": ""}))
    assert set(results) == {s.uid for s in studies.all}
    assert value(results[studies.wang.uid], STUDY_DESCRIPTION) == "CR HAND [LEFT]"
    assert value(results[studies.yamada.uid], STUDY_DESCRIPTION) == "ct abdomen"


def test_universal_matching_of_an_absent_attribute_returns_it_empty(
    qido: TestClient, studies: Archive5
) -> None:
    results = search(qido, "/studies", {"IssuerOfPatientID": ""})
    assert len(results) == 5
    for result in results:
        assert result[ISSUER_OF_PATIENT_ID] == {"vr": "LO"}


def test_a_lone_asterisk_is_universal_matching(qido: TestClient, studies: Archive5) -> None:
    assert found(qido, {"AccessionNumber": "*"}) == {s.uid for s in studies.all}


# -- wildcard matching (PS3.4 C.2.2.2.4) -----------------------------------------------------


def test_asterisk_matches_any_run_of_characters_case_sensitively(
    qido: TestClient, studies: Archive5
) -> None:
    assert found(qido, {"AccessionNumber": "ACC*"}) == {
        studies.doe.uid,
        studies.muller.uid,
        studies.jane.uid,
    }
    assert found(qido, {"StudyDescription": "*CHEST"}) == {studies.doe.uid}
    assert found(qido, {"StudyDescription": "ct*"}) == {studies.yamada.uid}
    assert found(qido, {"StudyDescription": "CT *"}) == {
        studies.doe.uid,
        studies.jane.uid,
    }


def test_question_mark_matches_exactly_one_character(qido: TestClient, studies: Archive5) -> None:
    assert found(qido, {"AccessionNumber": "ACC?"}) == {
        studies.doe.uid,
        studies.jane.uid,
    }
    assert found(qido, {"AccessionNumber": "ACC??"}) == {studies.muller.uid}
    assert found(qido, {"AccessionNumber": "XR?7"}) == {studies.wang.uid}


def test_brackets_in_a_wildcard_value_are_literal_text(qido: TestClient, studies: Archive5) -> None:
    assert found(qido, {"StudyDescription": "CR HAND [*"}) == {studies.wang.uid}
    assert found(qido, {"StudyDescription": "*[LEFT]"}) == {studies.wang.uid}
    assert found(qido, {"StudyDescription": "CR HAND [L]*"}) == set()


def test_wildcards_apply_to_series_attributes(qido: TestClient, studies: Archive5) -> None:
    results = search(qido, "/series", {"Modality": "?R"})
    assert {value(r, MODALITY) for r in results} == {"MR", "CR"}
    assert len(results) == 3


# -- person names (PS3.4 C.2.2.2.1, PS3.18 §8.3.4.2 fuzzy matching) -------------------------


def test_person_name_single_value_matching_ignores_case(
    qido: TestClient, studies: Archive5
) -> None:
    assert found(qido, {"PatientName": "doe^john"}) == {studies.doe.uid}
    assert found(qido, {"PatientName": "DOE^JOHN"}) == {studies.doe.uid}
    assert found(qido, {"PatientName": "MÜLLER^JÜRGEN"}) == {studies.muller.uid}


def test_person_name_single_value_must_equal_the_whole_name(
    qido: TestClient, studies: Archive5
) -> None:
    assert found(qido, {"PatientName": "DOE"}) == set()
    assert found(qido, {"PatientName": "doe^jo"}) == set()


def test_person_name_wildcards_ignore_case(qido: TestClient, studies: Archive5) -> None:
    assert found(qido, {"PatientName": "*doe*"}) == {studies.doe.uid, studies.jane.uid}
    assert found(qido, {"PatientName": "d?e^*"}) == {studies.doe.uid, studies.jane.uid}
    assert found(qido, {"PatientName": "müll*"}) == {studies.muller.uid}


def test_a_non_ascii_name_is_returned_decoded_from_its_character_set(
    qido: TestClient, studies: Archive5
) -> None:
    results = by_study(search(qido, "/studies"))
    assert value(results[studies.muller.uid], PATIENT_NAME) == {"Alphabetic": "Müller^Jürgen"}
    assert value(results[studies.yamada.uid], PATIENT_NAME) == {
        "Alphabetic": "Yamada^Tarou",
        "Ideographic": "山田^太郎",
    }
    assert value(results[studies.wang.uid], PATIENT_NAME) == {
        "Alphabetic": "Wang^XiaoDong",
        "Ideographic": "王^小東",
    }


def test_an_ideographic_name_matches_its_own_component_group(
    qido: TestClient, studies: Archive5
) -> None:
    assert found(qido, {"PatientName": "山田^太郎"}) == {studies.yamada.uid}
    assert found(qido, {"PatientName": "yamada^tarou"}) == {studies.yamada.uid}
    assert found(qido, {"PatientName": "山田*"}) == {studies.yamada.uid}
    assert found(qido, {"PatientName": "王^小東"}) == {studies.wang.uid}
    assert found(qido, {"PatientName": "王"}) == set()


def test_without_fuzzy_matching_accents_matter(qido: TestClient, studies: Archive5) -> None:
    assert found(qido, {"PatientName": "muller^jurgen"}) == set()
    assert found(qido, {"PatientName": "muller*"}) == set()
    assert found(qido, {"PatientName": "muller", "fuzzymatching": "false"}) == set()


def test_fuzzy_matching_ignores_case_and_accents(qido: TestClient, studies: Archive5) -> None:
    fuzzy = {"fuzzymatching": "true"}
    assert found(qido, {"PatientName": "muller", **fuzzy}) == {studies.muller.uid}
    assert found(qido, {"PatientName": "MULLER^JURGEN", **fuzzy}) == {studies.muller.uid}
    assert found(qido, {"PatientName": "Müller", **fuzzy}) == {studies.muller.uid}


def test_fuzzy_matching_matches_the_start_of_any_name_component(
    qido: TestClient, studies: Archive5
) -> None:
    fuzzy = {"fuzzymatching": "true"}
    assert found(qido, {"PatientName": "jur", **fuzzy}) == {studies.muller.uid}
    assert found(qido, {"PatientName": "Jür", **fuzzy}) == {studies.muller.uid}
    assert found(qido, {"PatientName": "jo", **fuzzy}) == {studies.doe.uid}
    assert found(qido, {"PatientName": "doe", **fuzzy}) == {
        studies.doe.uid,
        studies.jane.uid,
    }
    assert found(qido, {"PatientName": "太", **fuzzy}) == {studies.yamada.uid}
    assert found(qido, {"PatientName": "小", **fuzzy}) == {studies.wang.uid}
    assert found(qido, {"PatientName": "tar", **fuzzy}) == {studies.yamada.uid}


def test_fuzzy_matching_does_not_match_inside_a_component(
    qido: TestClient, studies: Archive5
) -> None:
    fuzzy = {"fuzzymatching": "true"}
    assert found(qido, {"PatientName": "ller", **fuzzy}) == set()
    assert found(qido, {"PatientName": "rgen", **fuzzy}) == set()
    assert found(qido, {"PatientName": "jur", "fuzzymatching": "false"}) == set()


def test_fuzzy_matching_leaves_other_attributes_exact(qido: TestClient, studies: Archive5) -> None:
    fuzzy = {"fuzzymatching": "true"}
    assert found(qido, {"StudyDescription": "ct", **fuzzy}) == set()
    assert found(qido, {"AccessionNumber": "ACC1", **fuzzy}) == {studies.doe.uid}


# -- dates and times (PS3.4 C.2.2.2.5) -------------------------------------------------------


def test_a_single_date_matches_that_day(qido: TestClient, studies: Archive5) -> None:
    assert found(qido, {"StudyDate": "20240102"}) == {studies.doe.uid, studies.jane.uid}
    assert found(qido, {"StudyDate": "20240103"}) == set()


def test_a_closed_date_range_is_inclusive(qido: TestClient, studies: Archive5) -> None:
    assert found(qido, {"StudyDate": "20240102-20240115"}) == {
        studies.doe.uid,
        studies.jane.uid,
        studies.muller.uid,
    }
    assert found(qido, {"StudyDate": "20240103-20240114"}) == set()


def test_a_date_range_open_at_the_start_matches_up_to_its_end(
    qido: TestClient, studies: Archive5
) -> None:
    assert found(qido, {"StudyDate": "-20231231"}) == {studies.yamada.uid}
    assert found(qido, {"StudyDate": "-20240101"}) == {studies.yamada.uid}


def test_a_date_range_open_at_the_end_matches_from_its_start(
    qido: TestClient, studies: Archive5
) -> None:
    assert found(qido, {"StudyDate": "20240115-"}) == {
        studies.muller.uid,
        studies.wang.uid,
    }


def test_a_partial_time_matches_the_whole_minute_or_hour(
    qido: TestClient, studies: Archive5
) -> None:
    assert found(qido, {"StudyTime": "101500"}) == {studies.doe.uid}
    assert found(qido, {"StudyTime": "1015"}) == {studies.doe.uid}
    assert found(qido, {"StudyTime": "14"}) == {studies.muller.uid}
    assert found(qido, {"StudyTime": "1016"}) == set()


def test_a_time_range_of_partial_times_includes_the_whole_last_hour(
    qido: TestClient, studies: Archive5
) -> None:
    assert found(qido, {"StudyTime": "09-10"}) == {studies.jane.uid, studies.doe.uid}
    assert found(qido, {"StudyTime": "10-11"}) == {studies.doe.uid}
    assert found(qido, {"StudyTime": "-0900"}) == {studies.yamada.uid}
    assert found(qido, {"StudyTime": "2359-"}) == {studies.wang.uid}
    assert found(qido, {"StudyTime": "0800-0915"}) == {
        studies.yamada.uid,
        studies.jane.uid,
    }


def test_date_and_time_conditions_combine(qido: TestClient, studies: Archive5) -> None:
    assert found(qido, {"StudyDate": "20240102", "StudyTime": "10-"}) == {studies.doe.uid}


# -- study-level derived attributes ----------------------------------------------------------


def test_modalities_in_study_matches_a_study_with_any_series_of_that_modality(
    qido: TestClient, studies: Archive5
) -> None:
    results = by_study(search(qido, "/studies", {"ModalitiesInStudy": "CT"}))
    assert set(results) == {studies.doe.uid, studies.yamada.uid, studies.jane.uid}
    assert results[studies.doe.uid][MODALITIES_IN_STUDY]["Value"] == ["CT", "MR"]
    assert results[studies.jane.uid][MODALITIES_IN_STUDY]["Value"] == ["CT"]
    assert found(qido, {"ModalitiesInStudy": "MR"}) == {
        studies.doe.uid,
        studies.muller.uid,
    }
    assert found(qido, {"ModalitiesInStudy": "US"}) == set()


def test_modalities_in_study_combines_with_other_keys(qido: TestClient, studies: Archive5) -> None:
    params = {"ModalitiesInStudy": "MR", "StudyDate": "20240102"}
    assert found(qido, params) == {studies.doe.uid}


def test_study_level_counts_are_correct(qido: TestClient, studies: Archive5) -> None:
    results = by_study(search(qido, "/studies"))
    expected = {
        studies.doe.uid: (2, 3),
        studies.muller.uid: (1, 1),
        studies.yamada.uid: (1, 1),
        studies.wang.uid: (1, 1),
        studies.jane.uid: (1, 1),
    }
    for uid, (n_series, n_instances) in expected.items():
        assert value(results[uid], STUDY_RELATED_SERIES) == n_series
        assert value(results[uid], STUDY_RELATED_INSTANCES) == n_instances
        assert results[uid][STUDY_RELATED_SERIES]["vr"] == "IS"


def test_series_level_count_of_instances_is_correct(qido: TestClient, studies: Archive5) -> None:
    ct, mr = studies.doe.series
    results = search(qido, f"/studies/{studies.doe.uid}/series")
    counts = {value(r, SERIES_UID): value(r, SERIES_RELATED_INSTANCES) for r in results}
    assert counts == {ct: 2, mr: 1}


# -- returned attributes (PS3.18 §10.6.3.3, §8.3.4.3) ----------------------------------------


def test_study_results_carry_the_default_attributes_and_a_retrieve_url(
    qido: TestClient, studies: Archive5
) -> None:
    (result,) = search(qido, "/studies", {"PatientID": "PID1"})
    for key in (
        STUDY_DATE,
        STUDY_TIME,
        ACCESSION_NUMBER,
        MODALITIES_IN_STUDY,
        PATIENT_NAME,
        PATIENT_ID,
        STUDY_UID,
        STUDY_RELATED_SERIES,
        STUDY_RELATED_INSTANCES,
        RETRIEVE_URL,
    ):
        assert key in result, key
    assert value(result, STUDY_DATE) == "20240102"
    assert value(result, ACCESSION_NUMBER) == "ACC1"
    assert value(result, PATIENT_NAME) == {"Alphabetic": "DOE^JOHN"}
    assert result[RETRIEVE_URL] == {"vr": "UR", "Value": [f"{ROOT}/studies/{studies.doe.uid}"]}
    assert list(result) == sorted(result)


def test_attributes_outside_the_defaults_are_returned_only_when_asked(
    qido: TestClient, studies: Archive5
) -> None:
    (result,) = search(qido, "/studies", {"PatientID": "PID1"})
    assert STUDY_DESCRIPTION not in result
    assert PATIENT_AGE not in result


def test_includefield_by_keyword(qido: TestClient, studies: Archive5) -> None:
    (result,) = search(qido, "/studies", {"PatientID": "PID1", "includefield": "PatientAge"})
    assert value(result, PATIENT_AGE) == "054Y"


def test_includefield_by_tag(qido: TestClient, studies: Archive5) -> None:
    (result,) = search(qido, "/studies", {"PatientID": "PID1", "includefield": "00081030"})
    assert value(result, STUDY_DESCRIPTION) == "CT CHEST"


def test_includefield_repeated_and_comma_separated(qido: TestClient, studies: Archive5) -> None:
    params = [
        ("PatientID", "PID1"),
        ("includefield", "StudyDescription,00101010"),
        ("includefield", "PatientWeight"),
    ]
    (result,) = search(qido, "/studies", params)
    assert value(result, STUDY_DESCRIPTION) == "CT CHEST"
    assert value(result, PATIENT_AGE) == "054Y"
    assert value(result, PATIENT_WEIGHT) == 70


def test_includefield_all_returns_every_stored_attribute_of_the_level(
    qido: TestClient, studies: Archive5
) -> None:
    (result,) = search(qido, "/studies", {"PatientID": "PID1", "includefield": "all"})
    assert value(result, STUDY_DESCRIPTION) == "CT CHEST"
    assert value(result, PATIENT_AGE) == "054Y"
    assert value(result, PATIENT_WEIGHT) == 70
    assert value(result, STUDY_RELATED_INSTANCES) == 3
    assert result[MODALITIES_IN_STUDY]["Value"] == ["CT", "MR"]
    assert RETRIEVE_URL in result


def test_includefield_all_at_instance_level_returns_the_instance_without_bulk_data(
    qido: TestClient, studies: Archive5
) -> None:
    study, series = studies.doe.uid, studies.doe.series[0]
    path = f"/studies/{study}/series/{series}/instances"
    results = search(qido, path, {"includefield": "all"})
    assert [value(r, SOP_INSTANCE_UID) for r in results] == list(studies.doe.instances[0])
    for result in results:
        assert value(result, ROWS) == 8
        assert value(result, "00280100") == 16  # BitsAllocated
        assert "7FE00010" not in result  # PixelData is bulk data, never a search result
        assert not any("BulkDataURI" in element for element in result.values())
    assert len(search(qido, "/instances", {"includefield": "all"})) == 7


def test_the_ohif_study_list_query_returns_what_the_study_list_shows(
    qido: TestClient, studies: Archive5
) -> None:
    response = qido.get(
        "/dicomweb/studies?limit=101&offset=0&fuzzymatching=false"
        "&includefield=00081030%2C00080060&PatientName=*doe*",
        headers={"Accept": "application/dicom+json"},
    )
    assert response.status_code == 200, response.text
    assert "Warning" not in response.headers
    results = by_study(response.json())
    assert set(results) == {studies.doe.uid, studies.jane.uid}
    doe, jane = results[studies.doe.uid], results[studies.jane.uid]
    assert value(doe, STUDY_DESCRIPTION) == "CT CHEST"
    assert value(jane, STUDY_DESCRIPTION) == "CT HEAD"
    assert doe[MODALITIES_IN_STUDY]["Value"] == ["CT", "MR"]
    assert jane[MODALITIES_IN_STUDY]["Value"] == ["CT"]
    assert (value(doe, STUDY_RELATED_SERIES), value(doe, STUDY_RELATED_INSTANCES)) == (2, 3)
    assert (value(jane, STUDY_RELATED_SERIES), value(jane, STUDY_RELATED_INSTANCES)) == (1, 1)
    assert value(doe, PATIENT_NAME) == {"Alphabetic": "DOE^JOHN"}
    assert value(jane, STUDY_DATE) == "20240102"


# -- the series and instance resources --------------------------------------------------------


def test_series_across_studies_also_return_study_attributes(
    qido: TestClient, studies: Archive5
) -> None:
    results = search(qido, "/series")
    assert len(results) == 6
    for result in results:
        for key in (STUDY_UID, PATIENT_NAME, PATIENT_ID, STUDY_DATE, ACCESSION_NUMBER):
            assert key in result, key
        for key in (SERIES_UID, MODALITY, SERIES_NUMBER, SERIES_RELATED_INSTANCES):
            assert key in result, key
    mr = next(r for r in results if value(r, SERIES_UID) == studies.doe.series[1])
    assert value(mr, STUDY_UID) == studies.doe.uid
    assert value(mr, PATIENT_ID) == "PID1"
    assert value(mr, MODALITY) == "MR"
    assert value(mr, SERIES_NUMBER) == 2
    assert value(mr, RETRIEVE_URL) == (
        f"{ROOT}/studies/{studies.doe.uid}/series/{studies.doe.series[1]}"
    )


def test_series_across_studies_can_be_matched_on_study_keys(
    qido: TestClient, studies: Archive5
) -> None:
    results = search(qido, "/series", {"PatientName": "*doe*", "Modality": "CT"})
    assert {value(r, SERIES_UID) for r in results} == {
        studies.doe.series[0],
        studies.jane.series[0],
    }


def test_series_of_a_study_are_that_studys_series_in_series_number_order(
    qido: TestClient, studies: Archive5
) -> None:
    results = search(qido, f"/studies/{studies.doe.uid}/series")
    assert [value(r, SERIES_UID) for r in results] == list(studies.doe.series)
    assert [value(r, MODALITY) for r in results] == ["CT", "MR"]
    (second,) = search(qido, f"/studies/{studies.doe.uid}/series", {"SeriesNumber": "2"})
    assert value(second, SERIES_UID) == studies.doe.series[1]
    assert search(qido, f"/studies/{studies.doe.uid}/series", {"Modality": "CR"}) == []


def test_instances_of_a_study_span_its_series(qido: TestClient, studies: Archive5) -> None:
    results = search(qido, f"/studies/{studies.doe.uid}/instances")
    assert {value(r, SOP_INSTANCE_UID) for r in results} == {
        uid for series in studies.doe.instances for uid in series
    }
    for result in results:
        assert value(result, SERIES_UID) in studies.doe.series
        assert value(result, SOP_CLASS_UID) == "1.2.840.10008.5.1.4.1.1.2"
        assert value(result, ROWS) == 8
        assert INSTANCE_NUMBER in result


def test_instances_of_a_series_and_their_retrieve_urls(qido: TestClient, studies: Archive5) -> None:
    study, series = studies.doe.uid, studies.doe.series[0]
    results = search(qido, f"/studies/{study}/series/{series}/instances")
    assert [value(r, SOP_INSTANCE_UID) for r in results] == list(studies.doe.instances[0])
    assert [value(r, INSTANCE_NUMBER) for r in results] == [1, 2]
    for result in results:
        sop = value(result, SOP_INSTANCE_UID)
        assert value(result, RETRIEVE_URL) == (
            f"{ROOT}/studies/{study}/series/{series}/instances/{sop}"
        )
    (second,) = search(qido, f"/studies/{study}/series/{series}/instances", {"InstanceNumber": "2"})
    assert value(second, SOP_INSTANCE_UID) == studies.doe.instances[0][1]


def test_instances_across_the_archive_carry_study_and_series_attributes(
    qido: TestClient, studies: Archive5
) -> None:
    results = search(qido, "/instances")
    assert len(results) == 7
    sop = studies.muller.instances[0][0]
    (result,) = search(qido, "/instances", {"SOPInstanceUID": sop})
    assert value(result, STUDY_UID) == studies.muller.uid
    assert value(result, SERIES_UID) == studies.muller.series[0]
    assert value(result, PATIENT_NAME) == {"Alphabetic": "Müller^Jürgen"}
    assert value(result, MODALITY) == "MR"
    matched = search(qido, "/instances", {"PatientID": "PID1", "Modality": "CT"})
    assert {value(r, SOP_INSTANCE_UID) for r in matched} == set(studies.doe.instances[0])


def test_a_search_inside_an_unknown_study_finds_nothing(
    qido: TestClient, studies: Archive5
) -> None:
    response = qido.get("/dicomweb/studies/1.2.3.999/series", headers=JSON)
    assert response.status_code in (200, 204)
    assert response.status_code == 204 or response.json() == []


# -- paging (PS3.18 §8.3.4.4) ----------------------------------------------------------------


def test_limit_and_offset_page_through_every_study_once_in_a_stable_order(
    qido: TestClient, studies: Archive5
) -> None:
    everything = [value(r, STUDY_UID) for r in search(qido, "/studies")]
    assert [value(r, STUDY_UID) for r in search(qido, "/studies")] == everything
    pages, warnings = [], []
    for offset in (0, 2, 4, 6):
        response = qido.get(
            "/dicomweb/studies", params={"limit": "2", "offset": str(offset)}, headers=JSON
        )
        assert response.status_code == 200
        pages.append([value(r, STUDY_UID) for r in response.json()])
        warnings.append("warning" in response.headers)
    assert [len(p) for p in pages] == [2, 2, 1, 0]
    assert [uid for page in pages for uid in page] == everything
    assert len(set(everything)) == 5
    assert warnings == [True, True, False, False]


def test_a_limit_exactly_reaching_the_last_result_adds_no_warning(
    qido: TestClient, studies: Archive5
) -> None:
    response = qido.get("/dicomweb/studies", params={"limit": "5"}, headers=JSON)
    assert len(response.json()) == 5
    assert "warning" not in response.headers
    response = qido.get("/dicomweb/studies", params={"limit": "4"}, headers=JSON)
    assert len(response.json()) == 4
    assert response.headers["warning"].startswith("299 ")


def test_an_offset_past_the_end_returns_no_results(qido: TestClient, studies: Archive5) -> None:
    assert search(qido, "/studies", {"offset": "5"}) == []
    assert search(qido, "/studies", {"offset": "1000000"}) == []


@pytest.fixture
def capped(tmp_path: Path, stores: Stores) -> Iterator[TestClient]:
    """The full app with a QIDO page capped at three results."""
    settings = Settings(data_dir=tmp_path / "capped", qido_max_results=3)
    with served(settings, stores=stores) as test_client:
        yield test_client


def test_a_limit_above_the_server_cap_returns_the_cap_and_a_warning(capped: TestClient) -> None:
    populate(capped)
    response = capped.get("/dicomweb/studies", params={"limit": "50"}, headers=JSON)
    assert response.status_code == 200
    assert len(response.json()) == 3
    assert response.headers["warning"].startswith("299 ")
    unlimited = capped.get("/dicomweb/studies", headers=JSON)
    assert len(unlimited.json()) == 3
    assert unlimited.headers["warning"].startswith("299 ")
    rest = capped.get("/dicomweb/studies", params={"limit": "50", "offset": "3"}, headers=JSON)
    assert len(rest.json()) == 2
    first = {value(r, STUDY_UID) for r in response.json()}
    assert first.isdisjoint(value(r, STUDY_UID) for r in rest.json())
    fewer = capped.get(
        "/dicomweb/studies", params={"limit": "50", "PatientName": "*doe*"}, headers=JSON
    )
    assert len(fewer.json()) == 2
    assert fewer.headers["warning"].startswith("299 ")


# -- errors (PS3.18 §8.3.4, §10.6.1.3) -------------------------------------------------------


def test_an_unknown_parameter_is_a_400_that_names_it(qido: TestClient) -> None:
    bad_request(qido, "/studies", {"NoSuchThing": "1"}, "NoSuchThing")
    bad_request(qido, "/studies", {"patientname": "DOE"}, "patientname")


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"StudyDate": "2024-13"}, "StudyDate"),
        ({"StudyDate": "2024"}, "StudyDate"),
        ({"StudyDate": "20240115-20240101"}, "StudyDate"),
        ({"StudyDate": "-"}, "StudyDate"),
        ({"StudyDate": "20240101-20240102-20240103"}, "StudyDate"),
        ({"StudyDate": "20241345"}, "StudyDate"),
        ({"PatientBirthDate": "19700230"}, "PatientBirthDate"),
        ({"StudyTime": "2500"}, "StudyTime"),
        ({"StudyTime": "1061"}, "StudyTime"),
        ({"StudyTime": "abc"}, "StudyTime"),
        ({"StudyInstanceUID": "1.02.3"}, "StudyInstanceUID"),
        ({"StudyInstanceUID": "1.2.3,abc"}, "StudyInstanceUID"),
        ({"StudyInstanceUID": "1.2.*"}, "StudyInstanceUID"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"offset": "1.5"}, "offset"),
        ({"fuzzymatching": "maybe"}, "fuzzymatching"),
        ({"SliceThickness": "1"}, "SliceThickness"),
        ({"SOPInstanceUID": "1.2"}, "SOPInstanceUID"),
        ({"Modality": "CT"}, "Modality"),
        ({"NumberOfStudyRelatedSeries": "2"}, "NumberOfStudyRelatedSeries"),
        ({"includefield": "NotAKeyword"}, "NotAKeyword"),
        ([("PatientID", "PID1"), ("PatientID", "PID2")], "PatientID"),
    ],
)
def test_an_invalid_study_query_is_a_400_that_names_the_parameter(
    qido: TestClient, params: Any, names: str
) -> None:
    bad_request(qido, "/studies", params, names)


def test_an_instance_attribute_in_a_series_search_is_a_400(qido: TestClient) -> None:
    bad_request(qido, "/series", {"InstanceNumber": "1"}, "InstanceNumber")
    bad_request(qido, "/series", {"SeriesNumber": "one"}, "SeriesNumber")


def test_a_malformed_uid_in_the_path_is_a_400(qido: TestClient) -> None:
    response = qido.get("/dicomweb/studies/1.2.abc/series", headers=JSON)
    assert response.status_code == 400
    assert "StudyInstanceUID" in response.text


def test_a_client_that_accepts_only_png_gets_406(qido: TestClient, studies: Archive5) -> None:
    response = qido.get("/dicomweb/studies", headers={"Accept": "image/png"})
    assert response.status_code == 406


def test_plain_json_and_wildcard_accept_headers_are_served(
    qido: TestClient, studies: Archive5
) -> None:
    for accept in ("application/json", "*/*", "application/*"):
        response = qido.get("/dicomweb/studies", headers={"Accept": accept})
        assert response.status_code == 200, accept
        assert len(response.json()) == 5


@pytest.mark.parametrize(
    "query",
    [
        "limit=99999999999999999999",
        "offset=99999999999999999999",
        "PatientName=%00",
        "PatientName=%5B",
        "PatientName=***",
        "PatientName=%3D",
        "PatientName=%5E%5E%5E",
        "StudyDescription=%25_%5C",
        "AccessionNumber=%27%3B%20DROP%20TABLE%20studies%3B--",
        "StudyInstanceUID=",
        "StudyInstanceUID=,",
        "StudyTime=10.5-11",
        "StudyDate=2024.01.02",
        "includefield=",
        "includefield=0008",
        "includefield=all&includefield=all",
        "SeriesNumber=1",
        "SeriesNumber=99999999999999999999999",
        "00100010.00100020=x",
        "RequestAttributesSequence.ScheduledProcedureStepID=1",
        "ScheduledProcedureStepID=1",
        "%FF=1",
        "StudyDate=%FF",
        "fuzzymatching=true&PatientName=%CC%88",
    ],
)
def test_odd_queries_never_cause_a_server_error(
    qido: TestClient, studies: Archive5, query: str
) -> None:
    for path in ("/studies", "/series", "/instances"):
        response = qido.get(f"/dicomweb{path}?{query}", headers=JSON)
        assert response.status_code < 500, (path, query, response.text)
        if response.status_code == 200:
            assert isinstance(response.json(), list)


# -- deletion ----------------------------------------------------------------------------------


def test_a_deleted_study_disappears_from_every_search(
    dicomweb_client: TestClient, stored_studies: Archive5
) -> None:
    response = dicomweb_client.delete(f"/dicomweb/studies/{stored_studies.muller.uid}")
    assert response.status_code in (200, 202, 204)
    remaining = {s.uid for s in stored_studies.all} - {stored_studies.muller.uid}
    assert found(dicomweb_client, {}) == remaining
    assert found(dicomweb_client, {"PatientName": "muller", "fuzzymatching": "true"}) == set()
    assert search(dicomweb_client, "/series", {"StudyInstanceUID": stored_studies.muller.uid}) == []
    assert search(dicomweb_client, "/instances", {"PatientID": "PID2"}) == []
    assert len(search(dicomweb_client, "/instances")) == 6


def test_a_search_answered_before_shows_a_store_and_a_delete_at_once(
    dicomweb_client: TestClient, stored_studies: Archive5
) -> None:
    """Search answers are cached; the next search after a store or delete is still exact."""
    before = found(dicomweb_client, {"PatientID": "PID*"})
    assert found(dicomweb_client, {"PatientID": "PID*"}) == before
    added = generate_uid()
    response = stow(dicomweb_client, [to_bytes(make_instance(study_uid=added, patient_id="PID9"))])
    assert response.status_code == 200
    assert found(dicomweb_client, {"PatientID": "PID*"}) == before | {added}
    assert dicomweb_client.delete(f"/dicomweb/studies/{added}").status_code in (200, 202, 204)
    assert found(dicomweb_client, {"PatientID": "PID*"}) == before


def test_a_search_sees_what_another_process_stored(stores: Stores) -> None:
    """Processes sharing an index but each with a cache of its own (workers over the embedded
    default) never answer a search from before another's store: answers are cached under the
    index's generation, which the other's commit raised."""
    other = Stores(index=stores.index, blobs=stores.blobs, cache=MemoryCache())
    with (
        TestClient(dicomweb_app(Archive(stores))) as here,
        TestClient(dicomweb_app(Archive(other))) as there,
    ):
        assert found(here, {}) == set()
        added = generate_uid()
        assert stow(there, [to_bytes(make_instance(study_uid=added))]).status_code == 200
        assert found(here, {}) == {added}
        assert there.delete(f"/dicomweb/studies/{added}").status_code in (200, 202, 204)
        assert found(here, {}) == set()


def test_deleting_a_series_updates_the_study_counts_and_modalities(
    dicomweb_client: TestClient, stored_studies: Archive5
) -> None:
    ct, mr = stored_studies.doe.series
    response = dicomweb_client.delete(f"/dicomweb/studies/{stored_studies.doe.uid}/series/{mr}")
    assert response.status_code in (200, 202, 204)
    (result,) = search(dicomweb_client, "/studies", {"StudyInstanceUID": stored_studies.doe.uid})
    assert value(result, STUDY_RELATED_SERIES) == 1
    assert value(result, STUDY_RELATED_INSTANCES) == 2
    assert result[MODALITIES_IN_STUDY]["Value"] == ["CT"]
    assert found(dicomweb_client, {"ModalitiesInStudy": "MR"}) == {stored_studies.muller.uid}
    series = search(dicomweb_client, f"/studies/{stored_studies.doe.uid}/series")
    assert [value(r, SERIES_UID) for r in series] == [ct]


def test_deleting_an_instance_updates_the_series_count(
    dicomweb_client: TestClient, stored_studies: Archive5
) -> None:
    study, (ct, _mr) = stored_studies.doe.uid, stored_studies.doe.series
    first, second = stored_studies.doe.instances[0]
    response = dicomweb_client.delete(f"/dicomweb/studies/{study}/series/{ct}/instances/{first}")
    assert response.status_code in (200, 202, 204)
    (series,) = search(dicomweb_client, f"/studies/{study}/series", {"SeriesInstanceUID": ct})
    assert value(series, SERIES_RELATED_INSTANCES) == 1
    remaining = search(dicomweb_client, f"/studies/{study}/series/{ct}/instances")
    assert [value(r, SOP_INSTANCE_UID) for r in remaining] == [second]
    (result,) = search(dicomweb_client, "/studies", {"StudyInstanceUID": study})
    assert value(result, STUDY_RELATED_INSTANCES) == 2


def test_results_are_utf8_json_whatever_the_stored_character_set(
    qido: TestClient, studies: Archive5
) -> None:
    # The DICOM JSON model is UTF-8 (PS3.18 §F.2); an ISO 2022 IR 87 name decodes to the
    # same text the data set holds.
    response = qido.get("/dicomweb/studies", params={"PatientID": "PID3"}, headers=JSON)
    assert "山田^太郎".encode() in response.content
    (result,) = response.json()
    assert str(Dataset.from_json(result).PatientName) == "Yamada^Tarou=山田^太郎"
