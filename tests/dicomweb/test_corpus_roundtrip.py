"""Every file pydicom ships with SOP Instance, Study and Series UIDs goes in through STOW-RS
and comes back byte-identical through WADO-RS with transfer-syntax=*, and its metadata
rebuilds the same data set (bulk data aside)."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from starlette.testclient import TestClient

from tests.conftest import CORPUS, CORPUS_DIR, CORPUS_WITHOUT_STUDY, TRUNCATED, stow
from tests.dicomweb.multipart_util import split_multipart

ANY_SYNTAX = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def _read(data: bytes) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(io.BytesIO(data), force=True)


def _uids(path: Path) -> tuple[str, str, str]:
    ds = _read(path.read_bytes())
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)


def _is_part10(data: bytes) -> bool:
    return data[128:132] == b"DICM"


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: str(p.relative_to(CORPUS_DIR)))
def test_corpus_file_round_trips_byte_identical(client: TestClient, path: Path) -> None:
    original = path.read_bytes()
    response = stow(client, [original])
    assert response.status_code in (200, 202), response.text
    study, series, sop = _uids(path)
    got = client.get(
        f"/dicomweb/studies/{study}/series/{series}/instances/{sop}",
        headers={"Accept": ANY_SYNTAX},
    )
    assert got.status_code == 200
    (part,) = split_multipart(got)
    if response.status_code == 202:
        # Stored with a warning (e.g. MR_truncated.dcm: frames cannot be located), which
        # PS3.18 §10.5.3 reports as 202 with a WarningReason on the stored instance.
        (stored,) = response.json()["00081199"]["Value"]
        assert "00081196" in stored
    if _is_part10(original):
        assert part.body == original
    else:
        # A bare data set gains a preamble and File Meta; its data set bytes stay the same.
        assert response.status_code == 202
        assert part.body.endswith(original)
        assert _is_part10(part.body)


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: str(p.relative_to(CORPUS_DIR)))
def test_corpus_metadata_rebuilds_the_data_set(client: TestClient, path: Path) -> None:
    stow(client, [path.read_bytes()])
    study, series, sop = _uids(path)
    response = client.get(f"/dicomweb/studies/{study}/series/{series}/instances/{sop}/metadata")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/dicom+json")
    (document,) = response.json()
    original = _read(path.read_bytes())
    for element in original:
        if element.tag.group == 0x0002 or element.tag.element == 0:
            continue
        key = f"{element.tag:08X}"
        assert key in document, f"{element.keyword or key} missing from metadata"
        if "BulkDataURI" in document[key]:
            assert document[key]["BulkDataURI"].startswith("http://testserver/dicomweb/")
            continue
        if element.VR == "SQ" or element.tag.is_private:
            continue
        expected = _value(original, element.tag)
        if expected is _INVALID:
            # A malformed value (badVR.dcm: IS '1A') is kept as its text, not dropped.
            assert document[key]["Value"] == [str(v) for v in _raw_values(element)]
            continue
        rebuilt = Dataset.from_json(
            json.dumps({key: document[key]}), bulk_data_uri_handler=lambda *a: b""
        )
        actual = _value(rebuilt, element.tag)
        assert actual == expected, f"{element.keyword or key}: {actual!r} != {expected!r}"


_INVALID = object()


def _raw_values(element: pydicom.DataElement) -> list[str]:
    text = element.repval.strip("'")
    return text.split("\\")


def _value(ds: Dataset, tag: int) -> object:
    try:
        value = ds[tag].value
        if ds[tag].VR in ("DS", "IS"):
            ds[tag].to_json_dict(None, 1024)
    except ValueError:
        return _INVALID
    if ds[tag].VR in ("DS", "IS"):
        # DICOM JSON carries numbers (PS3.18 §F.2.3): compare values, not their text.
        values = value if isinstance(value, pydicom.multival.MultiValue | list) else [value]
        return [float(v) for v in values if v not in (None, "")]
    if isinstance(value, bytes | bytearray):
        return bytes(value).rstrip(b"\x00 ")
    if isinstance(value, pydicom.multival.MultiValue | list | tuple):
        return [str(v) for v in value]
    if value in (None, ""):
        return None
    return str(value)


@pytest.mark.parametrize("path", CORPUS_WITHOUT_STUDY, ids=lambda p: str(p.relative_to(CORPUS_DIR)))
def test_corpus_file_without_study_uid_is_refused_with_0xA900(
    client: TestClient, path: Path
) -> None:
    response = stow(client, [path.read_bytes()])
    assert response.status_code == 409
    (failed,) = response.json()["00081198"]["Value"]
    assert failed["00081197"]["Value"] == [0xA900]


@pytest.mark.parametrize("path", TRUNCATED, ids=lambda p: p.name)
def test_corpus_file_cut_inside_an_element_is_refused_with_0xC000(
    client: TestClient, path: Path
) -> None:
    response = stow(client, [path.read_bytes()])
    assert response.status_code == 409
    (failed,) = response.json()["00081198"]["Value"]
    assert failed["00081197"]["Value"] == [0xC000]
    assert client.get("/dicomweb/studies").json() == []
