"""Read a stored DICOM instance once, at ingest: its data set and where its frames are.

Serving a frame later must be one ranged read of the stored file with no DICOM parsing,
so ingest does the parsing up front:

1. pydicom parses everything before the top-level pixel data (PS3.10 §7 file format,
   PS3.5 §7 data elements) and stops at the pixel data element's tag;
2. this module parses that element's header itself (PS3.5 §7.1.2, §7.1.3) and builds a
   :class:`~storage.frames.FrameTable`: native frames are computed from the image
   geometry (PS3.5 §8.1.1), encapsulated ones found by walking the items (PS3.5 §A.4);
3. elements stored after the pixel data (PS3.10 §7.2: Data Set Trailing Padding,
   Digital Signatures) are parsed from where the pixel data ends.

Pixel values are never decoded, and when the frames are plain ranges of the file the
pixel data is not even read: values are skipped by seeking.  Only encodings whose frame
bytes differ from the stored bytes (deflate, big endian words, frames not starting on a
byte) read the value, to produce :attr:`PixelDataInfo.derived`.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, BinaryIO, Final, TypeVar, cast

import pydicom
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileDataset
from pydicom.filereader import dcmread, read_dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

from storage.frames import (
    UNDEFINED_LENGTH,
    FrameLayoutError,
    FrameTable,
    map_fragments,
    native_frame_table,
    repack_bits,
    scan_encapsulated,
    swap_bytes,
)
from storage.raw_json import element_json

logger = logging.getLogger(__name__)

PIXEL_DATA: Final = 0x7FE00010
FLOAT_PIXEL_DATA: Final = 0x7FE00008
DOUBLE_FLOAT_PIXEL_DATA: Final = 0x7FE00009
_PIXEL_NAMES: Final = MappingProxyType(
    {
        FLOAT_PIXEL_DATA: "Float Pixel Data",
        DOUBLE_FLOAT_PIXEL_DATA: "Double Float Pixel Data",
        PIXEL_DATA: "Pixel Data",
    }
)
_FLOAT_BITS: Final = MappingProxyType({FLOAT_PIXEL_DATA: 32, DOUBLE_FLOAT_PIXEL_DATA: 64})
"""Bits Allocated fixed by the Floating Point Image Pixel modules, PS3.3 §C.7.6.24."""
_EXTENDED_OFFSET_TABLE: Final = 0x7FE00001
_EXTENDED_OFFSET_TABLE_LENGTHS: Final = 0x7FE00002
_HEADER_READ_LIMIT: Final = 12
"""Element and item headers are at most 12 bytes long (PS3.5 §7.1.2)."""
_MAGIC_PROBE: Final = (128, 4)
"""pydicom's look for 'DICM' after the preamble (PS3.10 §7.1); short in small files."""

_T = TypeVar("_T")


class UnreadableInstance(Exception):
    """The bytes are not a DICOM dataset we can parse (reason in str())."""


@dataclass
class PixelDataInfo:
    """The top-level pixel data element and where its frames are."""

    tag: int
    """0x7FE00010 Pixel Data, 0x7FE00008 Float Pixel Data or 0x7FE00009 Double Float."""
    vr: str
    """As stored ('OB', 'OW', 'OF', 'OD'); implicit VR files get the PS3.5 §A.1 value."""
    frame_table: FrameTable | None
    """None when the frames cannot be located; ``problem`` then says why."""
    problem: str | None
    derived: bytes | None
    """The frames as Little Endian, byte-aligned, concatenated, when they are not plain
    ranges of the stored file (deflated data set, big endian words, frames not starting
    on a byte); ``frame_table`` then indexes into these bytes, not into the file."""
    frames_transfer_syntax: str
    """The stored syntax when encapsulated, else Explicit VR Little Endian."""


