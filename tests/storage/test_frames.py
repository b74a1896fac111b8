"""Behaviour of the frame table and of the encapsulated pixel data scanner (PS3.5 §A.4).

Encapsulated inputs are built from real JPEG frames taken out of pydicom's
``examples_ybr_color.dcm`` (30 frames), re-encapsulated in the layouts under test.
"""

import io
import os
import struct
from functools import cache

import numpy as np
import pydicom
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydicom.encaps import encapsulate, encapsulate_extended, generate_frames

from storage.frames import (
    ByteRange,
    EncapsulatedScan,
    FrameLayoutError,
    FrameTable,
    map_fragments,
    native_frame_table,
    repack_bits,
    scan_encapsulated,
    swap_bytes,
)

TEST_FILES = os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files")


@cache
def _jpeg_frames() -> tuple[bytes, ...]:
    """30 real JPEG baseline frames."""
    ds = pydicom.dcmread(os.path.join(TEST_FILES, "examples_ybr_color.dcm"))
    return tuple(generate_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames)))


SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


def _stored(frames: list[bytes], fragments_per_frame: int = 1, has_bot: bool = True) -> bytes:
    """Encapsulated value as stored: pydicom's ``encapsulate`` omits the delimiter it
    appends when writing the element (PS3.5 §A.4)."""
    return encapsulate(frames, fragments_per_frame, has_bot) + SEQUENCE_DELIMITER


def _scan(stored: bytes) -> EncapsulatedScan:
    return scan_encapsulated(io.BytesIO(stored), 0, len(stored))


def _frames_read_back(table: FrameTable, data: bytes) -> list[bytes]:
    frames = []
    for index in range(len(table.frames)):
        span = table.span(index)
        frames.append(table.extract(index, data[span.offset : span.end]))
    return frames


@st.composite
def frame_tables(draw: st.DrawFn) -> FrameTable:
    frames = []
    for _ in range(draw(st.integers(0, 6))):
        position = draw(st.integers(0, 2**40))
        frame = []
        for _ in range(draw(st.integers(1, 4))):
            position += draw(st.integers(0, 16))
            length = draw(st.integers(0, 2**20))
            frame.append(ByteRange(position, length))
            position += length
        frames.append(tuple(frame))
    return FrameTable(encapsulated=draw(st.booleans()), frames=tuple(frames))


@given(frame_tables())
def test_a_frame_table_round_trips_through_bytes_exactly(table: FrameTable) -> None:
    assert FrameTable.from_bytes(table.to_bytes()) == table


@given(frame_tables(), st.data())
def test_damaged_serialised_tables_are_rejected_with_value_error(
    table: FrameTable, data: st.DataObject
) -> None:
    serialised = table.to_bytes()
    cut = data.draw(st.integers(0, len(serialised) - 1))
    with pytest.raises(ValueError):
        FrameTable.from_bytes(serialised[:cut])
    with pytest.raises(ValueError):
        FrameTable.from_bytes(serialised + b"\x00")


def test_serialised_table_of_another_format_is_rejected() -> None:
    with pytest.raises(ValueError, match="not a version 1 frame table"):
        FrameTable.from_bytes(b'{"frames": []}' + bytes(16))


def test_native_frames_are_laid_end_to_end_from_the_value_offset() -> None:
    table = native_frame_table(1000, 8192, 3)
    assert not table.encapsulated
    assert table.frames == (
        (ByteRange(1000, 8192),),
        (ByteRange(9192, 8192),),
        (ByteRange(17384, 8192),),
    )
    assert table.span(2) == ByteRange(17384, 8192)


def test_span_covers_every_fragment_and_extract_drops_the_item_headers() -> None:
    table = FrameTable(True, ((ByteRange(108, 4), ByteRange(120, 2), ByteRange(130, 3)),))
    span = table.span(0)
    assert span == ByteRange(108, 25)
    stored = bytes(range(256))
    assert table.extract(0, stored[span.offset : span.end]) == (
        stored[108:112] + stored[120:122] + stored[130:133]
    )


def test_extract_refuses_bytes_that_are_not_the_whole_span() -> None:
    table = native_frame_table(0, 10, 1)
    with pytest.raises(ValueError, match="spans 10 bytes, got 9"):
        table.extract(0, bytes(9))


@pytest.mark.parametrize("index", [-1, 2])
def test_a_frame_index_outside_the_table_raises_index_error(index: int) -> None:
    with pytest.raises(IndexError):
        native_frame_table(0, 10, 2).span(index)


def test_frames_with_no_ranges_or_overlapping_ranges_cannot_be_built() -> None:
    with pytest.raises(ValueError, match="no byte ranges"):
        FrameTable(False, ((),))
    with pytest.raises(ValueError, match="overlap"):
        FrameTable(True, ((ByteRange(0, 10), ByteRange(5, 10)),))
    with pytest.raises(ValueError):
        ByteRange(-1, 3)


def test_fragments_are_mapped_by_the_basic_offset_table() -> None:
    frames = list(_jpeg_frames())
    encapsulated = _stored(frames, fragments_per_frame=3)
    scan = _scan(encapsulated)
    assert len(scan.basic_offsets) == 30
    assert len(scan.fragments) == 90
    table = map_fragments(scan, 30)
    assert all(len(ranges) == 3 for ranges in table.frames)
    assert _frames_read_back(table, encapsulated) == frames


