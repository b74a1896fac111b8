"""Shared fixtures: real stores in temp folders, the ASGI app, a real server on a free
loopback port, pydicom's test files as the corpus and generated studies.

Every test using ``client`` or ``live_server`` also checks, at teardown, that the audit log
holds an entry of the right action for every clinical DICOMweb request the test made.
"""

from __future__ import annotations

import io
import os
import re
import socket
import threading
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
import uvicorn
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from starlette.applications import Starlette
from starlette.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from radcase_pacs.app import create_app
from radcase_pacs.deployment import Deployment, open_deployment
from radcase_pacs.settings import Settings
from storage.archive import Archive
from storage.blobs.filesystem import FilesystemBlobStore
from storage.cache.memory import MemoryCache
from storage.index.sqlite import SqliteIndex
from storage.stores import Stores

# The protocol and teaching suites exercise what a server answers, not who may ask: they run
# with authentication off (as a loopback demo would). The auth tests turn it on explicitly.
os.environ.setdefault("RADCASE_AUTH", "off")

CORPUS_DIR = Path(os.path.dirname(pydicom.__file__)) / "data" / "test_files"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def _corpus() -> tuple[list[Path], list[Path]]:
    """pydicom's shipped test files that carry a SOP Instance UID, split into those that
    also carry Study and Series UIDs (storable) and those that do not."""
    storable, unplaceable = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in sorted(CORPUS_DIR.rglob("*")):
            if not path.is_file():
                continue
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            except Exception:
                continue
            if "SOPInstanceUID" not in ds:
                continue
            if "StudyInstanceUID" in ds and "SeriesInstanceUID" in ds:
                storable.append(path)
            else:
                unplaceable.append(path)
    return storable, unplaceable


CORPUS_ALL, CORPUS_WITHOUT_STUDY = _corpus()
# Files cut off in the middle of a data element (an element declares more bytes than the
# file holds): not a readable data set, refused with 0xC000. MR_truncated.dcm is different:
# its encoding is intact, only its pixel data is shorter than the image needs.
TRUNCATED = [p for p in CORPUS_ALL if p.name == "rtplan_truncated.dcm"]
CORPUS = [p for p in CORPUS_ALL if p not in TRUNCATED]


def _unique_by_sop(paths: list[Path]) -> list[Path]:
    """The corpus holds a few files sharing a SOP Instance UID with different content (the
    same image in several syntaxes); an archive keeps the first. This picks one per UID."""
    seen: set[str] = set()
    unique = []
    for path in paths:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            uid = str(pydicom.dcmread(path, stop_before_pixels=True, force=True).SOPInstanceUID)
        if uid not in seen:
            seen.add(uid)
            unique.append(path)
    return unique


CORPUS_UNIQUE = _unique_by_sop(CORPUS)


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Stores]:
    """Opened embedded stores (tests/dicomweb runs over every backend combination instead)."""
    opened = Stores(
        index=SqliteIndex(tmp_path / "index.sqlite3"),
        blobs=FilesystemBlobStore(tmp_path / "blobs"),
        cache=MemoryCache(64 * 1024 * 1024),
    )
    opened.open()
    yield opened
    opened.close()


@pytest.fixture
def archive(stores: Stores) -> Archive:
    """The default tenant's archive over ``stores`` (no ingest observers: what a test stores
    through it is not counted or taken in as a KOS; the deployment's archive is)."""
    return Archive(stores)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


CLINICAL_ROOT = re.compile(r"^/dicomweb(/|$)")
STUDY_IN_PATH = re.compile(r"/studies/([^/]+)")
SEARCHES = ("/studies", "/series", "/instances")
# Refused by authentication before the clinical app: nothing was read, nothing to audit.
NOT_ADMITTED = (401, 403)


def expected_action(method: str, path: str) -> str:
    """The action a request on the clinical root must be audited as (written here from
    PS3.18's resource names, not taken from the middleware)."""
    if method in ("GET", "HEAD"):
        return "clinical.search" if path.rstrip("/").endswith(SEARCHES) else "clinical.read"
    return {"POST": "clinical.store", "DELETE": "clinical.delete"}.get(method, "clinical.other")


