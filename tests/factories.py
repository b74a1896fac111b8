"""What tests build and send: generated instances, STOW-RS bodies, free loopback ports,
pydicom's shipped test files as the corpus, and the DICOMweb app alone.

A plain module (pytest discourages importing from a conftest). The corpus is listed once per
process, and each file's header is read once (``corpus_header``), however many modules
parametrize over it.
"""

from __future__ import annotations

import functools
import io
import os
import socket
import warnings
from pathlib import Path

import httpx
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from dicomweb.app import create_app as create_dicomweb_app
from dicomweb.context import DicomwebOptions
from storage.archive import Archive

CORPUS_DIR = Path(os.path.dirname(pydicom.__file__)) / "data" / "test_files"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
CORPUS_FILES = sorted(
    path for path in CORPUS_DIR.rglob("*") if path.is_file() and path.suffix.lower() in (".dcm", "")
)
"""Every DICOM file pydicom ships (``.dcm`` or no suffix), readable or not, in name order."""


@functools.cache
def corpus_header(path: Path) -> Dataset | None:
    """A corpus file's data set up to its pixel data, or None when pydicom cannot read it
    (read once per process; callers must not change it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return pydicom.dcmread(path, stop_before_pixels=True, force=True)
        except Exception:
            return None


def corpus_uids(path: Path) -> tuple[str, str, str]:
    """Study, Series and SOP Instance UID of a storable corpus file."""
    ds = corpus_header(path)
    assert ds is not None, path
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)


def _corpus() -> tuple[list[Path], list[Path]]:
    """pydicom's shipped test files that carry a SOP Instance UID, split into those that
    also carry Study and Series UIDs (storable) and those that do not."""
    storable, unplaceable = [], []
    for path in sorted(CORPUS_DIR.rglob("*")):
        if not path.is_file():
            continue
        ds = corpus_header(path)
        if ds is None or "SOPInstanceUID" not in ds:
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
        uid = corpus_uids(path)[2]
        if uid not in seen:
            seen.add(uid)
            unique.append(path)
    return unique


CORPUS_UNIQUE = _unique_by_sop(CORPUS)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


def stow(client: TestClient, parts: list[bytes], url: str = "/dicomweb/studies") -> httpx.Response:
    body, content_type = multipart_body(parts)
    return client.post(
        url,
        content=body,
        headers={"Content-Type": content_type, "Accept": "application/dicom+json"},
    )


def dicomweb_app(archive: Archive, options: DicomwebOptions | None = None) -> Starlette:
    """The DICOMweb app alone over ``archive``, mounted at ``/dicomweb`` as the server mounts
    it, so request paths and the URLs in responses read as they do there."""
    return Starlette(routes=[Mount("/dicomweb", app=create_dicomweb_app(archive, options))])
