"""Behaviour of ``read_instance`` on real files: pydicom's bundled test data.

The oracle for frames is pydicom itself: native frames are its Pixel Data split per
frame (big endian ones re-encoded from its decoded pixel array), encapsulated frames are
what ``pydicom.encaps.generate_frames`` yields.  Frames are always fetched the way the
server will: one read of ``span(i)`` from the stored bytes (or ``derived``) then
``extract``.
"""

import contextlib
import io
import os
import struct
from functools import cache

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, encapsulate_extended, generate_frames
from pydicom.pixels.utils import get_expected_length, pack_bits
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from storage.dicomfile import ParsedInstance, UnreadableInstance, read_instance
from storage.frames import FrameTable

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom on broken test files

TEST_FILES = os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files")
DICOM_FILES = sorted(name for name in os.listdir(TEST_FILES) if name.endswith(".dcm"))
PIXEL_TAGS = (0x7FE00008, 0x7FE00009, 0x7FE00010)

UNREADABLE_FILES = {
    # CT_small.dcm with its meta stripped one byte short: a stray 0x20 comes first, so
    # the first "element" is (0820,0500) with a 173 MB length.  pydicom reads the same.
    "no_meta.dcm",
    # Cut off inside (300A,00B0) Beam Sequence.
    "rtplan_truncated.dcm",
}
FRAMELESS_FILES = {
    # Pixel Data 62 bytes shorter than 64×64×16 bits.
    "MR_truncated.dcm",
    # A 2 byte Pixel Data with no Rows, Columns or Bits Allocated.
    "meta_missing_tsyntax.dcm",
    "nested_priv_SQ.dcm",
}


@cache
def _stored(name: str) -> bytes:
    with open(os.path.join(TEST_FILES, name), "rb") as file:
        return file.read()


def _read(data: bytes) -> ParsedInstance:
    return read_instance(io.BytesIO(data))


def _served_frames(parsed: ParsedInstance, stored: bytes) -> list[bytes]:
    """Frames as the server will serve them: one ranged read each, then ``extract``."""
    assert parsed.pixel is not None and parsed.pixel.frame_table is not None
    table = parsed.pixel.frame_table
    source = parsed.pixel.derived if parsed.pixel.derived is not None else stored
    frames = []
    for index in range(len(table.frames)):
        span = table.span(index)
        frames.append(table.extract(index, source[span.offset : span.end]))
    return frames


def _number_of_frames(ds: Dataset) -> int:
    try:
        return max(int(ds.get("NumberOfFrames", 1)), 1)
    except (TypeError, ValueError):
        return 1


def _pydicom_frames(ds: Dataset) -> list[bytes]:
    """Frame bytes as pydicom yields them, as Little Endian."""
    tag = next(tag for tag in PIXEL_TAGS if tag in ds)
    element = ds[tag]
    count = _number_of_frames(ds)
    if element.is_undefined_length:
        extended = None
        if "ExtendedOffsetTable" in ds:
            extended = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
        return list(
            generate_frames(element.value, number_of_frames=count, extended_offsets=extended)
        )
    if not ds.original_encoding[1]:
        pixels = ds.pixel_array.reshape(count, ds.Rows, ds.Columns, -1)
        if ds.get("PlanarConfiguration") == 1:
            pixels = pixels.transpose(0, 3, 1, 2)
        pixels = pixels.reshape(count, -1)
        if ds.BitsAllocated == 1:
            return [np.packbits(frame, bitorder="little").tobytes() for frame in pixels]
        return [frame.astype(frame.dtype.newbyteorder("<")).tobytes() for frame in pixels]
    if "NumberOfFrames" in ds:
        ds.NumberOfFrames = count  # badVR.dcm holds "1A"
    length = get_expected_length(ds, "bytes") // count
    return [element.value[i * length : (i + 1) * length] for i in range(count)]


@pytest.mark.parametrize("name", DICOM_FILES)
def test_every_pydicom_test_file_yields_the_frames_and_elements_pydicom_reads(name: str) -> None:
    stored = _stored(name)
    if name in UNREADABLE_FILES:
        with pytest.raises(UnreadableInstance):
            _read(stored)
        return
    parsed = _read(stored)
    full = pydicom.dcmread(io.BytesIO(stored), force=True)
    pixel_tags = [tag for tag in PIXEL_TAGS if tag in full]
    assert set(parsed.dataset.keys()) == set(full.keys()) - set(pixel_tags)
    if not pixel_tags:
        assert parsed.pixel is None
        return
    assert parsed.pixel is not None
    assert parsed.pixel.tag == pixel_tags[0]
    if name in FRAMELESS_FILES:
        assert parsed.pixel.frame_table is None
        assert parsed.pixel.problem
        return
    assert parsed.pixel.problem is None
    assert _served_frames(parsed, stored) == _pydicom_frames(full)