class ClinicalRequests:
    """The app as tests reach it, noting each clinical DICOMweb request (CORS preflights
    aside) and its status, so that teardown can hold the audit log to one entry each."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.requests: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:  # client.app.state... reaches the app's
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] == "OPTIONS"
            or not CLINICAL_ROOT.match(scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        request = {"method": scope["method"], "path": scope["path"], "status": None}
        self.requests.append(request)

        async def noting_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                request["status"] = message["status"]
            await send(message)

        await self.app(scope, receive, noting_status)

    def assert_audited(self) -> None:
        admitted = [r for r in self.requests if r["status"] not in NOT_ADMITTED]
        expected = Counter(expected_action(r["method"], r["path"]) for r in admitted)
        _, entries = self.app.state.audit.search(
            None, channel="http", limit=len(self.requests) + 1000
        )
        clinical = [e for e in entries if e.action.startswith("clinical.")]
        recorded = Counter(e.action for e in clinical)
        missing = expected - recorded
        assert not missing, f"clinical requests without an audit entry: {dict(missing)}"
        assert len(clinical) <= len(self.requests), "more audit entries than requests"
        in_paths = {m.group(1) for r in admitted if (m := STUDY_IN_PATH.search(r["path"]))}
        unaudited = in_paths - {e.study_uid for e in clinical}
        assert not unaudited, f"studies read without an audit entry naming them: {unaudited}"


@pytest.fixture
def deployment(settings: Settings, stores: Stores) -> Iterator[Deployment]:
    """The whole deployment over the test's clinical stores (the same data ``archive``
    sees), its other stores in the test's folder."""
    with open_deployment(settings, clinical=stores) as opened:
        yield opened


@pytest.fixture
def client(deployment: Deployment) -> Iterator[TestClient]:
    app = ClinicalRequests(create_app(deployment))
    with TestClient(app) as test_client:
        yield test_client
        app.assert_audited()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live_server(deployment: Deployment) -> Iterator[str]:
    """A real uvicorn server on a free loopback port; yields the DICOMweb root URL."""
    port = free_port()
    app = ClinicalRequests(create_app(deployment))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/dicomweb"
        app.assert_audited()
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def make_instance(
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    patient_name: str = "DOE^JOHN",
    patient_id: str = "PID1",
    study_date: str = "20240102",
    study_time: str = "101500",
    modality: str = "CT",
    accession: str = "ACC1",
    study_description: str = "CT CHEST",
    series_number: int = 1,
    instance_number: int = 1,
    rows: int = 8,
    columns: int = 8,
    frames: int = 1,
    charset: str | None = None,
) -> Dataset:
    """A small, valid CT-like instance with native 16-bit pixel data."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if charset:
        ds.SpecificCharacterSet = charset
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SOPInstanceUID = sop_uid or generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "M"
    ds.StudyDate = study_date
    ds.StudyTime = study_time
    ds.AccessionNumber = accession
    ds.StudyDescription = study_description
    ds.ReferringPhysicianName = "REF^DOCTOR"
    ds.StudyID = "S1"
    ds.Modality = modality
    ds.SeriesNumber = series_number
    ds.InstanceNumber = instance_number
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelData = bytes(
        (i * 7 + instance_number) % 256 for i in range(rows * columns * 2 * frames)
    )
    return ds


def to_bytes(ds: Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def multipart_body(parts: list[bytes], boundary: str = "test-boundary-1234") -> tuple[bytes, str]:
    """A STOW-RS body of application/dicom parts and its Content-Type."""
    chunks = []
    for part in parts:
        chunks.append(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode())
        chunks.append(part)
        chunks.append(b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    return b"".join(chunks), content_type


def stow(client: TestClient, parts: list[bytes], url: str = "/dicomweb/studies") -> object:
    body, content_type = multipart_body(parts)
    return client.post(
        url,
        content=body,
        headers={"Content-Type": content_type, "Accept": "application/dicom+json"},
    )
