"""Frame tables: where each frame of a stored instance's pixel data lives.

At ingest the server records, for every frame of the top-level pixel data, the byte
ranges holding that frame, so that serving a frame later is one ranged read of the
stored file followed by :meth:`FrameTable.extract`, with no DICOM parsing at read time.

Two layouts exist (PS3.5 §8.2):

* Native pixel data (PS3.5 §8.1.1, Annex D): frames are concatenated back to back
  with no per-frame padding, so frame *i* is one range at ``i * frame_length``.
* Encapsulated pixel data (PS3.5 §A.4): an undefined-length sequence of items; the
  first item is the Basic Offset Table, each following item is one fragment, and the
  sequence ends with a Sequence Delimitation Item.  A frame is one or more consecutive
  fragments, so frame *i* is the list of its fragments' value ranges (item headers
  excluded).  :func:`scan_encapsulated` finds the fragments without reading their
  values and :func:`map_fragments` decides which fragments belong to which frame.

Native data that cannot be served straight from the file (big endian words, frames that
do not start on a byte boundary) is normalised by :func:`swap_bytes` and
:func:`repack_bits`; the caller then builds the table over the normalised bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Final, Protocol

import numpy as np

ITEM_TAG: Final = 0xFFFEE000
"""(FFFE,E000) Item, PS3.5 §7.5."""
SEQUENCE_DELIMITATION_TAG: Final = 0xFFFEE0DD
"""(FFFE,E0DD) Sequence Delimitation Item, PS3.5 §7.5."""
UNDEFINED_LENGTH: Final = 0xFFFFFFFF
"""Value length marking an undefined length element or item, PS3.5 §7.1.1."""

_ITEM_HEADER_SIZE: Final = 8
_HEAD_SIZE: Final = 12
"""Bytes kept from the start of each fragment: enough for the longest start marker."""

_CODESTREAM_STARTS: Final = (
    b"\xff\xd8\xff",  # JPEG and JPEG-LS: SOI then the next marker (ISO/IEC 10918-1 B.2.1)
    b"\xff\x4f\xff\x51",  # JPEG 2000 / HTJ2K codestream: SOC then SIZ (ISO/IEC 15444-1 A.4)
    b"\x00\x00\x00\x0cjP  \r\n\x87\n",  # JP2 file signature box (ISO/IEC 15444-1 I.5.1)
    b"\xff\x0a",  # JPEG XL codestream signature (ISO/IEC 18181-1 §9.1)
    b"\x00\x00\x00\x0cJXL \r\n\x87\n",  # JPEG XL container signature box (ISO/IEC 18181-2)
)

_MAGIC: Final = b"RCFT"
_VERSION: Final = 1
_TABLE_HEADER: Final = struct.Struct("<4sBBI")  # magic, version, encapsulated flag, frames
_RANGE_COUNT: Final = struct.Struct("<I")
_RANGE: Final = struct.Struct("<QQ")  # offset, length


class RandomAccessFile(Protocol):
    """What scanning needs of a stored file: positioned reads (``BinaryIO`` qualifies)."""

    def read(self, size: int = -1, /) -> bytes: ...

    def seek(self, offset: int, whence: int = 0, /) -> int: ...


class FrameLayoutError(Exception):
    """The frames of the pixel data cannot be located; ``str()`` says why.

    Raised for damaged or ambiguous pixel data.  Callers record the message as the
    instance's pixel data problem rather than rejecting the whole instance.
    """


@dataclass(frozen=True, slots=True)
class ByteRange:
    """A contiguous run of ``length`` bytes starting at byte ``offset``."""

    offset: int
    length: int

    def __post_init__(self) -> None:
        if self.offset < 0 or self.length < 0:
            raise ValueError(f"byte range needs offset, length >= 0, got {self}")

    @property
    def end(self) -> int:
        """The offset just past the last byte of the range."""
        return self.offset + self.length


@dataclass(frozen=True, slots=True)
class FrameTable:
    """Where each frame's bytes are.

    ``frames[i]`` lists the byte ranges (in order) whose concatenation is frame i+1:
    one range for native data, one per fragment for encapsulated data (PS3.5 §A.4).
    Ranges of one frame are in increasing offset order and do not overlap, so the
    smallest span covering them can be fetched with a single read.
    """

    encapsulated: bool
    frames: tuple[tuple[ByteRange, ...], ...]

    def __post_init__(self) -> None:
        for number, ranges in enumerate(self.frames, start=1):
            if not ranges:
                raise ValueError(f"frame {number} has no byte ranges")
            for before, after in pairwise(ranges):
                if after.offset < before.end:
                    raise ValueError(f"byte ranges of frame {number} overlap or are out of order")

    def to_bytes(self) -> bytes:
        """Serialise compactly (little endian struct records); inverse of :meth:`from_bytes`.

        Layout: ``b"RCFT"``, version byte, encapsulated flag byte, u32 frame count; then
        per frame a u32 range count followed by (u64 offset, u64 length) per range.
        """
        parts = [_TABLE_HEADER.pack(_MAGIC, _VERSION, int(self.encapsulated), len(self.frames))]
        for ranges in self.frames:
            parts.append(_RANGE_COUNT.pack(len(ranges)))
            parts.extend(_RANGE.pack(r.offset, r.length) for r in ranges)
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> FrameTable:
        """Rebuild a table written by :meth:`to_bytes`; ``ValueError`` if ``data`` is not one."""
        view = memoryview(data)
        try:
            magic, version, flag, count = _TABLE_HEADER.unpack_from(view, 0)
            if magic != _MAGIC or version != _VERSION or flag not in (0, 1):
                raise ValueError("not a version 1 frame table")
            position = _TABLE_HEADER.size
            frames = []
            for _ in range(count):
                (ranges,) = _RANGE_COUNT.unpack_from(view, position)
                position += _RANGE_COUNT.size
                end = position + ranges * _RANGE.size
                if end > len(view):
                    raise ValueError("frame table is truncated")
                frames.append(tuple(ByteRange(*r) for r in _RANGE.iter_unpack(view[position:end])))
                position = end
        except struct.error as exc:
            raise ValueError(f"frame table is truncated: {exc}") from exc
        if position != len(view):
            raise ValueError(f"{len(view) - position} unexpected bytes after the frame table")
        return cls(encapsulated=bool(flag), frames=tuple(frames))

    def span(self, index: int) -> ByteRange:
        """The smallest range covering every range of frame ``index`` (0-based).

        Reading this span once and passing it to :meth:`extract` yields the frame; for
        encapsulated data the span also covers the item headers between fragments.
        """
        ranges = self._ranges(index)
        return ByteRange(ranges[0].offset, ranges[-1].end - ranges[0].offset)

    def extract(self, index: int, span_bytes: bytes) -> bytes:
        """Return frame ``index`` from the bytes read at :meth:`span`; item headers dropped."""
        ranges = self._ranges(index)
        start = ranges[0].offset
        if len(span_bytes) != ranges[-1].end - start:
            raise ValueError(
                f"frame {index + 1} spans {ranges[-1].end - start} bytes, got {len(span_bytes)}"
            )
        if len(ranges) == 1:
            return bytes(span_bytes)
        view = memoryview(span_bytes)
        return b"".join(view[r.offset - start : r.end - start] for r in ranges)

    def _ranges(self, index: int) -> tuple[ByteRange, ...]:
        if not 0 <= index < len(self.frames):
            raise IndexError(f"frame index {index} outside 0..{len(self.frames) - 1}")
        return self.frames[index]


def native_frame_table(first_offset: int, frame_length: int, count: int) -> FrameTable:
    """Table for ``count`` native frames of ``frame_length`` bytes laid end to end.

    PS3.5 §8.1.1: in native format frames are concatenated without padding, and any
    padding byte applies to the whole value only, so frame *i* starts exactly
    ``i * frame_length`` bytes into the value.
    """
    return FrameTable(
        encapsulated=False,
        frames=tuple(
            (ByteRange(first_offset + i * frame_length, frame_length),) for i in range(count)
        ),
    )


@dataclass(frozen=True, slots=True)
class Fragment:
    """One fragment item of encapsulated pixel data (PS3.5 §A.4)."""

    item_offset: int
    """Offset of the item's tag: Basic Offset Table entries point at this."""
    value: ByteRange
    """Where the fragment's own bytes are (item header excluded)."""
    head: bytes
    """The fragment's first bytes, to recognise a codestream starting in it."""