@dataclass
class ParsedInstance:
    """What ingest needs from one stored instance."""

    dataset: pydicom.Dataset
    """Every element except the top-level pixel data element (elements after it
    included); ``file_meta`` attached when the file had one."""
    transfer_syntax: str
    """From the file meta; without one, the syntax pydicom detected."""
    is_part10: bool
    """The file had the 128-byte preamble, 'DICM' and file meta (PS3.10 §7.1)."""
    pixel: PixelDataInfo | None
    """None when there is no top-level pixel data."""
    json: dict[int, dict[str, Any]] = field(default_factory=dict)
    """The DICOM JSON of the top-level elements computed from their bytes
    (:mod:`storage.raw_json`), by tag; those elements are left unconverted in
    :attr:`dataset`, every other one is converted."""


def read_instance(fp: BinaryIO) -> ParsedInstance:
    """Parse the instance stored in ``fp``, from its first byte, for ingest.

    Raises :class:`UnreadableInstance` when the bytes are not a DICOM data set this
    server can parse: garbage, no elements, or a file cut inside the header.  A problem
    confined to the pixel data never raises; it is reported in
    :attr:`PixelDataInfo.problem`.  ``OSError`` raised by ``fp`` itself propagates
    unchanged, because a failing disk says nothing about the instance.
    """
    try:
        return _read_instance(_Source(fp))
    except UnreadableInstance:
        raise
    except _SourceFailure as failure:
        raise failure.error from None
    except Exception as exc:  # pydicom and numpy raise many types on malformed bytes
        reason = f"not a readable DICOM data set: {type(exc).__name__}: {exc}"
        raise UnreadableInstance(reason) from exc


class _SourceFailure(Exception):
    """The file object itself failed, as opposed to holding bad bytes."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class _Source:
    """The stored file, as pydicom and this module read it.

    Wraps the caller's file object to (1) clamp reads to the bytes that remain, so a
    garbage 4 GiB length costs nothing; (2) record header-sized reads that hit the end of
    the file part-way, which pydicom takes for a clean end of data, so that a file cut
    inside an element header is not mistaken for a shorter valid one; (3) mark I/O
    errors so they are not reported as bad data.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.size = _io(raw.seek, 0, os.SEEK_END)
        _io(raw.seek, 0)
        self.short_reads: list[int] = []

    def read(self, size: int | None = -1) -> bytes:
        start = self.tell()
        remaining = max(0, self.size - start)
        data = _io(self._raw.read, remaining if size is None or size < 0 else min(size, remaining))
        cut = size is not None and 0 < len(data) < size <= _HEADER_READ_LIMIT
        if cut and (start, size) != _MAGIC_PROBE:
            self.short_reads.append(start)
        return data

    def read_at(self, offset: int, size: int) -> bytes:
        self.seek(offset)
        return self.read(size)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return _io(self._raw.seek, offset, whence)

    def tell(self) -> int:
        return _io(self._raw.tell)


def _io(function: Callable[..., _T], *args: int) -> _T:
    try:
        return function(*args)
    except OSError as exc:
        raise _SourceFailure(exc) from exc


def _read_instance(source: _Source) -> ParsedInstance:
    header = dcmread(cast(BinaryIO, source), stop_before_pixels=True, force=True)
    stop = source.tell()
    meta_syntax = _meta_transfer_syntax(header)
    if meta_syntax == DeflatedExplicitVRLittleEndian:
        return _read_deflated(source)
    implicit, little = _dataset_encoding(header)
    json = _check_header(header, source, stop)
    syntax = meta_syntax or _detected_syntax(implicit, little)
    pixel = None
    tail = None
    if stop < source.size:
        tag = _tag_at(source, stop, little)
        if tag not in _PIXEL_NAMES:
            raise UnreadableInstance(
                f"parsing stopped at offset {stop} of {source.size}: not a DICOM data set"
            )
        pixel, tail_offset = _read_pixel_element(source, header, stop, implicit, little, syntax)
        if tail_offset is not None and tail_offset < source.size:
            tail = _read_tail(source, tail_offset, implicit, little, header)
    dataset = _assemble(header, tail, implicit, little)
    _require_data(dataset, pixel)
    return ParsedInstance(dataset, syntax, _is_part10(header), pixel, json)


