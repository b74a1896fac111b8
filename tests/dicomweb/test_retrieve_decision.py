"""A retrieve decides before it answers (PS3.18 §10.4.3, §8.7.8.2): instances that cannot be
sent in an acceptable transfer syntax are left out of a complete body with 206 and a Warning,
or refused with 406, never cut off mid-body.

The study holds two instances stored in the same syntax, JPEG Extended (12-bit): one decodes
with the installed decoders, the other does not (its scan header is one libjpeg refuses), so
only what ingest recorded about each instance can tell them apart."""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid
from starlette.testclient import TestClient

from radcase_pacs.settings import Settings
from storage.archive import Archive
from storage.stores import Stores
from tests.apps import served
from tests.dicomweb.multipart_util import boundary_of, split_multipart
from tests.factories import CORPUS_DIR, stow, to_bytes

EXPLICIT_LE = "1.2.840.10008.1.2.1"
JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"
AS_EXPLICIT_LE = f'multipart/related; type="application/dicom"; transfer-syntax={EXPLICIT_LE}'
AS_STORED = 'multipart/related; type="application/dicom"; transfer-syntax=*'
DECODABLE = "JPGExtended.dcm"
UNDECODABLE = "JPEG-lossy.dcm"


def _read(data: bytes) -> pydicom.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(io.BytesIO(data))


def _into(name: str, study_uid: str, series_uid: str) -> bytes:
    """A corpus file as a new instance of the given study and series (the two files share a
    SOP Instance UID), pixel data untouched."""
    ds = _read((CORPUS_DIR / name).read_bytes())
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    return to_bytes(ds)


class Study:
    """The two instances, as stored, and their URLs."""

    def __init__(self, client: TestClient) -> None:
        self.uid = generate_uid()
        self.series = {DECODABLE: generate_uid(), UNDECODABLE: generate_uid()}
        self.stored = {name: _into(name, self.uid, s) for name, s in self.series.items()}
        self.sop = {name: str(_read(data).SOPInstanceUID) for name, data in self.stored.items()}
        assert stow(client, list(self.stored.values())).status_code == 200  # type: ignore[attr-defined]

    @property
    def url(self) -> str:
        return f"/dicomweb/studies/{self.uid}"

    def series_url(self, name: str) -> str:
        return f"{self.url}/series/{self.series[name]}"

    def instance_url(self, name: str) -> str:
        return f"{self.series_url(name)}/instances/{self.sop[name]}"


@pytest.fixture
def study(client: TestClient) -> Study:
    return Study(client)


def _complete(response: object) -> bytes:
    """The body, checked to end with the multipart close delimiter (RFC 2046 §5.1.1)."""
    body: bytes = response.content  # type: ignore[attr-defined]
    boundary = boundary_of(response.headers["content-type"])  # type: ignore[attr-defined]
    assert body.rstrip(b"\r\n").endswith(f"--{boundary}--".encode()), body[-80:]
    return body


def test_a_study_with_an_undecodable_instance_asked_as_explicit_le_is_206_without_it(
    client: TestClient, study: Study
) -> None:
    response = client.get(study.url, headers={"Accept": AS_EXPLICIT_LE})
    assert response.status_code == 206
    _complete(response)
    (part,) = split_multipart(response)
    assert part.headers["content-type"] == f"application/dicom; transfer-syntax={EXPLICIT_LE}"
    assert part.headers["content-location"].endswith(study.sop[DECODABLE])
    sent = _read(part.body)
    assert sent.file_meta.TransferSyntaxUID == EXPLICIT_LE
    original = _read(study.stored[DECODABLE])
    assert np.array_equal(sent.pixel_array, original.pixel_array)
    warning = response.headers.get_list("warning")
    assert warning[0].startswith('299 radcase-pacs "1 of 2 instances are not in this response')
    assert study.sop[UNDECODABLE] in warning[1]
    assert "does not decode" in warning[1]


def test_over_a_real_socket_the_partial_answer_arrives_whole(
    live_server: str, archive: Archive
) -> None:
    """Through uvicorn: the connection ends with the body, not before it."""
    study_uid, series_uid = generate_uid(), generate_uid()
    for name in (DECODABLE, UNDECODABLE):
        archive.ingest(io.BytesIO(_into(name, study_uid, series_uid)))
    response = httpx.get(
        f"{live_server}/studies/{study_uid}", headers={"Accept": AS_EXPLICIT_LE}, timeout=60
    )
    assert response.status_code == 206
    _complete(response)
    (part,) = split_multipart(response)
    assert _read(part.body).file_meta.TransferSyntaxUID == EXPLICIT_LE


def test_the_same_study_asked_as_stored_is_200_with_every_instance_byte_for_byte(
    client: TestClient, study: Study
) -> None:
    response = client.get(study.url, headers={"Accept": AS_STORED})
    assert response.status_code == 200
    _complete(response)
    parts = split_multipart(response)
    assert sorted(p.body for p in parts) == sorted(study.stored.values())
    assert all(f"transfer-syntax={JPEG_EXTENDED}" in p.headers["content-type"] for p in parts)
    assert "warning" not in response.headers