@pytest.mark.parametrize(
    ("little_endian", "big_endian"),
    [
        ("MR_small.dcm", "MR_small_bigendian.dcm"),
        ("MR_small.dcm", "MR_small_expb.dcm"),
        ("rtdose.dcm", "rtdose_expb.dcm"),
        ("rtdose_1frame.dcm", "rtdose_expb_1frame.dcm"),
        ("SC_rgb_small_odd.dcm", "SC_rgb_small_odd_big_endian.dcm"),
        ("liver_1frame.dcm", "liver_expb_1frame.dcm"),
    ],
)
def test_big_endian_frames_are_served_as_the_bytes_of_the_little_endian_twin(
    little_endian: str, big_endian: str
) -> None:
    expected = _served_frames(_read(_stored(little_endian)), _stored(little_endian))
    parsed = _read(_stored(big_endian))
    assert parsed.transfer_syntax == ExplicitVRBigEndian
    assert parsed.pixel is not None
    assert parsed.pixel.frames_transfer_syntax == ExplicitVRLittleEndian
    assert _served_frames(parsed, _stored(big_endian)) == expected


def test_big_endian_words_are_derived_but_byte_streams_are_served_from_the_file() -> None:
    words = _read(_stored("MR_small_expb.dcm")).pixel
    assert words is not None and words.vr == "OW" and words.derived is not None
    eight_bit_words = _read(_stored("SC_rgb_small_odd_big_endian.dcm")).pixel
    assert eight_bit_words is not None and eight_bit_words.derived is not None
    byte_stream = _read(_stored("liver_expb_1frame.dcm")).pixel
    assert byte_stream is not None and byte_stream.vr == "OB" and byte_stream.derived is None


@pytest.mark.parametrize(
    ("name", "syntax"),
    [
        ("ExplVR_LitEndNoMeta.dcm", ExplicitVRLittleEndian),
        ("ExplVR_BigEndNoMeta.dcm", ExplicitVRBigEndian),
        ("rtstruct.dcm", ImplicitVRLittleEndian),
    ],
)
def test_files_without_file_meta_are_read_with_the_detected_syntax(name: str, syntax: str) -> None:
    parsed = _read(_stored(name))
    assert not parsed.is_part10
    assert parsed.transfer_syntax == syntax
    assert not getattr(parsed.dataset, "file_meta", None)


def test_a_bare_data_set_keeps_its_frames_at_their_own_offsets() -> None:
    stored = _stored("CT_small.dcm")
    meta = pydicom.dcmread(io.BytesIO(stored), stop_before_pixels=True).file_meta
    dataset_start = 132 + 12 + meta.FileMetaInformationGroupLength
    bare = stored[dataset_start:]
    parsed = _read(bare)
    assert not parsed.is_part10
    assert parsed.transfer_syntax == ExplicitVRLittleEndian
    assert _served_frames(parsed, bare) == _served_frames(_read(stored), stored)


def test_part10_files_are_flagged_and_keep_their_file_meta() -> None:
    parsed = _read(_stored("CT_small.dcm"))
    assert parsed.is_part10
    assert parsed.dataset.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert parsed.dataset.PatientName == "CompressedSamples^CT1"


def test_pixel_data_shorter_than_its_geometry_gives_no_frame_table_but_a_reason() -> None:
    parsed = _read(_stored("MR_truncated.dcm"))
    assert parsed.pixel is not None
    assert parsed.pixel.frame_table is None
    assert parsed.pixel.problem is not None
    assert "holds 8130 bytes" in parsed.pixel.problem
    assert "needs 8192" in parsed.pixel.problem
    assert parsed.dataset.Rows == 64


def test_a_deflated_data_set_serves_its_frames_from_derived_bytes() -> None:
    stored = _stored("image_dfl.dcm")
    parsed = _read(stored)
    assert parsed.transfer_syntax == DeflatedExplicitVRLittleEndian
    assert parsed.pixel is not None and parsed.pixel.derived is not None
    assert parsed.pixel.frames_transfer_syntax == ExplicitVRLittleEndian
    full = pydicom.dcmread(io.BytesIO(stored))
    assert parsed.pixel.derived == full.PixelData[: 512 * 512]
    assert 0x7FE00010 not in parsed.dataset
    assert parsed.dataset.SOPInstanceUID == full.SOPInstanceUID


def test_elements_after_the_pixel_data_are_kept_and_the_pixel_data_is_not() -> None:
    parsed = _read(_stored("MR_small_padded.dcm"))
    assert 0xFFFCFFFC in parsed.dataset  # Data Set Trailing Padding
    assert 0x7FE00010 not in parsed.dataset


