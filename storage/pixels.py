"""Decoding one frame to a numpy array from what the archive stores, without the blob.

A frame arrives as :meth:`storage.archive.Archive.frames` returns it: one ranged read through
the frame table, either native (little endian, each frame starting on a byte: PS3.5 §8.1.1 as
normalised at ingest) or one encapsulated frame (PS3.5 §A.4, the concatenated fragments of that
frame). What the decoder needs to know about it, the Image Pixel module (PS3.3 §C.7.6.3), comes
from the instance's stored DICOM JSON as a :class:`PixelDescription`.

Decoding is pydicom's (``pydicom.pixels.get_decoder``: its native decoder, and pylibjpeg,
pyjpegls, openjpeg, RLE and Pillow plugins for the compressed syntaxes); an encapsulated frame is
handed to it as a one-frame encapsulated value. Colour comes out as pydicom's ``as_rgb`` makes
it: YBR_FULL and YBR_FULL_422 are converted to RGB (PS3.3 §C.7.6.3.1.2), JPEG 2000's YBR_ICT and
YBR_RCT are returned as RGB by the codec, and :attr:`DecodedFrame.photometric_interpretation`
says which colour space the array is in.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.encaps import encapsulate
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import UID

from storage import json_values as jv
from storage.errors import NotFound, Unavailable

MAX_FRAME_BYTES = 1024**3
"""Largest decoded frame we allocate; larger geometry is refused rather than attempted."""

_PIXEL_KEYWORDS = (
    ("7FE00010", "PixelData"),
    ("7FE00008", "FloatPixelData"),
    ("7FE00009", "DoubleFloatPixelData"),
)
_FLOAT_BITS = {"FloatPixelData": 32, "DoubleFloatPixelData": 64}


@dataclass(frozen=True)
class PixelDescription:
    """The Image Pixel module attributes a decoder needs (PS3.3 §C.7.6.3, §C.7.6.6)."""

    rows: int
    columns: int
    samples_per_pixel: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    photometric_interpretation: str
    planar_configuration: int
    number_of_frames: int
    pixel_keyword: str = "PixelData"

    @classmethod
    def from_json(cls, doc: jv.Document) -> PixelDescription:
        """Build from an instance's DICOM JSON: NotFound without pixel data, Unavailable
        naming what is missing when the geometry is incomplete.

        Absent optional attributes take their PS3.3 meaning: Samples per Pixel 1, Bits Stored
        equal to Bits Allocated, Pixel Representation 0 (unsigned), Planar Configuration 0, and
        one frame when Number of Frames is absent or not a positive integer.
        """
        keyword = next((kw for tag, kw in _PIXEL_KEYWORDS if tag in doc), None)
        if keyword is None:
            raise NotFound("the instance has no pixel data")
        rows = jv.first_int(doc, "00280010")
        columns = jv.first_int(doc, "00280011")
        bits_allocated = jv.first_int(doc, "00280100") or _FLOAT_BITS.get(keyword)
        missing = [
            name
            for name, value in (
                ("Rows", rows),
                ("Columns", columns),
                ("BitsAllocated", bits_allocated),
            )
            if value is None or value < 1
        ]
        if missing:
            raise Unavailable(f"the pixel data cannot be decoded: {', '.join(missing)} missing")
        assert rows is not None and columns is not None and bits_allocated is not None
        samples = jv.first_int(doc, "00280002") or 1
        photometric = jv.text(doc, "00280004") or ("MONOCHROME2" if samples == 1 else "RGB")
        frames = jv.first_int(doc, "00280008")
        return cls(
            rows=rows,
            columns=columns,
            samples_per_pixel=samples,
            bits_allocated=bits_allocated,
            bits_stored=jv.first_int(doc, "00280101") or bits_allocated,
            pixel_representation=jv.first_int(doc, "00280103") or 0,
            photometric_interpretation=photometric.upper(),
            planar_configuration=jv.first_int(doc, "00280006") or 0,
            number_of_frames=frames if frames is not None and frames > 0 else 1,
            pixel_keyword=keyword,
        )

    @property
    def decoded_bytes(self) -> int:
        """Bytes of one decoded frame (at least one byte per sample)."""
        width = max(1, -(-self.bits_allocated // 8))
        return self.rows * self.columns * self.samples_per_pixel * width


@dataclass(frozen=True)
class DecodedFrame:
    """One frame as pixel values: (rows, columns) or (rows, columns, samples), interleaved."""

    array: np.ndarray
    photometric_interpretation: str
    """The colour space of ``array``: RGB where the decoder or pydicom converted YBR."""
    description: PixelDescription


def can_decode(syntax: str) -> bool:
    """Whether frames stored in ``syntax`` can be decoded here (an installed decoder exists)."""
    try:
        return bool(get_decoder(UID(syntax)).is_available)
    except (NotImplementedError, ValueError):
        return False


def decode_frame(
    frame: bytes, syntax: str, description: PixelDescription, *, number: int = 1
) -> DecodedFrame:
    """Decode one frame's bytes in ``syntax`` (native frames come as Explicit VR Little
    Endian); :class:`Unavailable` says why when no decoder exists or the frame is undecodable."""
    uid = UID(syntax)
    if description.decoded_bytes > MAX_FRAME_BYTES:
        raise Unavailable(
            f"frame {number} would decode to {description.decoded_bytes} bytes, over the "
            f"{MAX_FRAME_BYTES} byte limit"
        )
    try:
        decoder = get_decoder(uid)
    except (NotImplementedError, ValueError):
        raise Unavailable(
            f"no decoder exists for transfer syntax {uid} ({uid.name or 'unknown'})"
        ) from None
    if not decoder.is_available:
        raise Unavailable(f"the decoder for transfer syntax {uid} ({uid.name}) is not installed")
    source = encapsulate([frame]) if uid.is_encapsulated else frame
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            array, properties = decoder.as_array(source, **_options(description))
    except Exception as exc:  # decoder plugins raise anything from ValueError to RuntimeError
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise Unavailable(f"frame {number} cannot be decoded: {reason}") from exc
    photometric = str(properties.get("photometric_interpretation", ""))
    return DecodedFrame(array, photometric or description.photometric_interpretation, description)


def _options(description: PixelDescription) -> dict[str, Any]:
    options: dict[str, Any] = {
        "rows": description.rows,
        "columns": description.columns,
        "samples_per_pixel": description.samples_per_pixel,
        "bits_allocated": description.bits_allocated,
        "bits_stored": description.bits_stored,
        "pixel_representation": description.pixel_representation,
        "photometric_interpretation": description.photometric_interpretation,
        "number_of_frames": 1,
        "pixel_keyword": description.pixel_keyword,
        "as_rgb": True,
        "allow_excess_frames": False,
    }
    if description.samples_per_pixel > 1:
        options["planar_configuration"] = description.planar_configuration
    return options


def native_bytes(decoded: DecodedFrame) -> bytes:
    """The frame as Explicit VR Little Endian pixel data holds it (PS3.5 §8.1.1): little
    endian words, samples interleaved (Planar Configuration 0), in the colour space of
    :attr:`DecodedFrame.photometric_interpretation` (RGB for YBR_FULL/YBR_FULL_422 sources,
    as an instance decompressed by pydicom also declares)."""
    array = np.ascontiguousarray(decoded.array)
    return array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