def test_each_part_takes_the_first_acceptable_syntax_it_can_be_sent_in(
    client: TestClient, study: Study
) -> None:
    """PS3.18 §8.7.8.2: the Selected Transfer Syntax may differ from part to part."""
    accept = f"{AS_EXPLICIT_LE}, {AS_STORED}; q=0.5"
    response = client.get(study.url, headers={"Accept": accept})
    assert response.status_code == 200
    _complete(response)
    by_sop = {p.headers["content-location"].rsplit("/", 1)[1]: p for p in split_multipart(response)}
    assert EXPLICIT_LE in by_sop[study.sop[DECODABLE]].headers["content-type"]
    assert by_sop[study.sop[UNDECODABLE]].body == study.stored[UNDECODABLE]
    assert "transfer-syntax" not in response.headers["content-type"]


def test_a_series_none_of_whose_instances_decodes_is_406_saying_why(
    client: TestClient, study: Study
) -> None:
    response = client.get(study.series_url(UNDECODABLE), headers={"Accept": AS_EXPLICIT_LE})
    assert response.status_code == 406
    assert study.sop[UNDECODABLE] in response.text
    assert "does not decode" in response.text
    assert "transfer-syntax=*" in response.text


def test_one_undecodable_instance_is_406_or_the_next_acceptable_syntax(
    client: TestClient, study: Study
) -> None:
    url = study.instance_url(UNDECODABLE)
    bare = f"application/dicom; transfer-syntax={EXPLICIT_LE}"
    refused = client.get(url, headers={"Accept": bare})
    assert refused.status_code == 406
    assert "does not decode" in refused.text
    fallback = client.get(url, headers={"Accept": f"{bare}, application/dicom; q=0.5"})
    assert fallback.status_code == 406  # application/dicom alone means Explicit VR LE too
    as_stored = client.get(
        url, headers={"Accept": f"{bare}, application/dicom; transfer-syntax=*; q=0.5"}
    )
    assert as_stored.status_code == 200
    assert as_stored.content == study.stored[UNDECODABLE]
    assert as_stored.headers["content-type"] == (
        f"application/dicom; transfer-syntax={JPEG_EXTENDED}"
    )


def test_wado_uri_refuses_a_named_syntax_the_instance_cannot_be_sent_in(
    client: TestClient, study: Study
) -> None:
    query = (
        f"/dicomweb/wado?requestType=WADO&studyUID={study.uid}"
        f"&seriesUID={study.series[UNDECODABLE]}&objectUID={study.sop[UNDECODABLE]}"
        "&contentType=application/dicom"
    )
    refused = client.get(query + f"&transferSyntax={EXPLICIT_LE}")
    assert refused.status_code == 406
    assert "does not decode" in refused.text
    unnamed = client.get(query)  # no syntax named: the stored bytes, their File Meta says which
    assert unnamed.status_code == 200
    assert unnamed.content == study.stored[UNDECODABLE]


# -- a pixel stream that fails although nothing recorded says so ---------------------------------


def _forget_decode_problem(stores: Stores, sop_uid: str) -> None:
    """The row as an instance stored before decode problems were recorded looks."""
    database = stores.index.database  # type: ignore[attr-defined]
    with database.transaction() as cur:
        cur.execute("UPDATE instances SET decode_problem = NULL WHERE sop_uid = ?", (sop_uid,))


def test_one_instance_is_transcoded_before_the_status_line_so_a_failure_is_still_a_406(
    client: TestClient, stores: Stores, study: Study
) -> None:
    _forget_decode_problem(stores, study.sop[UNDECODABLE])
    url = study.instance_url(UNDECODABLE)
    response = client.get(
        url, headers={"Accept": f"application/dicom; transfer-syntax={EXPLICIT_LE}"}
    )
    assert response.status_code == 406
    assert "cannot be converted to Explicit VR Little Endian" in response.text
    accept = f"{AS_EXPLICIT_LE}, {AS_STORED}; q=0.5"
    fallback = client.get(url, headers={"Accept": accept})
    assert fallback.status_code == 200
    (part,) = split_multipart(fallback)
    assert part.body == study.stored[UNDECODABLE]


@pytest.fixture
def lenient_client(tmp_path: Path, stores: Stores) -> Iterator[TestClient]:
    """A client that returns what the server sent when the app raised mid-body."""
    settings = Settings(data_dir=tmp_path / "lenient")
    with served(settings, stores=stores, raise_server_exceptions=False) as client:
        yield client


def test_a_part_that_fails_mid_body_ends_it_without_the_close_delimiter_and_is_logged(
    client: TestClient,
    lenient_client: TestClient,
    stores: Stores,
    study: Study,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Rather than a well-formed body that silently lacks an instance: every multipart reader
    reports a body without its close delimiter."""
    _forget_decode_problem(stores, study.sop[UNDECODABLE])
    with caplog.at_level(logging.ERROR, logger="dicomweb.wado"):
        response = lenient_client.get(study.url, headers={"Accept": AS_EXPLICIT_LE})
    boundary = boundary_of(response.headers["content-type"])
    assert not response.content.rstrip(b"\r\n").endswith(f"--{boundary}--".encode())
    (record,) = [r for r in caplog.records if study.sop[UNDECODABLE] in r.getMessage()]
    assert "did not transcode" in record.getMessage()
