"""The teaching API's answers to failures: each archive error the status DICOMweb gives it
(one table, ``storage.statuses``), and a fault of ours 500 with a request id, never a 422."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

import teaching.cases.export as export_module
from radcase_pacs.settings import Settings
from storage.archive import Archive
from storage.errors import (
    ArchiveError,
    BackendFailure,
    DuplicateConflict,
    IdentityMismatch,
    InstanceRejected,
    InvalidQuery,
    NotFound,
    OutOfResources,
    Unavailable,
    UnreadableDataset,
)
from storage.statuses import http_status
from teaching.cases.service import CaseService
from tests.apps import served
from tests.factories import make_instance, stow, to_bytes

ERRORS = [
    NotFound("no such study"),
    InvalidQuery("StudyDate", "not a date"),
    InstanceRejected("refused"),
    UnreadableDataset("not DICOM"),
    IdentityMismatch("no SOP Instance UID"),
    DuplicateConflict("already stored"),
    Unavailable("frames of a truncated pixel data element"),
    BackendFailure("index down"),
    OutOfResources("disk full"),
]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TestClient]:
    """The whole app; a server exception is answered as the server would (500), not
    raised into the test."""
    with served(Settings(data_dir=tmp_path / "data"), raise_server_exceptions=False) as client:
        yield client


def raising(exc: Exception) -> Callable[..., Any]:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise exc

    return fail


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_an_archive_error_answers_the_same_status_on_the_api_as_on_dicomweb(
    server: TestClient, monkeypatch: pytest.MonkeyPatch, error: ArchiveError
) -> None:
    monkeypatch.setattr(CaseService, "search", raising(error))
    monkeypatch.setattr(Archive, "query", raising(error))
    api = server.get("/api/cases")
    dicomweb = server.get("/dicomweb/studies", headers={"Accept": "application/dicom+json"})
    assert api.status_code == dicomweb.status_code == http_status(error)


def test_a_bad_query_is_400_and_a_full_store_507_as_on_dicomweb(
    server: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The two codes the API used to give differently (409 and 503)."""
    monkeypatch.setattr(CaseService, "search", raising(InvalidQuery("q", "unusable")))
    bad = server.get("/api/cases")
    assert bad.status_code == 400
    assert bad.json() == {"detail": "q: unusable"}
    monkeypatch.setattr(CaseService, "search", raising(OutOfResources("disk full")))
    full = server.get("/api/cases")
    assert full.status_code == 507
    rid = full.headers["x-request-id"]
    assert "disk full" not in full.text and rid in full.json()["detail"]


def test_a_bug_in_de_identification_is_a_500_logged_with_the_request_id(
    server: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Not 422 "could not be de-identified": the study is fine, the code is not."""
    instance = make_instance()
    assert stow(server, [to_bytes(instance)]).status_code == 200  # type: ignore[attr-defined]
    monkeypatch.setattr(export_module, "deidentify", raising(KeyError("a deid bug")))
    with caplog.at_level(logging.ERROR, logger="teaching.api.errors"):
        response = server.post(
            "/api/cases", json={"study_instance_uid": instance.StudyInstanceUID, "title": "t"}
        )
    assert response.status_code == 500
    assert "a deid bug" not in response.text
    (record,) = [r for r in caplog.records if r.name == "teaching.api.errors"]
    rid = record.getMessage().split()[1]
    assert len(rid) == 16 and rid in response.json()["detail"]
    assert record.exc_info is not None and isinstance(record.exc_info[1], KeyError)
    assert server.get("/api/cases").json()["total"] == 0


def test_a_source_instance_pydicom_cannot_read_is_the_studys_fault_422(
    server: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance = make_instance()
    assert stow(server, [to_bytes(instance)]).status_code == 200  # type: ignore[attr-defined]
    monkeypatch.setattr(Archive, "read", lambda self, stored: b"\x00" * 200)
    response = server.post(
        "/api/cases", json={"study_instance_uid": instance.StudyInstanceUID, "title": "t"}
    )
    assert response.status_code == 422, response.text
    (item,) = response.json()["detail"]
    assert item["loc"] == ["body", "study_instance_uid"]
    assert "could not be read" in item["msg"]


def test_every_api_response_carries_a_request_id(server: TestClient) -> None:
    first = server.get("/api/codes").headers["x-request-id"]
    second = server.get("/api/codes").headers["x-request-id"]
    assert len(first) == len(second) == 16 and first != second
