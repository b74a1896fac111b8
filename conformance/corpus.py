"""The corpus the suite uploads, made in memory on every run.

Every UID is fresh (``generate_uid``) and every Patient ID carries a per-run token, so two runs
against one shared server never see each other's data, and a check can tell "our" results
from whatever else the server holds. pydicom's own test files get fresh UIDs too, for the same
reason; their pixel data and attributes are otherwise untouched.

What is in it, and why:

* ``utf8``/``utf8_b``: two CT instances of one series, patient "Müller^Jürgen" in UTF-8
  (ISO_IR 192) — PN matching and the UTF-8 JSON of PS3.18 Annex F.
* ``latin1``: an MR, patient "Gérard^Hélène" in ISO_IR 100 — the server must decode Latin-1
  and answer in UTF-8.
* ``multiframe``: 5 frames of 16x16 MONOCHROME2 16-bit, every frame different — frame
  retrieval by number; ``ct_small`` (pydicom's CT_small.dcm) in the same study makes
  ModalitiesInStudy CT\\MR.
* ``mr_small``, ``jpeg2000`` (a JPEG 2000 NM), ``rtplan`` (no pixel data): real-world files.
* Study dates 2010, 2015, 2018, 2021, 2023 for range matching.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field
from io import BytesIO

from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)

SIZE = 16
FRAMES = 5


@dataclass
class Instance:
    """One instance of the corpus: its dataset and the Part 10 bytes the suite sends."""

    label: str
    dataset: Dataset
    data: bytes = b""

    @property
    def study_uid(self) -> str:
        return str(self.dataset.StudyInstanceUID)

    @property
    def series_uid(self) -> str:
        return str(self.dataset.SeriesInstanceUID)

    @property
    def sop_uid(self) -> str:
        return str(self.dataset.SOPInstanceUID)

    @property
    def sop_class(self) -> str:
        return str(self.dataset.SOPClassUID)

    def frame(self, number: int) -> bytes:
        """Frame ``number`` (1-based) of native (uncompressed) pixel data, as sent."""
        pixels = bytes(self.dataset.PixelData)
        frames = int(self.dataset.get("NumberOfFrames", 1) or 1)
        length = len(pixels) // frames
        return pixels[(number - 1) * length : number * length]


@dataclass
class Corpus:
    token: str
    instances: list[Instance] = field(default_factory=list)

    @property
    def patient_id_prefix(self) -> str:
        return f"CF{self.token}"

    def __getitem__(self, label: str) -> Instance:
        return next(i for i in self.instances if i.label == label)

    def study_uids(self) -> list[str]:
        return list(dict.fromkeys(i.study_uid for i in self.instances))

    def in_study(self, study_uid: str) -> list[Instance]:
        return [i for i in self.instances if i.study_uid == study_uid]

    def in_series(self, series_uid: str) -> list[Instance]:
        return [i for i in self.instances if i.series_uid == series_uid]

    def modalities(self, study_uid: str) -> set[str]:
        return {str(i.dataset.Modality) for i in self.in_study(study_uid)}

    def extra_instance(self, label: str) -> Instance:
        """A CT instance in a study of its own, of a patient outside the corpus's Patient ID
        prefix: for checks that store something of their own without changing what searches
        of the corpus find."""
        study = _study(f"XF{self.token}", "Extra^Patient", None, "20240101", label)
        return _encoded(Instance(label, _image(study, generate_uid(), "CT", CTImageStorage, 91)))


def _pixels(frames: int, seed: int) -> bytes:
    """Frame ``f`` pixel ``p`` holds ``seed*1000 + f*256 + p``: every frame is different."""
    values = [
        (seed * 1000 + f * 256 + p) & 0xFFFF for f in range(frames) for p in range(SIZE * SIZE)
    ]
    return b"".join(v.to_bytes(2, "little") for v in values)


def _study(patient_id: str, name: str, charset: str | None, date: str, description: str) -> Dataset:
    ds = Dataset()
    if charset:
        ds.SpecificCharacterSet = charset
    ds.PatientName = name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = generate_uid()
    ds.StudyDate = date
    ds.StudyTime = "101500"
    ds.StudyID = "1"
    ds.AccessionNumber = patient_id[-16:]
    ds.StudyDescription = description
    ds.ReferringPhysicianName = ""
    return ds


def _image(
    study: Dataset, series_uid: str, modality: str, sop_class: str, number: int, frames: int = 1
) -> Dataset:
    ds = Dataset()
    for keyword in (
        "SpecificCharacterSet",
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyInstanceUID",
        "StudyDate",
        "StudyTime",
        "StudyID",
        "AccessionNumber",
        "StudyDescription",
        "ReferringPhysicianName",
    ):
        if keyword in study:
            setattr(ds, keyword, study.data_element(keyword).value)  # type: ignore[union-attr]
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = series_uid
    ds.Modality = modality
    ds.SeriesNumber = number // 10 or 1
    ds.InstanceNumber = number % 10 or 1
    ds.SeriesDescription = f"conformance {modality}"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = SIZE
    ds.Columns = SIZE
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    if frames > 1:
        ds.NumberOfFrames = frames
        ds.FrameIncrementPointer = 0x00181063  # Frame Time
        ds.FrameTime = 100.0
    ds.PixelData = _pixels(frames, number)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def _encoded(instance: Instance) -> Instance:
    ds = instance.dataset
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    buffer = BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    instance.data = buffer.getvalue()
    return instance


def _test_file(label: str, filename: str, study: Dataset, date: str) -> Instance | None:
    """pydicom's test file ``filename`` moved into ``study`` (fresh series and SOP UIDs)."""
    path = get_testdata_file(filename)
    if path is None:
        return None
    ds = dcmread(path)
    ds.StudyInstanceUID = study.StudyInstanceUID
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.PatientID = study.PatientID
    ds.PatientName = study.PatientName
    ds.StudyDate = date
    return _encoded(Instance(label, ds))


def build_corpus() -> Corpus:
    token = "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(8))
    corpus = Corpus(token)
    pid = corpus.patient_id_prefix

    muller = _study(f"{pid}-1", "Müller^Jürgen", "ISO_IR 192", "20150310", "utf8 study")
    ct_series = generate_uid()
    corpus.instances += [
        _encoded(Instance("utf8", _image(muller, ct_series, "CT", CTImageStorage, 11))),
        _encoded(Instance("utf8_b", _image(muller, ct_series, "CT", CTImageStorage, 12))),
    ]
    gerard = _study(f"{pid}-2", "Gérard^Hélène", "ISO_IR 100", "20180620", "latin1 study")
    corpus.instances.append(
        _encoded(Instance("latin1", _image(gerard, generate_uid(), "MR", MRImageStorage, 21)))
    )
    doe = _study(f"{pid}-3", "Doe^John", None, "20211105", "multi-frame study")
    multiframe = _image(doe, generate_uid(), "MR", MRImageStorage, 31, frames=FRAMES)
    corpus.instances.append(_encoded(Instance("multiframe", multiframe)))
    extra = [_test_file("ct_small", "CT_small.dcm", doe, "20211105")]
    roe = _study(f"{pid}-4", "Roe^Jane", None, "20230115", "real files")
    extra += [
        _test_file("mr_small", "MR_small.dcm", roe, "20230115"),
        _test_file("jpeg2000", "JPEG2000.dcm", roe, "20230115"),
    ]
    plan = _study(f"{pid}-5", "Poe^Edgar", None, "20100501", "rt plan")
    extra.append(_test_file("rtplan", "rtplan.dcm", plan, "20100501"))
    corpus.instances += [i for i in extra if i is not None]
    return corpus