def _require_data(dataset: Dataset, pixel: PixelDataInfo | None) -> None:
    """Reject a file holding no data set elements.

    PS3.5 §7.1 reserves groups 0000 (DIMSE commands, PS3.7) and 0002 (file meta,
    PS3.10) for uses outside a data set; a file of only those, such as a run of zero
    bytes read as repeated (0000,0000), holds no instance.
    """
    if pixel is None and all(element.tag >> 16 in (0x0000, 0x0002) for element in dataset):
        raise UnreadableInstance("the file holds no data set elements")


def _meta_transfer_syntax(header: FileDataset) -> str | None:
    value = header.file_meta.get("TransferSyntaxUID")
    return str(value) if value else None


def _detected_syntax(implicit: bool, little: bool) -> str:
    """The syntax matching the encoding pydicom found (PS3.5 §A.1, §A.2, §A.3)."""
    if implicit:
        return str(ImplicitVRLittleEndian)
    return str(ExplicitVRLittleEndian if little else ExplicitVRBigEndian)


def _is_part10(header: FileDataset) -> bool:
    return header.preamble is not None and len(header.file_meta) > 0


def _dataset_encoding(header: FileDataset) -> tuple[bool, bool]:
    """The encoding pydicom actually used for the data set: (implicit VR, little endian).

    Not ``original_encoding``: when the first element contradicts the transfer syntax
    (implicit VR under an explicit syntax is common in the wild) pydicom switches to
    what it finds but records what it expected.  Raw elements carry the real flags.
    Groups 0000 and 0002 are skipped: they are always read with their own encodings.
    """
    for tag in sorted(header.keys()):
        if tag >> 16 in (0x0000, 0x0002):
            continue
        element = header.get_item(tag)
        if isinstance(element, RawDataElement):
            return element.is_implicit_VR, element.is_little_endian
    implicit, little = header.original_encoding
    return implicit is not False, little is not False


def _check_header(header: FileDataset, source: _Source, stop: int) -> dict[int, dict[str, Any]]:
    """Reject a header that was cut short, converting every element on the way; the DICOM
    JSON of the top-level elements that need no conversion to give it, by tag.

    PS3.5 §7.1: every element is a header and a value of exactly the stated length.
    pydicom keeps whatever a short read returned, so the marks of a truncated file are
    a header read that ended early and a value shorter than its length.  Converting
    now also means no later consumer of the dataset meets a conversion error; an element
    whose JSON :mod:`storage.raw_json` reads from its bytes cannot fail to convert, so it
    is left as it is (converting it would cost more than everything else here).
    """
    cut = [offset for offset in source.short_reads if offset < stop]
    if cut:
        raise UnreadableInstance(f"the file ends inside a data element header at offset {cut[0]}")
    for tag in sorted(header.file_meta.keys()):
        damage = _convert(header.file_meta, tag)
        if damage is not None:
            raise UnreadableInstance(damage)
    known: dict[int, dict[str, Any]] = {}
    for tag in sorted(header.keys()):
        raw = header.get_item(tag)
        if isinstance(raw, RawDataElement):
            damage = _truncation(raw, tag)
            if damage is not None:
                raise UnreadableInstance(damage)
            value_json = element_json(raw)
            if value_json is not None:
                known[tag] = value_json
                continue
        damage = _convert(header, tag)
        if damage is not None:
            raise UnreadableInstance(damage)
    return known