def test_an_implicit_vr_data_set_under_an_explicit_syntax_still_finds_its_frames() -> None:
    stored = _stored("SC_rgb_jpeg.dcm")  # meta says JPEG Baseline, the data set is implicit
    parsed = _read(stored)
    assert parsed.pixel is not None
    assert parsed.pixel.vr == "OB"
    assert parsed.pixel.frames_transfer_syntax == "1.2.840.10008.1.2.4.50"
    assert _served_frames(parsed, stored) == _pydicom_frames(pydicom.dcmread(io.BytesIO(stored)))


@cache
def _jpeg_source() -> tuple[Dataset, tuple[bytes, ...]]:
    ds = pydicom.dcmread(os.path.join(TEST_FILES, "examples_ybr_color.dcm"))
    frames = tuple(generate_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames)))
    return ds, frames


def _written(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@pytest.mark.parametrize("fragments_per_frame", [1, 2])
def test_multiframe_encapsulated_pixel_data_without_bot_maps_fragments_to_frames(
    fragments_per_frame: int,
) -> None:
    ds, frames = _jpeg_source()
    ds = ds.copy()
    ds.PixelData = encapsulate(list(frames), fragments_per_frame, has_bot=False)
    stored = _written(ds)
    parsed = _read(stored)
    assert parsed.pixel is not None and parsed.pixel.frame_table is not None
    assert parsed.pixel.frame_table.encapsulated
    assert parsed.pixel.frames_transfer_syntax == ds.file_meta.TransferSyntaxUID
    assert _served_frames(parsed, stored) == list(frames)


def test_multiframe_encapsulated_pixel_data_is_mapped_by_an_extended_offset_table() -> None:
    ds, frames = _jpeg_source()
    ds = ds.copy()
    odd_lengths = [frame + b"\x00" for frame in frames[:3]] + list(frames[3:])
    ds.PixelData, ds.ExtendedOffsetTable, _ = encapsulate_extended(odd_lengths)
    # The exact, odd lengths: shorter than the even-padded fragments holding the frames.
    ds.ExtendedOffsetTableLengths = struct.pack(
        f"<{len(odd_lengths)}Q", *(len(frame) for frame in odd_lengths)
    )
    stored = _written(ds)
    parsed = _read(stored)
    assert 0x7FE00001 in parsed.dataset
    served = _served_frames(parsed, stored)
    assert served == odd_lengths
    assert served == _pydicom_frames(pydicom.dcmread(io.BytesIO(stored)))


def test_multiframe_one_bit_frames_not_starting_on_a_byte_are_repacked() -> None:
    liver = pydicom.dcmread(os.path.join(TEST_FILES, "liver_1frame.dcm"))
    rows, columns = np.nonzero(liver.pixel_array)
    top, left = int(rows[0]), int(columns[0]) - 3
    windows = [liver.pixel_array[top + 2 * i : top + 2 * i + 5, left : left + 7] for i in range(3)]
    ds = liver.copy()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Rows, ds.Columns, ds.NumberOfFrames = 5, 7, 3
    ds.PixelData = pack_bits(np.stack(windows))
    stored = _written(ds)
    parsed = _read(stored)
    assert parsed.pixel is not None and parsed.pixel.derived is not None
    served = _served_frames(parsed, stored)
    decoded = pydicom.dcmread(io.BytesIO(stored)).pixel_array
    assert {0, 1} <= set(np.unique(decoded))
    for frame, pixels in zip(served, decoded, strict=True):
        assert len(frame) == 5  # 35 bits, padded to a byte
        unpacked = np.unpackbits(np.frombuffer(frame, np.uint8), count=35, bitorder="little")
        assert (unpacked == pixels.ravel()).all()


@pytest.mark.parametrize(
    ("keyword", "bits", "dtype", "syntax"),
    [
        ("FloatPixelData", 32, "f4", ExplicitVRLittleEndian),
        ("FloatPixelData", 32, "f4", ExplicitVRBigEndian),
        ("DoubleFloatPixelData", 64, "f8", ExplicitVRLittleEndian),
        ("DoubleFloatPixelData", 64, "f8", ExplicitVRBigEndian),
    ],
)
def test_float_pixel_data_frames_are_served_as_little_endian_floats(
    keyword: str, bits: int, dtype: str, syntax: str
) -> None:
    dose = pydicom.dcmread(os.path.join(TEST_FILES, "rtdose.dcm"))
    values = dose.pixel_array.astype(dtype) * dose.DoseGridScaling
    big = syntax == ExplicitVRBigEndian
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = dose.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = dose.SOPInstanceUID
    ds.SOPClassUID, ds.SOPInstanceUID = dose.SOPClassUID, dose.SOPInstanceUID
    ds.Rows, ds.Columns, ds.NumberOfFrames = 10, 10, 15
    ds.SamplesPerPixel, ds.BitsAllocated = 1, bits
    setattr(ds, keyword, values.astype((">" if big else "<") + dtype).tobytes())
    buffer = io.BytesIO()
    ds.save_as(buffer, implicit_vr=False, little_endian=not big)
    parsed = _read(buffer.getvalue())
    assert parsed.pixel is not None
    assert parsed.pixel.tag == ds[keyword].tag
    assert (parsed.pixel.derived is not None) == big
    served = _served_frames(parsed, buffer.getvalue())
    assert served == [frame.astype("<" + dtype).tobytes() for frame in values]


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        bytes(7),
        bytes(1000),
        np.random.default_rng(0).bytes(4096),
        bytes(128) + b"DICM" + np.random.default_rng(1).bytes(500),
    ],
    ids=["empty", "7 zeros", "1000 zeros", "random", "preamble then random"],
)
def test_garbage_bytes_are_an_unreadable_instance(garbage: bytes) -> None:
    with pytest.raises(UnreadableInstance):
        _read(garbage)


