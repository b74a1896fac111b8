"""The data the benchmark stores, generated on every run (nothing is downloaded).

A *series template* says what a series looks like (modality, SOP class, size, slices, frames);
``Series.make`` turns it into Part 10 instances with fresh UIDs for one patient. Fresh UIDs
matter twice: a server must really ingest what a round stores (an identical resend may be
answered "already stored" without work), and a "cold" read must be of a series the server
has never served.

Pixels are a smooth phantom (an ellipse of soft tissue with a brighter disc that moves from
slice to slice) plus a little noise: realistic sizes, uncompressed Explicit VR Little Endian,
so neither server transcodes and both serve the bytes they stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from io import BytesIO
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    XRayAngiographicImageStorage,
    generate_uid,
)


@dataclass(frozen=True)
class Template:
    """What one series of the benchmark looks like."""

    name: str
    modality: str
    sop_class: str
    size: int
    instances: int
    frames: int = 1
    bits: int = 16

    def thinned(self, by: int) -> Template:
        """The same series with a ``by``-th of its instances and frames (at least one of each),
        under the same name: the benchmark's set-up check stores little but takes every figure."""
        return replace(
            self, instances=max(1, self.instances // by), frames=max(1, self.frames // by)
        )


CT_100 = Template("CT 100 slices", "CT", CTImageStorage, 512, 100)
CT_600 = Template("CT 600 slices", "CT", CTImageStorage, 512, 600)
MR_SERIES = Template("MR series", "MR", MRImageStorage, 256, 60)
MULTIFRAME = Template("XA 50 frames", "XA", XRayAngiographicImageStorage, 512, 1, 50, 8)


@dataclass(frozen=True)
class Patient:
    patient_id: str
    name: str


@dataclass
class Series:
    """One generated series: its UIDs and the Part 10 bytes of each instance, in order."""

    template: Template
    patient: Patient
    study_uid: str
    series_uid: str
    sop_uids: list[str] = field(default_factory=list)
    parts: list[bytes] = field(default_factory=list)

    @classmethod
    def make(
        cls,
        template: Template,
        patient: Patient,
        *,
        study_uid: str | None = None,
        description: str = "",
        date: str = "20240101",
    ) -> Series:
        series = cls(template, patient, study_uid or generate_uid(), generate_uid())
        study = _study(patient, series.study_uid, description or template.name, date)
        for number in range(1, template.instances + 1):
            ds = _instance(study, series.series_uid, template, number)
            series.sop_uids.append(str(ds.SOPInstanceUID))
            series.parts.append(_part10(ds))
        return series

    @property
    def nbytes(self) -> int:
        return sum(len(part) for part in self.parts)

    def frame_paths(self) -> Iterator[str]:
        """The WADO-RS path of every frame of the series (PS3.18 §10.4.1.1.4 Frame List)."""
        for sop_uid in self.sop_uids:
            for frame in range(1, self.template.frames + 1):
                yield f"{self.instance_path(sop_uid)}/frames/{frame}"

    def instance_path(self, sop_uid: str) -> str:
        return f"/studies/{self.study_uid}/series/{self.series_uid}/instances/{sop_uid}"

    @property
    def path(self) -> str:
        return f"/studies/{self.study_uid}/series/{self.series_uid}"

    def write(self, folder: Path) -> list[Path]:
        """The instances as files (for DIMSE tools, which send files)."""
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for sop_uid, part in zip(self.sop_uids, self.parts, strict=True):
            path = folder / f"{sop_uid}.dcm"
            path.write_bytes(part)
            paths.append(path)
        return paths


def _study(patient: Patient, study_uid: str, description: str, date: str) -> Dataset:
    ds = Dataset()
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    ds.PatientBirthDate = "19600101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study_uid
    ds.StudyDate = date
    ds.StudyTime = "083000"
    ds.StudyID = "1"
    ds.AccessionNumber = study_uid[-16:]
    ds.StudyDescription = description
    ds.ReferringPhysicianName = "Referrer^Rita"
    return ds


def _instance(study: Dataset, series_uid: str, template: Template, number: int) -> Dataset:
    ds = Dataset()
    ds.update(study)
    ds.SOPClassUID = template.sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = series_uid
    ds.Modality = template.modality
    ds.SeriesNumber = 1
    ds.SeriesDescription = template.name
    ds.InstanceNumber = number
    ds.ImagePositionPatient = [-200.0, -200.0, float(number)]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [0.78125, 0.78125]
    ds.SliceThickness = 1.0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = template.size
    ds.BitsAllocated = ds.BitsStored = template.bits
    ds.HighBit = template.bits - 1
    ds.PixelRepresentation = 0
    if template.bits == 16:
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
        ds.WindowCenter = 40
        ds.WindowWidth = 400
    if template.frames > 1:
        ds.NumberOfFrames = template.frames
        ds.FrameIncrementPointer = 0x00181063  # Frame Time
        ds.FrameTime = 66.7
    frames = [_pixels(template, number + f) for f in range(template.frames)]
    ds.PixelData = b"".join(frames)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return ds


_PHANTOMS: dict[tuple[int, int], np.ndarray] = {}


def _phantom(size: int, bits: int) -> np.ndarray:
    """A body-like ellipse on air, made once per size."""
    key = (size, bits)
    if key not in _PHANTOMS:
        y, x = np.mgrid[0:size, 0:size] / size - 0.5
        body = (x / 0.42) ** 2 + (y / 0.34) ** 2 < 1
        image = np.where(body, 1064 - 300 * (x**2 + y**2), 24)
        if bits == 8:
            image = image / 1100 * 200
        noise = np.random.default_rng(size).normal(0, 6 if bits == 16 else 2, (size, size))
        _PHANTOMS[key] = image + noise
    return _PHANTOMS[key]


def _pixels(template: Template, index: int) -> bytes:
    """The phantom with a bright disc whose place depends on ``index``: every slice differs."""
    size = template.size
    image = _phantom(size, template.bits).copy()
    centre = size * (0.3 + 0.4 * ((index * 7) % 50) / 50)
    y, x = np.ogrid[0:size, 0:size]
    image[(x - centre) ** 2 + (y - size / 2) ** 2 < (size / 12) ** 2] += (
        600 if template.bits == 16 else 50
    )
    dtype = np.uint16 if template.bits == 16 else np.uint8
    return np.clip(image, 0, np.iinfo(dtype).max).astype(dtype).tobytes()


def _part10(ds: Dataset) -> bytes:
    buffer = BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()
