"""Whose date shift applies when the Patient ID cannot be read (PS3.15 E.3.6 keeps one shift
per patient): an undecodable value is treated as absent, any other fault goes up."""

from __future__ import annotations

from typing import Any

import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from teaching.deid.deidentify import shift_subject

PATIENT_ID = Tag(0x00100020)


def test_the_patient_id_and_its_issuer_name_the_subject() -> None:
    ds = Dataset()
    ds.PatientID = " 12345 "
    ds.IssuerOfPatientID = "HOSP"
    ds.StudyInstanceUID = "1.2.3"
    assert shift_subject(ds) == ("12345", "HOSP")


def test_an_undecodable_patient_id_falls_back_to_the_study() -> None:
    ds = Dataset()
    ds.StudyInstanceUID = "1.2.3"
    ds._dict[PATIENT_ID] = RawDataElement(PATIENT_ID, "US", 3, b"abc", 0, False, True)
    assert shift_subject(ds) == ("study:1.2.3", "")


def test_a_fault_reading_the_data_set_is_not_taken_for_a_missing_patient_id() -> None:
    class Failing(Dataset):
        def get(self, key: Any, default: Any = None) -> Any:
            raise RuntimeError("the source went away")

    with pytest.raises(RuntimeError, match="went away"):
        shift_subject(Failing())
