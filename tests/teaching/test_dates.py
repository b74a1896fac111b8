"""Modified dates: one shift per patient, intervals kept, broken dates never raise."""

from __future__ import annotations

import datetime

import pytest
from pydicom.dataset import Dataset

from teaching.deid import DeidOptions, deidentify
from teaching.deid.dates import (
    DUMMY_DATE,
    DUMMY_DATETIME,
    SHIFT_MAX_DAYS,
    SHIFT_MIN_DAYS,
    is_valid_date,
    patient_shift_days,
    shift_date,
    shift_datetime,
)
from tests.factories import make_instance

SECRET = b"date-test-secret-0123456789abcdef"


def _day(value: str) -> datetime.date:
    return datetime.datetime.strptime(str(value), "%Y%m%d").date()


def test_one_shift_per_patient_keeps_the_interval_between_studies() -> None:
    prior = make_instance(patient_id="P-100", study_date="20190301")
    current = make_instance(patient_id="P-100", study_date="20210115")
    a = deidentify(prior, secret=SECRET)
    b = deidentify(current, secret=SECRET)
    assert a.date_shift_days == b.date_shift_days
    assert SHIFT_MIN_DAYS <= a.date_shift_days <= SHIFT_MAX_DAYS
    before = _day(current.StudyDate) - _day(prior.StudyDate)
    after = _day(b.dataset.StudyDate) - _day(a.dataset.StudyDate)
    assert before == after
    assert a.dataset.StudyDate != prior.StudyDate
    assert a.dataset.StudyTime == prior.StudyTime  # whole-day shift keeps the time of day
    assert a.dataset.LongitudinalTemporalInformationModified == "MODIFIED"


def test_different_patients_get_different_shifts() -> None:
    shifts = {patient_shift_days(SECRET, f"P-{n}") for n in range(50)}
    assert len(shifts) > 40
    assert patient_shift_days(SECRET, "P-1") != patient_shift_days(SECRET, "P-2")
    assert patient_shift_days(SECRET, "P-1", "HOSP-A") != patient_shift_days(
        SECRET, "P-1", "HOSP-B"
    )
    assert patient_shift_days(SECRET, "P-1") != patient_shift_days(b"x" * 32, "P-1")


def test_all_dates_of_an_instance_move_together() -> None:
    ds = make_instance(patient_id="P-7", study_date="20200229")
    ds.SeriesDate = "20200301"
    ds.AcquisitionDateTime = "20200301083000.25+0100"
    ds.ContentDate = "20200302"
    result = deidentify(ds, secret=SECRET)
    shift = result.date_shift_days
    copy = result.dataset
    assert copy.StudyDate == shift_date("20200229", shift)
    assert copy.SeriesDate == shift_date("20200301", shift)
    assert copy.ContentDate == shift_date("20200302", shift)
    assert copy.AcquisitionDateTime == shift_datetime("20200301083000.25+0100", shift)
    assert copy.AcquisitionDateTime.endswith("083000.25+0100")


@pytest.mark.parametrize(
    ("value", "expected_length"),
    [("2020", 4), ("202003", 6), ("20200315", 8), ("2020031512", 10), ("20200315123456.5", 16)],
)
def test_datetime_precision_is_kept(value: str, expected_length: int) -> None:
    shifted = shift_datetime(value, -400)
    assert len(shifted) == expected_length
    assert shifted != value


@pytest.mark.parametrize(
    "bad", ["20201341", "2020-01-01", "abc", "19990229", "00000000", "", "  ", "2020010"]
)
def test_invalid_dates_are_replaced_by_a_dummy_and_never_raise(bad: str) -> None:
    assert shift_date(bad, -500) == DUMMY_DATE
    ds = make_instance()
    # add_new, not attribute assignment: the values are invalid on purpose
    ds.add_new("StudyDate", "DA", bad)
    ds.add_new("SeriesDate", "DA", [bad, "20200101"])
    ds.add_new("AcquisitionDateTime", "DT", bad + "XYZ")
    copy = deidentify(ds, secret=SECRET).dataset
    assert copy.get("StudyDate") in ("", None, DUMMY_DATE)
    assert all(is_valid_date(v) for v in copy.SeriesDate)
    assert copy.AcquisitionDateTime == DUMMY_DATETIME


def test_legacy_dotted_dates_are_shifted_into_the_current_form() -> None:
    assert shift_date("1997.04.24", -1) == "19970423"


def test_retain_full_dates_keeps_them_and_says_so() -> None:
    ds = make_instance(study_date="20200115")
    options = DeidOptions(retain_modified_dates=False, retain_full_dates=True)
    result = deidentify(ds, secret=SECRET, options=options)
    assert result.dataset.StudyDate == "20200115"
    assert result.date_shift_days is None
    assert result.dataset.LongitudinalTemporalInformationModified == "UNMODIFIED"


def test_without_a_temporal_option_dates_are_removed() -> None:
    ds = make_instance(study_date="20200115")
    ds.SeriesDate = "20200115"
    result = deidentify(ds, secret=SECRET, options=DeidOptions(retain_modified_dates=False))
    assert result.dataset.StudyDate in ("", None)  # Z
    assert result.dataset.SeriesDate == "19000101"  # X/D with strictest type 1: dummy
    assert result.dataset.LongitudinalTemporalInformationModified == "REMOVED"


def test_birth_date_is_emptied_whatever_the_options() -> None:
    copy = deidentify(make_instance(), secret=SECRET).dataset
    assert copy.PatientBirthDate in ("", None)


def test_a_patient_without_id_is_shifted_per_study() -> None:
    ds = Dataset()
    ds.StudyInstanceUID = "1.2.3.4.5"
    ds.StudyDate = "20200101"
    one = deidentify(ds, secret=SECRET)
    two = deidentify(ds, secret=SECRET)
    assert one.date_shift_days == two.date_shift_days is not None
    assert one.dataset.StudyDate == two.dataset.StudyDate != "20200101"
