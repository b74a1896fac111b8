"""C-FIND (PS3.4 C.4.1) against DCMTK's findscu and pynetdicom: the same matches as QIDO-RS
for the same query, at every level of both information models."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)
from starlette.testclient import TestClient

from radcase_pacs.dimse.server import DimseServer, no_delay
from storage.archive import Archive
from tests.factories import make_instance, stow, to_bytes
from tests.radcase_pacs.dimse.conftest import address, run

PATIENTS = [
    ("SMITH^JOHN", "P1", "20200115"),
    ("SMITH^JANE", "P2", "20200620"),
    ("SMYTHE^ANN", "P3", "20210301"),
    ("SMITH^OLD", "P4", "20191231"),
    ("JONES^SAM", "P5", "20200701"),
    ("smith^lower", "P6", "20200801"),
]


@pytest.fixture
def studies(client: TestClient) -> dict[str, str]:
    """One two-series study per patient; returns study UID by patient ID."""
    uids = {}
    for name, pid, date in PATIENTS:
        study = generate_uid()
        parts = [
            to_bytes(
                make_instance(
                    study_uid=study,
                    series_uid=series,
                    patient_name=name,
                    patient_id=pid,
                    study_date=date,
                    modality=modality,
                    series_number=number,
                )
            )
            for number, (series, modality) in enumerate(
                [(generate_uid(), "CT"), (generate_uid(), "MR")], start=1
            )
        ]
        assert stow(client, parts).status_code == 200
        uids[pid] = study
    return uids


def findscu(server: DimseServer, out: Path, *args: str) -> list[Dataset]:
    """findscu with its responses written to files (-X), read back with pydicom."""
    out.mkdir(exist_ok=True)
    result = run("findscu", *address(server), "-X", "-od", str(out), *args)
    assert result.returncode == 0, result.stdout + result.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [pydicom.dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]


def qido_study_uids(client: TestClient, **params: str) -> set[str]:
    body = client.get("/dicomweb/studies", params=params).json()
    return {s["0020000D"]["Value"][0] for s in body}


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("name", "dates"),
    [
        ("SMITH*", "20200101-20201231"),
        ("SM?TH*", "20200101-"),
        ("*J*", "-20200630"),
        ("SMITH^JOHN", ""),
        ("", "20200620"),
        ("*", "20190101-20211231"),
    ],
)
def test_findscu_study_search_returns_exactly_what_qido_returns(
    name: str,
    dates: str,
    dimse: DimseServer,
    client: TestClient,
    studies: dict[str, str],
    tmp_path: Path,
) -> None:
    responses = findscu(
        dimse,
        tmp_path / "rsp",
        "-S",
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        f"PatientName={name}",
        "-k",
        f"StudyDate={dates}",
        "-k",
        "StudyInstanceUID",
        "-k",
        "NumberOfStudyRelatedSeries",
    )
    params = {k: v for k, v in (("PatientName", name), ("StudyDate", dates)) if v}
    expected = qido_study_uids(client, **params)
    assert expected, "the query should match something"
    assert {str(r.StudyInstanceUID) for r in responses} == expected
    assert len(responses) == len(expected)
    for response in responses:
        assert response.QueryRetrieveLevel == "STUDY"
        assert response.NumberOfStudyRelatedSeries == 2
        assert response.RetrieveAETitle == "RADCASE"


@pytest.mark.e2e
def test_patient_root_patient_level_groups_studies_by_patient(
    dimse: DimseServer, client: TestClient, studies: dict[str, str], tmp_path: Path
) -> None:
    second = make_instance(patient_name="SMITH^JOHN", patient_id="P1", study_date="20220101")
    assert stow(client, [to_bytes(second)]).status_code == 200
    responses = findscu(
        dimse,
        tmp_path / "rsp",
        "-P",
        "-k",
        "QueryRetrieveLevel=PATIENT",
        "-k",
        "PatientName=SMITH*",
        "-k",
        "PatientID",
        "-k",
        "NumberOfPatientRelatedStudies",
        "-k",
        "NumberOfPatientRelatedInstances",
    )
    by_id = {str(r.PatientID): r for r in responses}
    # Person names match case-insensitively, as in QIDO-RS (one engine): smith^lower too.
    assert set(by_id) == {"P1", "P2", "P4", "P6"}
    assert by_id["P1"].NumberOfPatientRelatedStudies == 2
    assert by_id["P1"].NumberOfPatientRelatedInstances == 3
    assert by_id["P2"].NumberOfPatientRelatedStudies == 1


def associate(server: DimseServer, *models: str) -> Association:
    ae = AE(ae_title="TESTSCU")
    for model in models or (StudyRootQueryRetrieveInformationModelFind,):
        ae.add_requested_context(model)
    assoc = ae.associate(
        "127.0.0.1",
        server.port,
        ae_title="RADCASE",
        evt_handlers=[(evt.EVT_CONN_OPEN, no_delay)],
    )
    assert assoc.is_established
    return assoc


def c_find(
    assoc: Association, query: Dataset, model: str = StudyRootQueryRetrieveInformationModelFind
) -> tuple[list[Dataset], Dataset]:
    """Pending identifiers and the final status."""
    pending, final = [], Dataset()
    for status, identifier in assoc.send_c_find(query, model):
        if status.Status in (0xFF00, 0xFF01):
            pending.append(identifier)
        else:
            final = status
    return pending, final


def identifier(level: str, **keys: object) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def test_series_and_image_levels_match_qido(
    dimse: DimseServer, client: TestClient, studies: dict[str, str]
) -> None:
    assoc = associate(dimse)
    study = studies["P1"]
    series, final = c_find(
        assoc,
        identifier(
            "SERIES", StudyInstanceUID=study, SeriesInstanceUID="", Modality="MR", SeriesNumber=""
        ),
    )
    assert final.Status == 0x0000
    qido = client.get(f"/dicomweb/studies/{study}/series", params={"Modality": "MR"}).json()
    assert [str(s.SeriesInstanceUID) for s in series] == [q["0020000E"]["Value"][0] for q in qido]
    assert series[0].SeriesNumber == 2 and series[0].StudyInstanceUID == study

    images, final = c_find(
        assoc,
        identifier(
            "IMAGE",
            StudyInstanceUID=study,
            SeriesInstanceUID=series[0].SeriesInstanceUID,
            SOPInstanceUID="",
            InstanceNumber="",
            Rows="",
        ),
    )
    assert final.Status == 0x0000
    assert len(images) == 1 and images[0].Rows == 8 and images[0].InstanceNumber == 1
    assoc.release()


def test_an_identifier_that_does_not_fit_gets_a900_and_the_association_goes_on(
    dimse: DimseServer, studies: dict[str, str]
) -> None:
    assoc = associate(dimse, StudyRootQueryRetrieveInformationModelFind)
    for bad in (
        identifier("STUDY", StudyDate="2020"),  # not a DA value
        identifier("STUDY", SeriesInstanceUID="1.2.3"),  # a series key in a study query
        identifier("PATIENT", PatientID="P1"),  # no PATIENT level in the Study Root model
        identifier("WARD", PatientID="P1"),
        identifier("STUDY", StudyInstanceUID="1.02.3"),  # not a UID
    ):
        pending, final = c_find(assoc, bad)
        assert pending == []
        assert final.Status == 0xA900, bad
        assert final.ErrorComment
    pending, final = c_find(assoc, identifier("STUDY", PatientID="P1", StudyInstanceUID=""))
    assert final.Status == 0x0000 and len(pending) == 1
    assoc.release()


def test_non_ascii_names_match_and_come_back_in_utf8(
    dimse: DimseServer, client: TestClient
) -> None:
    ds = make_instance(patient_name="Müller^Jürgen", charset="ISO_IR 100")
    assert stow(client, [to_bytes(ds)]).status_code == 200
    assoc = associate(dimse)
    query = identifier("STUDY", PatientName="Müller*", StudyInstanceUID="")
    query.SpecificCharacterSet = "ISO_IR 100"
    pending, final = c_find(assoc, query)
    assert final.Status == 0x0000
    assert [str(p.PatientName) for p in pending] == ["Müller^Jürgen"]
    assert pending[0].SpecificCharacterSet == "ISO_IR 192"
    assoc.release()


@dataclass
class _FindEvent:
    """What the C-FIND handler reads of pynetdicom's event, with a C-CANCEL that arrives
    after ``cancel_after`` responses: a race a real peer cannot make repeatable."""

    identifier: Dataset
    cancel_after: int
    asked: int = 0
    request: object = field(
        default_factory=lambda: SimpleNamespace(
            AffectedSOPClassUID=StudyRootQueryRetrieveInformationModelFind
        )
    )
    assoc: object = field(  # what the audit entry names: the association's two AEs
        default_factory=lambda: SimpleNamespace(
            requestor=SimpleNamespace(ae_title="FINDSCU", address="127.0.0.1"),
            acceptor=SimpleNamespace(ae_title="RADCASE"),
        )
    )

    @property
    def is_cancelled(self) -> bool:
        self.asked += 1
        return self.asked > self.cancel_after


def test_c_cancel_stops_a_c_find_with_fe00(dimse: DimseServer, archive: Archive) -> None:
    """PS3.4 C.4.1.2.3: the SCP stops at the cancel and answers 0xFE00."""
    for number in range(30):
        archive.ingest(io.BytesIO(to_bytes(make_instance(patient_name=f"MANY^{number:03d}"))))
    query = identifier("STUDY", PatientName="MANY*", StudyInstanceUID="")
    responses = list(dimse._on_find(_FindEvent(query, cancel_after=5)))  # type: ignore[arg-type]
    assert [status for status, _ in responses] == [0xFF00] * 5 + [0xFE00]
    complete = list(dimse._on_find(_FindEvent(query, cancel_after=10**6)))  # type: ignore[arg-type]
    assert [status for status, _ in complete] == [0xFF00] * 30 + [0x0000]


def test_patient_root_study_level_is_scoped_by_patient_id(
    dimse: DimseServer, studies: dict[str, str]
) -> None:
    assoc = associate(dimse, PatientRootQueryRetrieveInformationModelFind)
    pending, final = c_find(
        assoc,
        identifier("STUDY", PatientID="P3", StudyInstanceUID=""),
        PatientRootQueryRetrieveInformationModelFind,
    )
    assert final.Status == 0x0000
    assert [str(p.StudyInstanceUID) for p in pending] == [studies["P3"]]
    assoc.release()
