"""Burned-in text flags: what says so, and the kinds of instance known to carry it."""

from __future__ import annotations

import warnings

import pydicom
import pytest
from pydicom._uid_dict import UID_dictionary
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from teaching.deid import assess_burned_in, deidentify
from teaching.deid.burned_in import (
    DOSE_REPORTS,
    SECONDARY_CAPTURE,
    ULTRASOUND,
    VIDEO_AND_PHOTOGRAPHIC,
)
from tests.factories import make_instance

SECRET = b"burned-in-test-secret-0123456789"


def _read(name: str) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(get_testdata_file(name))


def _instance(sop_class: str, modality: str = "OT") -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.Modality = modality
    return ds


def test_a_plain_ct_is_not_flagged() -> None:
    assessment = assess_burned_in(make_instance())
    assert not assessment.flagged and assessment.reasons == ()


def test_burned_in_annotation_yes_is_flagged() -> None:
    ds = make_instance()
    ds.BurnedInAnnotation = "YES"
    assessment = assess_burned_in(ds)
    assert assessment.flagged
    assert any("Burned In Annotation" in reason for reason in assessment.reasons)
    ds.BurnedInAnnotation = "NO"
    assert not assess_burned_in(ds).flagged


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("SC_rgb_small_odd.dcm", "secondary or screen capture"),
        ("examples_palette.dcm", "ultrasound"),  # US Image Storage
        ("examples_ybr_color.dcm", "ultrasound"),  # US Multi-frame Image Storage
    ],
)
def test_corpus_instances_of_flagged_kinds(name: str, kind: str) -> None:
    assessment = assess_burned_in(_read(name))
    assert assessment.flagged
    assert any(kind in reason for reason in assessment.reasons)


@pytest.mark.parametrize(
    ("sop_class", "kind"),
    [
        ("1.2.840.10008.5.1.4.1.1.7.4", "secondary or screen capture"),
        ("1.2.840.10008.5.1.4.1.1.88.67", "radiation dose report"),
        ("1.2.840.10008.5.1.4.1.1.88.73", "radiation dose report"),
        ("1.2.840.10008.5.1.4.1.1.77.1.1.1", "video"),
    ],
)
def test_sop_classes_known_to_carry_text(sop_class: str, kind: str) -> None:
    assessment = assess_burned_in(_instance(sop_class, modality="SR"))
    assert assessment.flagged
    assert any(kind in reason for reason in assessment.reasons)


def test_screen_capture_modality_is_flagged_under_any_class() -> None:
    assessment = assess_burned_in(_instance("1.2.840.10008.5.1.4.1.1.2", modality="SC"))
    assert assessment.flagged


def test_flagged_classes_are_the_standard_ones() -> None:
    tables = (SECONDARY_CAPTURE, ULTRASOUND, VIDEO_AND_PHOTOGRAPHIC, DOSE_REPORTS)
    for table in tables:
        for uid, name in table.items():
            assert uid in UID_dictionary, uid
            assert UID_dictionary[uid][0].replace(" (Retired)", "") in name


def test_the_result_of_deidentify_carries_the_flags() -> None:
    result = deidentify(_read("SC_rgb_small_odd.dcm"), secret=SECRET)
    assert result.burned_in.flagged
    assert not deidentify(make_instance(), secret=SECRET).burned_in.flagged