@pytest.mark.parametrize("name", ["README.txt", "crayons.icc", "zipMR.gz", "test1.json"])
def test_files_that_are_not_dicom_are_an_unreadable_instance(name: str) -> None:
    with pytest.raises(UnreadableInstance):
        _read(_stored(name))


def _header_cuts(name: str) -> list[int]:
    """Offsets inside element headers and values before the pixel data of ``name``."""
    ds = pydicom.dcmread(os.path.join(TEST_FILES, name), stop_before_pixels=True)
    cuts = [100, 140]  # inside the preamble, inside the file meta
    for keyword in ("ImageType", "PatientName", "Rows", "SliceLocation"):
        raw = ds.get_item(tag_for_keyword(keyword))
        cuts += [raw.value_tell - 5, raw.value_tell + 1]  # in the header, in the value
    return cuts


@pytest.mark.parametrize("cut", _header_cuts("CT_small.dcm"))
def test_a_file_cut_inside_its_header_is_an_unreadable_instance(cut: int) -> None:
    with pytest.raises(UnreadableInstance):
        _read(_stored("CT_small.dcm")[:cut])


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_RLE.dcm", "examples_ybr_color.dcm"])
def test_a_file_cut_inside_its_pixel_data_keeps_its_data_set_and_says_why(name: str) -> None:
    stored = _stored(name)
    parsed = _read(stored[: len(stored) - 1001])
    assert parsed.pixel is not None
    assert parsed.pixel.frame_table is None
    assert parsed.pixel.problem
    assert parsed.dataset.SOPInstanceUID == pydicom.dcmread(io.BytesIO(stored)).SOPInstanceUID


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.sampled_from(["MR_small_padded.dcm", "MR_small_RLE.dcm", "SC_rgb_rle_2frame.dcm"]), st.data()
)
def test_any_truncation_is_unreadable_or_read_without_wrong_frames(
    name: str, data: st.DataObject
) -> None:
    stored = _stored(name)
    cut = stored[: data.draw(st.integers(0, len(stored) - 1))]
    try:
        parsed = _read(cut)
    except UnreadableInstance:
        return
    if parsed.pixel is not None and parsed.pixel.frame_table is not None:
        assert _served_frames(parsed, cut) == _served_frames(_read(stored), stored)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1600), st.integers(0, 255)), min_size=1, max_size=6))
def test_corrupted_header_bytes_never_raise_anything_but_unreadable_instance(
    changes: list[tuple[int, int]],
) -> None:
    corrupted = bytearray(_stored("MR_small_RLE.dcm"))
    for offset, value in changes:
        corrupted[offset] = value
    with contextlib.suppress(UnreadableInstance):
        _read(bytes(corrupted))


class _FailingDisk(io.BytesIO):
    def read(self, size: int | None = -1) -> bytes:
        if self.tell() > 1000:
            raise OSError("I/O error")
        return super().read(size)


def test_io_errors_of_the_file_object_propagate_unchanged() -> None:
    with pytest.raises(OSError, match="I/O error"):
        read_instance(_FailingDisk(_stored("CT_small.dcm")))


def test_a_real_frame_table_round_trips_through_bytes() -> None:
    parsed = _read(_stored("examples_ybr_color.dcm"))
    assert parsed.pixel is not None and parsed.pixel.frame_table is not None
    table = parsed.pixel.frame_table
    assert FrameTable.from_bytes(table.to_bytes()) == table
    assert len(table.frames) == 30