@dataclass(frozen=True, slots=True)
class EncapsulatedScan:
    """The item structure of encapsulated pixel data, as found by :func:`scan_encapsulated`."""

    basic_offsets: tuple[int, ...]
    fragments: tuple[Fragment, ...]
    end: int
    """Offset just past the Sequence Delimitation Item, where the next element starts."""


def scan_encapsulated(
    fp: RandomAccessFile, value_offset: int, file_size: int, little_endian: bool = True
) -> EncapsulatedScan:
    """Walk the items of encapsulated pixel data whose value starts at ``value_offset``.

    PS3.5 §A.4: the value is a Basic Offset Table item, then one item per fragment,
    then a Sequence Delimitation Item.  Item headers are read and fragment values are
    skipped by seeking, apart from their first few bytes (kept for
    :func:`map_fragments`), so the cost is independent of the size of the pixel data.
    Raises :class:`FrameLayoutError` when the structure is broken or truncated.
    """
    header = struct.Struct("<HHL" if little_endian else ">HHL")
    tag, length = _read_item_header(fp, header, value_offset, file_size)
    if tag != ITEM_TAG:
        raise FrameLayoutError(
            f"encapsulated pixel data starts with {_tag_text(tag)}, "
            "not the Basic Offset Table item (PS3.5 §A.4)"
        )
    table_offset = value_offset + _ITEM_HEADER_SIZE
    if length == UNDEFINED_LENGTH or length % 4 or table_offset + length > file_size:
        raise FrameLayoutError(f"Basic Offset Table item has an invalid length {length}")
    fp.seek(table_offset)
    count = length // 4
    basic_offsets = struct.unpack(("<" if little_endian else ">") + f"{count}L", fp.read(length))
    fragments: list[Fragment] = []
    position = table_offset + length
    while True:
        tag, length = _read_item_header(fp, header, position, file_size)
        if tag == SEQUENCE_DELIMITATION_TAG:
            return EncapsulatedScan(basic_offsets, tuple(fragments), position + _ITEM_HEADER_SIZE)
        fragments.append(_read_fragment(fp, tag, length, position, file_size, len(fragments) + 1))
        position = fragments[-1].value.end


