"""What the SCP answers when something fails, against a real pynetdicom SCU: the peer's bad
identifier is its fault (0xA900, 0xC000), the archive's refusals answer the one status of
``storage.statuses`` (the same FailureReason STOW-RS gives), and a fault of ours answers the
service's failure status, logged with the association and a traceback."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom import association as pynetdicom_association
from pynetdicom.association import Association
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    Verification,
)
from starlette.testclient import TestClient

import radcase_pacs.dimse.server as server_module
from radcase_pacs.dimse.server import DimseServer, no_delay
from storage.archive import Archive
from storage.blobs.filesystem import FilesystemBlobStore
from storage.errors import ArchiveError, BackendFailure, NotFound, OutOfResources
from storage.statuses import dimse_status
from tests.factories import make_instance, stow, to_bytes

SCU = "FAULTSCU"
FAULT_LOGGER = "radcase_pacs.dimse.statuses"


def associate(server: DimseServer) -> Association:
    ae = AE(ae_title=SCU)
    for context in (
        StudyRootQueryRetrieveInformationModelFind,
        StudyRootQueryRetrieveInformationModelGet,
        CTImageStorage,
        Verification,
    ):
        ae.add_requested_context(context)
    assoc = ae.associate(
        "127.0.0.1",
        server.port,
        ae_title="RADCASE",
        ext_neg=[build_role(CTImageStorage, scu_role=True, scp_role=True)],
        evt_handlers=[(evt.EVT_CONN_OPEN, no_delay), (evt.EVT_C_STORE, lambda event: 0x0000)],
    )
    assert assoc.is_established
    return assoc


def study_query(study_uid: str = "") -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = study_uid
    return ds


def final_find_status(assoc: Association, query: Dataset) -> Dataset:
    responses = list(assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind))
    return responses[-1][0]


def raising(exc: Exception) -> Callable[..., Any]:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise exc

    return fail


def fault_records(caplog: pytest.LogCaptureFixture, service: str) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == FAULT_LOGGER and r.getMessage().startswith(f"{service} from {SCU} ")
    ]


@pytest.fixture
def stored(archive: Archive) -> Dataset:
    ds = make_instance()
    archive.ingest(io.BytesIO(to_bytes(ds)))
    return ds


# -- the peer's fault ---------------------------------------------------------------------


def test_an_identifier_pydicom_cannot_decode_answers_c000_and_one_that_does_not_fit_a900(
    dimse: DimseServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sequence of undefined length whose item never ends: pydicom cannot read it."""
    level = b"\x08\x00\x52\x00CS\x06\x00STUDY "
    unterminated = (
        b"\x08\x00\x10\x11SQ\x00\x00\xff\xff\xff\xff"
        + b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
        + b"\x08\x00\x50\x11UI\x04\x001.2\x00"
    )
    malformed = Dataset()
    encode = pynetdicom_association.encode

    def encode_malformed(ds: Dataset, *args: Any) -> bytes | None:
        return level + unterminated if ds is malformed else encode(ds, *args)

    monkeypatch.setattr(pynetdicom_association, "encode", encode_malformed)
    assoc = associate(dimse)
    unreadable = final_find_status(assoc, malformed)
    assert unreadable.Status == 0xC000
    assert str(unreadable.ErrorComment).startswith("cannot read the identifier")
    ward = study_query()
    ward.QueryRetrieveLevel = "WARD"
    not_fitting = final_find_status(assoc, ward)
    assert not_fitting.Status == 0xA900
    assert "QueryRetrieveLevel" in str(not_fitting.ErrorComment)
    assert assoc.send_c_echo().Status == 0x0000
    assoc.release()


# -- the archive's refusals: one status each, shared with STOW-RS ---------------------------