def _convert(dataset: Dataset, tag: int) -> str | None:
    """Convert one element (and any sequence below it); describe it if it was cut short."""
    raw = dataset.get_item(tag)
    if isinstance(raw, RawDataElement):
        damage = _truncation(raw, tag)
        if damage is not None:
            return damage
    element = dataset[tag]
    if element.VR == "SQ":
        for item in element.value:
            for item_tag in sorted(item.keys()):
                damage = _convert(item, item_tag)
                if damage is not None:
                    return damage
    return None


def _truncation(raw: RawDataElement, tag: int) -> str | None:
    """Why the element's value is shorter than its header says; None when it is not."""
    if raw.value is not None and raw.length != UNDEFINED_LENGTH and len(raw.value) < raw.length:
        return (
            f"data element {_tag_text(tag)} declares {raw.length} bytes but the file "
            f"holds only {len(raw.value)}: truncated"
        )
    return None


def _tag_at(source: _Source, offset: int, little: bool) -> int | None:
    head = source.read_at(offset, 4)
    if len(head) < 4:
        return None
    group, element = struct.unpack("<HH" if little else ">HH", head)
    return int(group) << 16 | int(element)


@dataclass(frozen=True, slots=True)
class _ElementHeader:
    tag: int
    vr: str
    length: int
    value_offset: int


def _read_element_header(
    source: _Source, offset: int, implicit: bool, little: bool
) -> _ElementHeader:
    """Parse a data element header as pydicom's own parser would (PS3.5 §7.1.2, §7.1.3).

    Explicit VR: tag, VR, then a 4-byte length after 2 reserved bytes for the long-VR
    group (OB, OW, OF, OD, UN, ...) or a 2-byte length otherwise.  Like pydicom, a "VR"
    that is not two capital letters means the writer switched to implicit VR.
    """
    head = source.read_at(offset, 12)
    if len(head) < 8:
        raise FrameLayoutError(f"the file ends inside the pixel data header at {offset}")
    endian = "<" if little else ">"
    group, number = struct.unpack_from(endian + "HH", head)
    tag = int(group) << 16 | int(number)
    vr_bytes = head[4:6]
    if not implicit and b"AA" <= vr_bytes <= b"ZZ":
        vr = vr_bytes.decode("latin-1")
        if vr not in EXPLICIT_VR_LENGTH_32:
            (short_length,) = struct.unpack_from(endian + "H", head, 6)
            return _ElementHeader(tag, vr, int(short_length), offset + 8)
        if len(head) < 12:
            raise FrameLayoutError(f"the file ends inside the pixel data header at {offset}")
        (length,) = struct.unpack_from(endian + "L", head, 8)
        return _ElementHeader(tag, vr, int(length), offset + 12)
    (length,) = struct.unpack_from(endian + "L", head, 4)
    vr = _implicit_vr(tag, length == UNDEFINED_LENGTH)
    return _ElementHeader(tag, vr, int(length), offset + 8)


def _implicit_vr(tag: int, encapsulated: bool) -> str:
    """The VR an implicit VR file leaves unstated: PS3.5 §A.1 (OW), §A.4 (OB), PS3.6."""
    return {FLOAT_PIXEL_DATA: "OF", DOUBLE_FLOAT_PIXEL_DATA: "OD"}.get(
        tag, "OB" if encapsulated else "OW"
    )


def _read_pixel_element(
    source: _Source, header: Dataset, offset: int, implicit: bool, little: bool, syntax: str
) -> tuple[PixelDataInfo, int | None]:
    """Locate the frames of the pixel data element at ``offset``.

    Also returns where the next element starts, or None when the pixel data runs to
    (or past) the end of the file.
    """
    try:
        element = _read_element_header(source, offset, implicit, little)
    except FrameLayoutError as exc:
        tag = _tag_at(source, offset, little) or PIXEL_DATA
        return _failed(tag, _implicit_vr(tag, False), str(exc), str(ExplicitVRLittleEndian)), None
    if element.length == UNDEFINED_LENGTH:
        return _read_encapsulated(source, header, element, little, syntax)
    end = element.value_offset + element.length
    return _read_native(source, header, element, little), (end if end <= source.size else None)