def _read_item_header(
    fp: RandomAccessFile, header: struct.Struct, position: int, file_size: int
) -> tuple[int, int]:
    if position + _ITEM_HEADER_SIZE > file_size:
        raise FrameLayoutError(
            f"file ends at offset {file_size} inside encapsulated pixel data, before its "
            "Sequence Delimitation Item (PS3.5 §A.4): truncated"
        )
    fp.seek(position)
    group, element, length = header.unpack(fp.read(_ITEM_HEADER_SIZE))
    return group << 16 | element, length


def _read_fragment(
    fp: RandomAccessFile, tag: int, length: int, position: int, file_size: int, number: int
) -> Fragment:
    if tag != ITEM_TAG:
        raise FrameLayoutError(
            f"unexpected {_tag_text(tag)} at offset {position} inside encapsulated pixel data"
        )
    value_offset = position + _ITEM_HEADER_SIZE
    if length == UNDEFINED_LENGTH:
        raise FrameLayoutError(f"fragment {number} has an undefined length (PS3.5 §A.4)")
    if value_offset + length > file_size:
        raise FrameLayoutError(
            f"fragment {number} declares {length} bytes but the file ends "
            f"{file_size - value_offset} bytes into it: truncated"
        )
    head = fp.read(min(length, _HEAD_SIZE))
    return Fragment(position, ByteRange(value_offset, length), head)


def map_fragments(
    scan: EncapsulatedScan,
    number_of_frames: int,
    extended_offsets: tuple[Sequence[int], Sequence[int]] | None = None,
) -> FrameTable:
    """Assign the fragments of ``scan`` to ``number_of_frames`` frames.

    Evidence is tried from strongest to weakest, moving on when one is absent or does
    not fit the fragments:

    1. the Basic Offset Table (PS3.5 §A.4): byte offsets of each frame's first item
       tag, measured from the first byte of the first fragment's item tag;
    2. the Extended Offset Table (7FE0,0001) and its lengths (7FE0,0002)
       (PS3.3 §C.7.6.3.1.8), same offset origin, one fragment per frame;
    3. a single frame: every fragment belongs to it (PS3.5 §A.4);
    4. as many fragments as frames: one fragment per frame;
    5. fragments that begin a JPEG, JPEG-LS, JPEG 2000 or JPEG XL codestream start a
       frame, accepted only if that yields exactly ``number_of_frames`` frames.

    Raises :class:`FrameLayoutError` with the reasons when nothing fits.
    """
    fragments = scan.fragments
    if not fragments:
        raise FrameLayoutError("encapsulated pixel data holds no fragments")
    reasons: list[str] = []
    if scan.basic_offsets:
        try:
            return _split_at_offsets(
                fragments, scan.basic_offsets, number_of_frames, "Basic Offset Table"
            )
        except FrameLayoutError as exc:
            reasons.append(str(exc))
    if extended_offsets is not None:
        try:
            return _apply_extended_offsets(fragments, extended_offsets, number_of_frames)
        except FrameLayoutError as exc:
            reasons.append(str(exc))
    if number_of_frames == 1:
        return _group(fragments, [0])
    if len(fragments) == number_of_frames:
        return _group(fragments, list(range(len(fragments))))
    starts = [i for i, f in enumerate(fragments) if f.head.startswith(_CODESTREAM_STARTS)]
    if starts and starts[0] == 0 and len(starts) == number_of_frames:
        return _group(fragments, starts)
    reasons.append(
        f"{len(fragments)} fragments for {number_of_frames} frames, and {len(starts)} "
        "fragments start a recognised codestream"
    )
    raise FrameLayoutError("cannot assign fragments to frames: " + "; ".join(reasons))