def test_fragments_are_mapped_by_the_extended_offset_table() -> None:
    frames = list(_jpeg_frames())
    value, offsets, lengths = encapsulate_extended(frames)
    encapsulated = value + SEQUENCE_DELIMITER
    extended = (
        struct.unpack(f"<{len(frames)}Q", offsets),
        struct.unpack(f"<{len(frames)}Q", lengths),
    )
    table = map_fragments(_scan(encapsulated), len(frames), extended)
    assert _frames_read_back(table, encapsulated) == frames


def test_one_fragment_per_frame_is_assumed_when_counts_match_and_there_is_no_bot() -> None:
    frames = list(_jpeg_frames())
    encapsulated = _stored(frames, has_bot=False)
    table = map_fragments(_scan(encapsulated), 30)
    assert _frames_read_back(table, encapsulated) == frames


def test_frame_starts_are_found_by_jpeg_markers_without_bot() -> None:
    frames = list(_jpeg_frames())
    encapsulated = _stored(frames, fragments_per_frame=2, has_bot=False)
    table = map_fragments(_scan(encapsulated), 30)
    assert [len(ranges) for ranges in table.frames] == [2] * 30
    assert _frames_read_back(table, encapsulated) == frames


def test_all_fragments_form_the_only_frame_of_a_single_frame_image() -> None:
    frame = _jpeg_frames()[0]
    encapsulated = _stored([frame], fragments_per_frame=4, has_bot=False)
    table = map_fragments(_scan(encapsulated), 1)
    assert _frames_read_back(table, encapsulated) == [frame]


def test_a_bot_that_does_not_match_the_fragments_is_ignored_for_other_evidence() -> None:
    frames = list(_jpeg_frames()[:4])
    encapsulated = bytearray(_stored(frames, fragments_per_frame=2))
    struct.pack_into("<L", encapsulated, 8 + 4, 3)  # second offset points nowhere
    table = map_fragments(_scan(bytes(encapsulated)), 4)
    assert _frames_read_back(table, bytes(encapsulated)) == frames


def test_unassignable_fragments_raise_with_every_reason() -> None:
    frames = [frame[2:] for frame in _jpeg_frames()[:3]]  # no SOI marker left
    encapsulated = _stored(frames, fragments_per_frame=2, has_bot=False)
    with pytest.raises(FrameLayoutError, match="6 fragments for 3 frames, and 0 fragments"):
        map_fragments(_scan(encapsulated), 3)


def test_a_bot_frame_count_different_from_number_of_frames_is_reported() -> None:
    frames = [frame[2:] for frame in _jpeg_frames()[:3]]
    encapsulated = _stored(frames, fragments_per_frame=2)
    with pytest.raises(FrameLayoutError, match="Basic Offset Table lists 3 frames"):
        map_fragments(_scan(encapsulated), 2)


def test_encapsulated_data_cut_before_its_delimiter_is_reported_truncated() -> None:
    encapsulated = _stored(list(_jpeg_frames()[:2]))
    with pytest.raises(FrameLayoutError, match="truncated"):
        _scan(encapsulated[:-8])
    with pytest.raises(FrameLayoutError, match="truncated"):
        _scan(encapsulated[:-100])


def test_encapsulated_data_must_start_with_the_basic_offset_table_item() -> None:
    with pytest.raises(FrameLayoutError, match="not the Basic Offset Table item"):
        _scan(b"\xe0\x7f\x10\x00" + bytes(12))


def test_no_fragments_at_all_cannot_be_mapped() -> None:
    encapsulated = b"\xfe\xff\x00\xe0\x00\x00\x00\x00\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    with pytest.raises(FrameLayoutError, match="no fragments"):
        map_fragments(_scan(encapsulated), 1)


def test_scanning_reports_where_the_next_element_starts() -> None:
    encapsulated = _stored(list(_jpeg_frames()[:2]))
    stored = b"prefix" + encapsulated + b"next element"
    scan = scan_encapsulated(io.BytesIO(stored), 6, len(stored))
    assert stored[scan.end :] == b"next element"
    assert scan.fragments[0].value.offset == 6 + 8 + 8 + 8  # BOT item, 2 offsets, item header


@given(st.integers(1, 40), st.integers(1, 5), st.data())
def test_repacked_bit_frames_each_start_on_a_byte_in_lsb_first_order(
    frame_bits: int, count: int, data: st.DataObject
) -> None:
    bits = data.draw(
        st.lists(st.integers(0, 1), min_size=frame_bits * count, max_size=frame_bits * count)
    )
    pixels = np.array(bits, dtype=np.uint8).reshape(count, frame_bits)
    stream = np.packbits(pixels.ravel(), bitorder="little").tobytes()
    repacked = repack_bits(stream, frame_bits, count)
    frame_bytes = -(-frame_bits // 8)
    assert len(repacked) == frame_bytes * count
    for index in range(count):
        frame = repacked[index * frame_bytes : (index + 1) * frame_bytes]
        assert frame == np.packbits(pixels[index], bitorder="little").tobytes()


@pytest.mark.parametrize("dtype", [">u2", ">u4", ">f8"])
def test_swapping_big_endian_words_gives_their_little_endian_bytes(dtype: str) -> None:
    values = (np.arange(1, 50) * 12345).astype(dtype)
    swapped = swap_bytes(values.tobytes(), values.dtype.itemsize)
    assert swapped == values.astype(values.dtype.newbyteorder("<")).tobytes()


def test_a_trailing_partial_word_is_left_as_it_is() -> None:
    assert swap_bytes(b"\x01\x02\x03", 2) == b"\x02\x01\x03"