def _read_encapsulated(
    source: _Source, header: Dataset, element: _ElementHeader, little: bool, syntax: str
) -> tuple[PixelDataInfo, int | None]:
    """Encapsulated pixel data (PS3.5 §A.4): find the fragments, then group them into frames."""
    try:
        scan = scan_encapsulated(source, element.value_offset, source.size, little)
    except FrameLayoutError as exc:
        return _failed(element.tag, element.vr, str(exc), syntax), None
    try:
        table = map_fragments(scan, _number_of_frames(header), _extended_offsets(header, little))
    except FrameLayoutError as exc:
        return _failed(element.tag, element.vr, str(exc), syntax), scan.end
    return PixelDataInfo(element.tag, element.vr, table, None, None, syntax), scan.end


def _read_native(
    source: _Source, header: Dataset, element: _ElementHeader, little: bool
) -> PixelDataInfo:
    """Native pixel data (PS3.5 §8.1.1): frames at fixed strides from the value's start."""
    native = str(ExplicitVRLittleEndian)
    layout = _native_layout(header, element.tag, element.vr, little)
    if isinstance(layout, str):
        return _failed(element.tag, element.vr, layout, native)
    available = max(0, min(element.length, source.size - element.value_offset))
    if available < layout.stored_bytes:
        return _failed(element.tag, element.vr, layout.shortfall(element.tag, available), native)
    if layout.in_place:
        table = native_frame_table(element.value_offset, layout.frame_bytes, layout.count)
        return PixelDataInfo(element.tag, element.vr, table, None, None, native)
    value = source.read_at(element.value_offset, layout.stored_bytes)
    return _derived(element.tag, element.vr, layout, value)


