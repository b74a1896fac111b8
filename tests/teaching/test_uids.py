"""UID replacement: deterministic per secret, valid 2.25 UIDs, well-known UIDs kept."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from teaching.deid import DeidOptions, deidentify, is_well_known, remap_uid
from teaching.deid.uids import UidMapper
from tests.factories import make_instance

SECRET = b"uid-test-secret-0123456789abcdef"
OTHER_SECRET = b"another-deployment-secret-987654"
UUID_UID = re.compile(r"^2\.25\.(0|[1-9][0-9]*)$")
IDENTITY = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID")


def _study() -> list[Dataset]:
    """Two series of one study; the second references an image of the first."""
    study = generate_uid()
    first, second = generate_uid(), generate_uid()
    frame_of_reference = generate_uid()
    instances = []
    for series, number in ((first, 1), (first, 2), (second, 3)):
        ds = make_instance(study_uid=study, series_uid=series, instance_number=number)
        ds.FrameOfReferenceUID = frame_of_reference
        instances.append(ds)
    reference = Dataset()
    reference.ReferencedSOPClassUID = instances[0].SOPClassUID
    reference.ReferencedSOPInstanceUID = instances[0].SOPInstanceUID
    instances[2].SourceImageSequence = Sequence([reference])
    return instances


def _identity(ds: Dataset) -> tuple[str, ...]:
    return tuple(str(ds.get(keyword, "")) for keyword in IDENTITY)


def test_same_study_exported_twice_gets_identical_uids() -> None:
    study = _study()
    first = [deidentify(ds, secret=SECRET).dataset for ds in study]
    again = [deidentify(ds, secret=SECRET).dataset for ds in study]
    assert [_identity(ds) for ds in first] == [_identity(ds) for ds in again]
    assert len({ds.StudyInstanceUID for ds in first}) == 1
    assert first[0].SeriesInstanceUID == first[1].SeriesInstanceUID != first[2].SeriesInstanceUID
    assert len({ds.SOPInstanceUID for ds in first}) == 3
    # the reference in the third instance points at the first instance's new UID
    assert first[2].SourceImageSequence[0].ReferencedSOPInstanceUID == first[0].SOPInstanceUID


def test_a_different_secret_gives_different_uids() -> None:
    study = _study()
    ours = [_identity(deidentify(ds, secret=SECRET).dataset) for ds in study]
    theirs = [_identity(deidentify(ds, secret=OTHER_SECRET).dataset) for ds in study]
    for mine, other in zip(ours, theirs, strict=True):
        assert all(a != b for a, b in zip(mine, other, strict=True))


def test_new_uids_are_valid_2_25_uids() -> None:
    for ds in _study():
        copy = deidentify(ds, secret=SECRET).dataset
        for keyword in IDENTITY:
            uid = str(copy[keyword].value)
            assert UUID_UID.match(uid) and len(uid) <= 64
            assert int(uid[5:]) < 2**128


def test_media_storage_sop_instance_uid_follows_the_sop_instance_uid() -> None:
    ds = _study()[0]
    copy = deidentify(ds, secret=SECRET).dataset
    assert copy.file_meta.MediaStorageSOPInstanceUID == copy.SOPInstanceUID
    assert copy.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
    assert copy.file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID


def test_uid_map_exposes_every_pair_for_follow_up_series() -> None:
    study = _study()
    result = deidentify(study[0], secret=SECRET)
    for keyword in IDENTITY:
        original = str(study[0][keyword].value)
        assert result.uid_map[original] == result.dataset[keyword].value
    # A follow-up series exported later joins the same teaching study.
    follow_up = make_instance(study_uid=study[0].StudyInstanceUID, series_number=9)
    later = deidentify(follow_up, secret=SECRET)
    assert later.dataset.StudyInstanceUID == result.dataset.StudyInstanceUID
    assert later.uid_map[study[0].StudyInstanceUID] == result.uid_map[study[0].StudyInstanceUID]


def test_well_known_uids_are_kept() -> None:
    ds = make_instance()
    code = Dataset()
    code.CodeValue = "12345"
    code.CodingSchemeDesignator = "SCT"
    code.CodingSchemeUID = "2.16.840.1.113883.6.96"
    code.CodeMeaning = "Chest"
    ds.AnatomicRegionSequence = Sequence([code])
    ds.RelatedGeneralSOPClassUID = "1.2.840.10008.5.1.4.1.1.999"  # under the DICOM root
    copy = deidentify(ds, secret=SECRET).dataset
    assert copy.SOPClassUID == ds.SOPClassUID
    assert copy.AnatomicRegionSequence[0].CodingSchemeUID == "2.16.840.1.113883.6.96"
    assert copy.RelatedGeneralSOPClassUID == "1.2.840.10008.5.1.4.1.1.999"
    assert is_well_known("1.2.840.10008.1.2.4.80")


def test_retain_uids_option_keeps_them() -> None:
    ds = _study()[0]
    options = DeidOptions(retain_uids=True)
    copy = deidentify(ds, secret=SECRET, options=options).dataset
    assert _identity(copy) == _identity(ds)
    assert copy.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="secret"):
        deidentify(make_instance(), secret=b"short")


def test_uid_padding_does_not_change_the_mapping() -> None:
    assert (
        remap_uid(SECRET, "1.2.3.4\x00")
        == remap_uid(SECRET, "1.2.3.4 ")
        == remap_uid(SECRET, "1.2.3.4")
    )


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=10**12), min_size=2, max_size=12).map(
        lambda parts: ".".join(str(p) for p in parts)
    )
)
def test_any_uid_maps_to_a_valid_deterministic_uid(uid: str) -> None:
    mapper = UidMapper(SECRET)
    new = mapper.remap(uid)
    if is_well_known(uid):
        assert new == uid
        return
    assert UUID_UID.match(new) and len(new) <= 64
    assert new == remap_uid(SECRET, uid) != remap_uid(OTHER_SECRET, uid)
    assert mapper.uid_map()[uid] == new