@pytest.mark.parametrize(
    "failure",
    [BackendFailure("index down"), OutOfResources("index full")],
    ids=lambda e: type(e).__name__,
)
def test_an_archive_failure_in_find_answers_its_one_status(
    dimse: DimseServer, monkeypatch: pytest.MonkeyPatch, failure: ArchiveError
) -> None:
    monkeypatch.setattr(server_module, "find", raising(failure))
    assoc = associate(dimse)
    status = final_find_status(assoc, study_query())
    assert status.Status == dimse_status(failure) != 0xC000
    assert str(status.ErrorComment) == str(failure)
    assoc.release()


@pytest.mark.parametrize(
    "failure",
    [BackendFailure("blob store down"), OutOfResources("no space left on the blob store")],
    ids=lambda e: type(e).__name__,
)
def test_a_store_failure_gives_c_store_the_status_stow_rs_reports_as_failure_reason(
    dimse: DimseServer,
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
    failure: BackendFailure,
) -> None:
    """PS3.18 Table 10.5.3-2 FailureReason takes the PS3.4 codes: the same fault, the same
    code, whichever protocol brought the instance."""
    for write in ("put", "stage"):  # C-STORE puts; STOW-RS stages a batch, then publishes
        monkeypatch.setattr(FilesystemBlobStore, write, raising(failure))

    response: Any = stow(client, [to_bytes(make_instance())])
    assert response.status_code == 503
    (failed,) = response.json()["00081198"]["Value"]
    stow_reason = failed["00081197"]["Value"][0]

    assoc = associate(dimse)
    c_store = assoc.send_c_store(make_instance()).Status
    assoc.release()

    assert stow_reason == c_store == dimse_status(failure)
    assert c_store == (0xA700 if isinstance(failure, OutOfResources) else 0x0110)


# -- faults of ours -----------------------------------------------------------------------


def test_a_fault_in_find_answers_c311_and_is_logged_with_the_association(
    dimse: DimseServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Not 0xC000 "cannot read the identifier": the identifier was fine, our code was not."""
    monkeypatch.setattr(server_module, "find", raising(RuntimeError("injected fault")))
    assoc = associate(dimse)
    with caplog.at_level(logging.ERROR, logger=FAULT_LOGGER):
        status = final_find_status(assoc, study_query())
    assert status.Status == 0xC311  # pynetdicom: C-FIND failure, unable to process
    (record,) = fault_records(caplog, "C-FIND")
    assert "(127.0.0.1:" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)
    assert "injected fault" in caplog.text and "Traceback" in caplog.text
    assert assoc.send_c_echo().Status == 0x0000  # the association carries on
    assoc.release()


def test_a_fault_in_retrieve_answers_unable_to_process_and_is_logged(
    dimse: DimseServer,
    stored: Dataset,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(server_module, "instances_to_retrieve", raising(KeyError("injected")))
    assoc = associate(dimse)
    with caplog.at_level(logging.ERROR, logger=FAULT_LOGGER):
        responses = list(
            assoc.send_c_get(
                study_query(stored.StudyInstanceUID), StudyRootQueryRetrieveInformationModelGet
            )
        )
    # Raised before the sub-operation count: pynetdicom's 0xC413, in the 0xCxxx failures.
    assert responses[-1][0].Status == 0xC413
    (record,) = fault_records(caplog, "C-GET")
    assert record.exc_info is not None and isinstance(record.exc_info[1], KeyError)
    assoc.release()


def test_a_fault_in_c_store_answers_c211_and_stores_nothing(
    dimse: DimseServer,
    archive: Archive,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(Archive, "ingest", raising(AttributeError("injected")))
    ds = make_instance()
    assoc = associate(dimse)
    with caplog.at_level(logging.ERROR, logger=FAULT_LOGGER):
        assert assoc.send_c_store(ds).Status == 0xC211
    (record,) = fault_records(caplog, "C-STORE")
    assert record.exc_info is not None and isinstance(record.exc_info[1], AttributeError)
    assoc.release()
    monkeypatch.undo()
    with pytest.raises(NotFound):
        archive.instances(ds.StudyInstanceUID)