@dataclass(frozen=True, slots=True)
class _NativeLayout:
    """How native frames sit in a pixel data value (PS3.5 §8.1.1, Annex D)."""

    rows: int
    columns: int
    samples: int
    """Samples stored per pixel (see :func:`_stored_samples`)."""
    bits_allocated: int
    count: int
    swap_width: int
    """Bytes per word to reverse for little endian frames; 1 when nothing to reverse."""

    @property
    def frame_bits(self) -> int:
        return self.rows * self.columns * self.samples * self.bits_allocated

    @property
    def frame_bytes(self) -> int:
        return -(-self.frame_bits // 8)

    @property
    def stored_bytes(self) -> int:
        """Bytes of the value holding every frame, up to a whole word when swapping."""
        needed = -(-self.frame_bits * self.count // 8)
        return -(-needed // self.swap_width) * self.swap_width

    @property
    def in_place(self) -> bool:
        """Frames are plain ranges of the stored value: no swapping, each starts on a byte."""
        return self.swap_width == 1 and (self.frame_bits % 8 == 0 or self.count == 1)

    def normalise(self, value: bytes) -> bytes:
        """The frames as Little Endian, each starting on a byte, concatenated."""
        data = swap_bytes(value, self.swap_width) if self.swap_width > 1 else value
        if self.frame_bits % 8 and self.count > 1:
            return repack_bits(data, self.frame_bits, self.count)
        return data[: self.frame_bytes * self.count]

    def shortfall(self, tag: int, available: int) -> str:
        return (
            f"{_PIXEL_NAMES[tag]} holds {available} bytes, Rows×Columns×samples stored×"
            f"BitsAllocated×NumberOfFrames = {self.rows}×{self.columns}×{self.samples}×"
            f"{self.bits_allocated}×{self.count} bits needs {self.stored_bytes}"
        )


def _native_layout(ds: Dataset, tag: int, vr: str, little: bool) -> _NativeLayout | str:
    """Frame geometry from the Image Pixel module (PS3.3 §C.7.6.3), or why it is unusable."""
    rows = _positive_int(ds, "Rows")
    columns = _positive_int(ds, "Columns")
    bits = _positive_int(ds, "BitsAllocated") or _FLOAT_BITS.get(tag)
    if rows is None or columns is None or bits is None:
        missing = [
            name
            for name, value in (("Rows", rows), ("Columns", columns), ("BitsAllocated", bits))
            if value is None
        ]
        return (
            f"{_PIXEL_NAMES[tag]} cannot be split into frames: "
            f"{', '.join(missing)} missing or invalid"
        )
    samples = _stored_samples(ds, _positive_int(ds, "SamplesPerPixel") or 1)
    return _NativeLayout(
        rows, columns, samples, bits, _number_of_frames(ds), _swap_width(vr, bits, little)
    )


def _stored_samples(ds: Dataset, samples: int) -> int:
    """Samples stored per pixel: YBR_FULL_422 keeps one Cb and one Cr per two pixels.

    PS3.3 §C.7.6.3.1.2: native YBR_FULL_422 holds Y1 Y2 Cb Cr for each pair of pixels,
    two samples per pixel although Samples per Pixel is 3.
    """
    try:
        photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    except (TypeError, ValueError):
        return samples
    return 2 if samples == 3 and photometric == "YBR_FULL_422" else samples


def _swap_width(vr: str, bits_allocated: int, little: bool) -> int:
    """Word size whose bytes Explicit VR Big Endian reversed, PS3.5 §7.3 and §8.1.1.

    OB is a byte stream, unaffected by byte order.  Other VRs hold words: pixel cells of
    a whole number of bytes above 8 bits are each one word (as pydicom decodes them);
    smaller cells (1 or 8 bits) are packed into OW's 16-bit words, so word pairs of bytes
    are swapped (pydicom's ``be_swap_ow`` for 8 bits; the same rule for 1 bit).
    """
    if little or vr == "OB":
        return 1
    if bits_allocated > 8 and bits_allocated % 8 == 0:
        return bits_allocated // 8
    return 2


def _positive_int(ds: Dataset, keyword: str) -> int | None:
    """The element's value as a positive int, or None when absent, empty or invalid."""
    try:
        number = int(ds.get(keyword))
    except (TypeError, ValueError, OverflowError):
        return None
    return number if number > 0 else None


def _number_of_frames(ds: Dataset) -> int:
    """Number of Frames (PS3.3 §C.7.6.6); missing, invalid or 0 means a single frame."""
    return _positive_int(ds, "NumberOfFrames") or 1


def _extended_offsets(ds: Dataset, little: bool) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """(7FE0,0001) Extended Offset Table and (7FE0,0002) its lengths, PS3.3 §C.7.6.3."""
    offsets = _unpack_very_long(ds, _EXTENDED_OFFSET_TABLE, little)
    if not offsets:
        return None
    return offsets, _unpack_very_long(ds, _EXTENDED_OFFSET_TABLE_LENGTHS, little)


def _unpack_very_long(ds: Dataset, tag: int, little: bool) -> tuple[int, ...]:
    value = ds[tag].value if tag in ds else None
    if not isinstance(value, bytes) or len(value) % 8:
        return ()
    return struct.unpack(("<" if little else ">") + f"{len(value) // 8}Q", value)


def _derived(tag: int, vr: str, layout: _NativeLayout, value: bytes) -> PixelDataInfo:
    table = native_frame_table(0, layout.frame_bytes, layout.count)
    derived = layout.normalise(value)
    return PixelDataInfo(tag, vr, table, None, derived, str(ExplicitVRLittleEndian))


def _failed(tag: int, vr: str, problem: str, frames_syntax: str) -> PixelDataInfo:
    return PixelDataInfo(tag, vr, None, problem, None, frames_syntax)


def _read_tail(
    source: _Source, offset: int, implicit: bool, little: bool, header: FileDataset
) -> Dataset:
    """Elements stored after the pixel data (PS3.10 §7.2: e.g. (FFFC,FFFC) Data Set
    Trailing Padding, (FFFA,FFFA) Digital Signatures Sequence).

    The frames are already located, so a damaged tail costs only the damaged
    elements: they are dropped and logged, never a reason to reject the instance.
    """
    source.seek(offset)
    cuts = len(source.short_reads)
    try:
        tail = read_dataset(
            cast(BinaryIO, source),
            implicit,
            little,
            parent_encoding=header.original_character_set,
        )
    except _SourceFailure:
        raise
    except Exception as exc:
        logger.warning("ignoring unreadable elements after the pixel data at %d: %s", offset, exc)
        return Dataset()
    if len(source.short_reads) > cuts:
        logger.warning("the file ends inside an element header after the pixel data")
    for tag in sorted(tail.keys()):
        damage = _convert_leniently(tail, tag)
        if damage is not None:
            logger.warning("dropping element %s after the pixel data: %s", _tag_text(tag), damage)
            del tail[tag]
    return tail


def _convert_leniently(dataset: Dataset, tag: int) -> str | None:
    try:
        return _convert(dataset, tag)
    except _SourceFailure:
        raise
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def _assemble(header: FileDataset, tail: Dataset | None, implicit: bool, little: bool) -> Dataset:
    """A plain Dataset of the header and tail elements, detached from the file object."""
    dataset = Dataset()
    for element in header.elements():  # as they are: iterating a Dataset converts each
        dataset[element.tag] = element
    for element in tail or ():
        if element.tag in dataset:
            logger.warning("ignoring repeated element %s after the pixel data", element.tag)
        else:
            dataset.add(element)
    if len(header.file_meta):
        dataset.file_meta = header.file_meta
    dataset.set_original_encoding(implicit, little, header.original_character_set)
    return dataset


def _read_deflated(source: _Source) -> ParsedInstance:
    """Deflated Explicit VR Little Endian (PS3.5 §A.5).

    Everything after the file meta is one deflate stream, so offsets in the stored file
    say nothing about where frames are.  pydicom reads (and inflates) the whole data set
    and the frames are served from :attr:`PixelDataInfo.derived`.
    """
    source.seek(0)
    full = dcmread(cast(BinaryIO, source), force=True)
    pixel_tags = sorted(tag for tag in _PIXEL_NAMES if tag in full)
    raw = full.get_item(pixel_tags[0]) if pixel_tags else None
    if pixel_tags:
        del full[pixel_tags[0]]
    json = _check_header(full, source, source.size)
    pixel = _deflated_pixel(full, pixel_tags[0], raw) if raw is not None else None
    dataset = _assemble(full, None, False, True)
    _require_data(dataset, pixel)
    syntax = str(DeflatedExplicitVRLittleEndian)
    return ParsedInstance(dataset, syntax, _is_part10(full), pixel, json)


def _deflated_pixel(ds: Dataset, tag: int, raw: DataElement | RawDataElement) -> PixelDataInfo:
    """Frames of an inflated native pixel data value, all in :attr:`PixelDataInfo.derived`."""
    native = str(ExplicitVRLittleEndian)
    vr = raw.VR or _implicit_vr(tag, False)
    undefined = (
        raw.length == UNDEFINED_LENGTH
        if isinstance(raw, RawDataElement)
        else raw.is_undefined_length
    )
    if undefined or not isinstance(raw.value, bytes):
        problem = "encapsulated pixel data in a deflated data set (PS3.5 §A.5 is native only)"
        return _failed(tag, vr, problem, native)
    layout = _native_layout(ds, tag, vr, True)
    if isinstance(layout, str):
        return _failed(tag, vr, layout, native)
    if len(raw.value) < layout.stored_bytes:
        return _failed(tag, vr, layout.shortfall(tag, len(raw.value)), native)
    return _derived(tag, vr, layout, raw.value)


def _tag_text(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
