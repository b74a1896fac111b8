"""Every file pydicom ships with SOP Instance, Study and Series UIDs goes in through STOW-RS
and comes back byte-identical through WADO-RS with transfer-syntax=*, and its metadata
rebuilds the same data set (bulk data aside).

The corpus is stored once per backend combination (the module's ``corpus`` fixture), one
STOW-RS request per file, and each test reads one file back. A few files share a SOP Instance
UID (the same image in several syntaxes) or reuse a series in another study, which an archive
refuses by design; each file therefore lands in the first tenant of the archive (a view of the
same stores scoped to one institution) where it conflicts with nothing, so every file is
stored as it would be alone.
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pydicom
import pytest
from pydicom.dataset import Dataset
from starlette.testclient import TestClient

from tests.backends import archive_for, backend_names
from tests.dicomweb.multipart_util import split_multipart
from tests.factories import (
    CORPUS,
    CORPUS_DIR,
    CORPUS_WITHOUT_STUDY,
    TRUNCATED,
    corpus_uids,
    dicomweb_app,
    stow,
)

ANY_SYNTAX = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def _read(data: bytes) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(io.BytesIO(data), force=True)


def _is_part10(data: bytes) -> bool:
    return data[128:132] == b"DICM"


def _corpus_id(path: Path) -> str:
    return str(path.relative_to(CORPUS_DIR))


@dataclass
class Tenant:
    """One tenant's view of the archive, what it holds, and a client of its DICOMweb app."""

    client: TestClient
    sops: set[str] = field(default_factory=set)
    series_study: dict[str, str] = field(default_factory=dict)

    def admits(self, study: str, series: str, sop: str) -> bool:
        return sop not in self.sops and self.series_study.get(series, study) == study

    def hold(self, study: str, series: str, sop: str) -> None:
        self.sops.add(sop)
        self.series_study[series] = study


@dataclass(frozen=True)
class Stored:
    """Where a corpus file was stored and the STOW-RS response it got."""

    client: TestClient
    response: httpx.Response


@pytest.fixture(scope="module", params=backend_names())
def corpus(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[Path, Stored]]:
    """Every storable corpus file, each stored by a STOW-RS request of its own."""
    with ExitStack() as stack:
        archive = stack.enter_context(archive_for(request.param, tmp_path_factory.mktemp("corpus")))
        tenants: list[Tenant] = []
        stored = {}
        for path in CORPUS:
            uids = corpus_uids(path)
            tenant = next((t for t in tenants if t.admits(*uids)), None)
            if tenant is None:
                view = archive.with_tenant(f"corpus{len(tenants)}")
                tenant = Tenant(stack.enter_context(TestClient(dicomweb_app(view))))
                tenants.append(tenant)
            tenant.hold(*uids)
            stored[path] = Stored(tenant.client, stow(tenant.client, [path.read_bytes()]))
        yield stored


@pytest.mark.parametrize("path", CORPUS, ids=_corpus_id)
def test_corpus_file_round_trips_byte_identical(corpus: dict[Path, Stored], path: Path) -> None:
    client, response = corpus[path].client, corpus[path].response
    original = path.read_bytes()
    assert response.status_code in (200, 202), response.text
    study, series, sop = corpus_uids(path)
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


@pytest.mark.parametrize("path", CORPUS, ids=_corpus_id)
def test_corpus_metadata_rebuilds_the_data_set(corpus: dict[Path, Stored], path: Path) -> None:
    client = corpus[path].client
    study, series, sop = corpus_uids(path)
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


@pytest.mark.backends
@pytest.mark.parametrize("path", CORPUS_WITHOUT_STUDY, ids=_corpus_id)
def test_corpus_file_without_study_uid_is_refused_with_0xA900(
    dicomweb_client: TestClient, path: Path
) -> None:
    response = stow(dicomweb_client, [path.read_bytes()])
    assert response.status_code == 409
    (failed,) = response.json()["00081198"]["Value"]
    assert failed["00081197"]["Value"] == [0xA900]
    assert dicomweb_client.get("/dicomweb/instances").json() == []


@pytest.mark.backends
@pytest.mark.parametrize("path", TRUNCATED, ids=lambda p: p.name)
def test_corpus_file_cut_inside_an_element_is_refused_with_0xC000(
    dicomweb_client: TestClient, path: Path
) -> None:
    response = stow(dicomweb_client, [path.read_bytes()])
    assert response.status_code == 409
    (failed,) = response.json()["00081198"]["Value"]
    assert failed["00081197"]["Value"] == [0xC000]
    assert dicomweb_client.get("/dicomweb/studies").json() == []