def _split_at_offsets(
    fragments: Sequence[Fragment], offsets: Sequence[int], number_of_frames: int, source: str
) -> FrameTable:
    if len(offsets) != number_of_frames:
        raise FrameLayoutError(
            f"{source} lists {len(offsets)} frames but Number of Frames is {number_of_frames}"
        )
    origin = fragments[0].item_offset
    index_of = {fragment.item_offset - origin: i for i, fragment in enumerate(fragments)}
    starts = []
    for offset in offsets:
        if offset not in index_of:
            raise FrameLayoutError(f"{source} offset {offset} is not the start of a fragment item")
        starts.append(index_of[offset])
    if starts[0] != 0 or any(later <= earlier for earlier, later in pairwise(starts)):
        raise FrameLayoutError(f"{source} offsets do not increase from 0")
    return _group(fragments, starts)


def _apply_extended_offsets(
    fragments: Sequence[Fragment],
    extended_offsets: tuple[Sequence[int], Sequence[int]],
    number_of_frames: int,
) -> FrameTable:
    """Split at the Extended Offset Table, then trim single-fragment frames to their lengths.

    PS3.3 §C.7.6.3.1.8: Extended Offset Table Lengths holds each frame's exact byte
    length, which may be one less than its (even length) fragment.
    """
    offsets, lengths = extended_offsets
    table = _split_at_offsets(fragments, offsets, number_of_frames, "Extended Offset Table")
    if len(lengths) != len(offsets):
        return table
    frames = []
    for ranges, length in zip(table.frames, lengths, strict=True):
        if len(ranges) == 1 and length <= ranges[0].length:
            ranges = (ByteRange(ranges[0].offset, length),)
        frames.append(ranges)
    return FrameTable(encapsulated=True, frames=tuple(frames))


def _group(fragments: Sequence[Fragment], starts: list[int]) -> FrameTable:
    bounds = [*starts, len(fragments)]
    return FrameTable(
        encapsulated=True,
        frames=tuple(
            tuple(fragment.value for fragment in fragments[first:last])
            for first, last in pairwise(bounds)
        ),
    )


def swap_bytes(data: bytes, width: int) -> bytes:
    """Reverse the byte order of each ``width``-byte word of ``data``.

    PS3.5 §7.3: under Explicit VR Big Endian the bytes of every word of an OW, OF, OD
    (and so on) value are stored most significant first; reversing them gives the
    little endian bytes that the frames' Explicit VR Little Endian syntax requires.
    A trailing partial word is left unchanged.
    """
    whole = len(data) - len(data) % width
    words = np.frombuffer(data, dtype=np.uint8, count=whole).reshape(-1, width)
    return words[:, ::-1].tobytes() + data[whole:]


def repack_bits(data: bytes, frame_bits: int, count: int) -> bytes:
    """Copy ``count`` frames of ``frame_bits`` bits each so every frame starts on a byte.

    PS3.5 §8.1.1 (and Annex D): native pixel cells are packed as one little endian
    bit stream, each cell starting at the bit after the previous one, and frames are
    concatenated without padding.  With Bits Allocated 1 (or any cell size whose frame
    is not a whole number of bytes) frame *i* therefore starts mid-byte.  Each frame is
    re-emitted with its first pixel in the least significant bit of its first byte,
    padded with zero bits to a whole byte, keeping the least-significant-bit-first
    order, which is how a single frame of that size would be encoded on its own.
    """
    total = frame_bits * count
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), count=total, bitorder="little")
    frames = bits.reshape(count, frame_bits)
    return np.packbits(frames, axis=1, bitorder="little").tobytes()


def _tag_text(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
