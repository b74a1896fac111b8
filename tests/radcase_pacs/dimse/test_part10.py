"""A received data set becomes the PS3.10 file pynetdicom would have made of it, byte for byte,
and the study named in the audit entry of a C-STORE is the one pydicom reads, whether the
element headers are walked or pydicom is asked."""

from __future__ import annotations

import warnings
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
)
from pynetdicom.dsutils import create_file_meta, encode_file_meta

from radcase_pacs.audit.dimse import stored_study
from radcase_pacs.dimse.part10 import CannotWalk, file_meta, received_file, study_instance_uid
from tests.factories import CORPUS_FILES

MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"


@pytest.mark.parametrize(
    ("sop_class", "sop_instance", "syntax"),
    [
        (CTImageStorage, "1.2.3.4", ExplicitVRLittleEndian),
        (CTImageStorage, "1.2.3.45", ImplicitVRLittleEndian),
        (
            "1.2.840.10008.5.1.4.1.1.4",
            "2.25.329800735698586629295641978511506172918",
            JPEG2000Lossless,
        ),
        ("1.2.840.10008.5.1.4.1.1.7", "1.2", ExplicitVRBigEndian),
    ],
)
def test_the_file_meta_is_what_pynetdicom_encodes(
    sop_class: str, sop_instance: str, syntax: str
) -> None:
    expected = encode_file_meta(
        create_file_meta(
            sop_class_uid=sop_class, sop_instance_uid=sop_instance, transfer_syntax=syntax
        )
    )
    assert file_meta(sop_class, sop_instance, syntax) == expected
    data_set = b"\x08\x00\x16\x00UI\x02\x001\x00"
    file = received_file(sop_class, sop_instance, syntax, data_set)
    assert file == b"\x00" * 128 + b"DICM" + expected + data_set


def _file(ds: Dataset, syntax: str) -> bytes:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3"
    ds.file_meta.TransferSyntaxUID = syntax
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _header(**attributes: object) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = "1.2.3"
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


@pytest.mark.parametrize(
    "syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian]
)
def test_the_study_is_found_by_walking_the_headers(syntax: str) -> None:
    data = _file(_header(PatientName="Doe^J", StudyInstanceUID="1.2.840.99"), syntax)
    assert study_instance_uid(data) == "1.2.840.99"
    assert stored_study(data) == "1.2.840.99"


def test_no_study_is_none() -> None:
    data = _file(_header(SeriesInstanceUID="1.2.5"), ExplicitVRLittleEndian)
    assert study_instance_uid(data) is None
    assert stored_study(data) is None


def test_a_sequence_of_undefined_length_before_it_is_left_to_pydicom() -> None:
    item = Dataset()
    item.CodeValue = "X"
    ds = _header(ProcedureCodeSequence=Sequence([item]), StudyInstanceUID="1.2.840.7")
    ds["ProcedureCodeSequence"].is_undefined_length = True
    data = _file(ds, ImplicitVRLittleEndian)
    with pytest.raises(CannotWalk):
        study_instance_uid(data)
    assert stored_study(data) == "1.2.840.7"


def test_bytes_that_are_not_a_file_are_left_to_pydicom() -> None:
    with pytest.raises(CannotWalk):
        study_instance_uid(b"not dicom at all")
    assert stored_study(b"not dicom at all") is None


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda path: path.name)
def test_a_shipped_file_gives_the_study_pydicom_reads(path: Path) -> None:
    data = path.read_bytes()
    try:
        walked = study_instance_uid(data)
    except CannotWalk:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(BytesIO(data), stop_before_pixels=True)
    element = ds.get(0x0020000D)
    expected = str(element.value).strip() if element is not None else None
    assert walked == expected
