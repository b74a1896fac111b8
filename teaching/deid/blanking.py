"""Rectangular pixel blanking of burned-in text, written back losslessly (PS3.15 E.3.1).

An educator who finds text burned into a flagged image gives rectangles (x, y, width, height in
pixel coordinates, on one frame or on every frame); the pixels inside become black and every
other pixel keeps exactly the value it decoded to:
- native little-endian pixel data is edited in place, byte for byte, in its own layout;
- anything else (compressed, big endian, bit-packed, YBR_FULL_422 sub-sampled) is decoded with
  pydicom, blanked, and stored uncompressed as Explicit VR Little Endian. Re-encoding with the
  original codec is avoided on purpose: a lossy codec would change the other pixels, and a
  lossless one buys nothing over storing the decoded values themselves.

"Black" is the darkest value the image can show: the smallest stored value for MONOCHROME2 and
colour images (0, or the most negative for signed data), the largest for MONOCHROME1 (whose scale
is inverted, PS3.3 C.7.6.3.1.2), (0, half, half) for YBR; for PALETTE COLOR it is index 0,
whatever colour the palette gives it. Burned In Annotation becomes "NO" only
after blanking, and a de-identified copy records the Clean Pixel Data Option (CID 7050 113101).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.utils import pack_bits
from pydicom.uid import UID, ExplicitVRLittleEndian

from teaching.deid.deidentify import transfer_syntax_of
from teaching.deid.method import CLEAN_PIXEL_DATA, add_method_code


@dataclass(frozen=True)
class Region:
    """A rectangle of pixels; `frame` is the 1-based frame number, None for every frame."""

    x: int
    y: int
    width: int
    height: int
    frame: int | None = None

    def describe(self) -> str:
        where = "every frame" if self.frame is None else f"frame {self.frame}"
        return f"(x={self.x}, y={self.y}, width={self.width}, height={self.height}, {where})"


@dataclass(frozen=True)
class BlankingResult:
    """The blanked copy, the regions applied and the transfer syntaxes before and after."""

    dataset: Dataset
    regions: tuple[Region, ...]
    original_transfer_syntax: str
    transfer_syntax: str


def _geometry(ds: Dataset) -> tuple[int, int, int]:
    if "PixelData" not in ds:
        raise ValueError("the instance has no Pixel Data to blank")
    rows, columns = int(ds.Rows), int(ds.Columns)
    frames = int(ds.get("NumberOfFrames") or 1)
    return rows, columns, frames


def _check(region: Region, rows: int, columns: int, frames: int) -> None:
    if region.width < 1 or region.height < 1:
        raise ValueError(f"region {region.describe()} is empty")
    inside = (
        region.x >= 0
        and region.y >= 0
        and region.x + region.width <= columns
        and region.y + region.height <= rows
    )
    if not inside:
        raise ValueError(f"region {region.describe()} lies outside the {columns}x{rows} image")
    if region.frame is not None and not 1 <= region.frame <= frames:
        raise ValueError(f"region {region.describe()} names a frame the image (of {frames}) lacks")


def black_value(photometric: str, bits_stored: int, signed: bool, samples: int) -> tuple[int, ...]:
    """The darkest stored value per sample for a photometric interpretation."""
    photometric = photometric.strip().upper()
    if photometric == "MONOCHROME1":
        value = (1 << (bits_stored - 1)) - 1 if signed else (1 << bits_stored) - 1
        return (value,) * samples
    if photometric.startswith("YBR") and samples == 3:
        half = 1 << (bits_stored - 1)
        return (0, half, half)
    value = -(1 << (bits_stored - 1)) if signed else 0
    return (value,) * samples


def _frames_of(region: Region, frames: int) -> range:
    return range(frames) if region.frame is None else range(region.frame - 1, region.frame)


def _paint(view: np.ndarray, regions: Iterable[Region], black: np.ndarray) -> None:
    """Set each region of a (frames, rows, columns, samples) view to `black`."""
    frames = view.shape[0]
    for region in regions:
        for frame in _frames_of(region, frames):
            y0, x0 = region.y, region.x
            view[frame, y0 : y0 + region.height, x0 : x0 + region.width, :] = black


def _in_place_possible(ds: Dataset, syntax: UID) -> bool:
    element = ds["PixelData"]
    return (
        not syntax.is_compressed
        and syntax.is_little_endian
        and int(ds.BitsAllocated) in (8, 16, 32, 64)
        and str(ds.get("PhotometricInterpretation", "")).strip() != "YBR_FULL_422"
        and not element.is_undefined_length
    )


def _blank_in_place(
    ds: Dataset, regions: tuple[Region, ...], geometry: tuple[int, int, int]
) -> None:
    rows, columns, frames = geometry
    samples = int(ds.get("SamplesPerPixel") or 1)
    width = int(ds.BitsAllocated) // 8
    count = frames * rows * columns * samples
    buffer = bytearray(ds.PixelData)
    if len(buffer) < count * width:
        raise ValueError("the Pixel Data is shorter than the image it describes")
    flat = np.frombuffer(buffer, dtype=f"<u{width}", count=count)
    if samples == 1 or int(ds.get("PlanarConfiguration") or 0) == 0:
        view = flat.reshape(frames, rows, columns, samples)
    else:
        view = flat.reshape(frames, samples, rows, columns).transpose(0, 2, 3, 1)
    black = black_value(
        str(ds.get("PhotometricInterpretation", "MONOCHROME2")),
        int(ds.get("BitsStored") or ds.BitsAllocated),
        int(ds.get("PixelRepresentation") or 0) == 1,
        samples,
    )
    # Negative values wrap to their two's complement over the whole allocated width.
    _paint(view, regions, np.array(black, dtype=np.int64).astype(f"<u{width}"))
    ds.PixelData = bytes(buffer)


def _blank_decoded(
    ds: Dataset, syntax: UID, regions: tuple[Region, ...], geometry: tuple[int, int, int]
) -> None:
    rows, columns, frames = geometry
    decoder = get_decoder(syntax)
    decoded: list[np.ndarray] = []
    pixel_info: dict[str, str | int] = {}
    # raw: no colour conversion, so the stored values are the decoded values themselves.
    for array, frame_info in decoder.iter_array(ds, raw=True):
        decoded.append(np.array(array).reshape(rows, columns, -1))
        pixel_info = frame_info
    stack = np.stack(decoded)
    if stack.shape[0] != frames:
        raise ValueError("the Pixel Data does not hold the frames the instance declares")
    samples = stack.shape[3]
    bits_allocated = int(pixel_info.get("bits_allocated", ds.BitsAllocated))
    bits_stored = int(pixel_info.get("bits_stored", ds.get("BitsStored") or bits_allocated))
    signed = int(pixel_info.get("pixel_representation", ds.get("PixelRepresentation") or 0)) == 1
    photometric = str(pixel_info.get("photometric_interpretation", ds.PhotometricInterpretation))
    black = black_value(photometric, bits_stored, signed, samples)
    _paint(stack, regions, np.array(black, dtype=stack.dtype))
    if bits_allocated == 1:
        data = pack_bits(stack.reshape(frames, rows, columns), pad=False)
    else:
        kind = "i" if signed else "u"
        data = stack.astype(f"<{kind}{bits_allocated // 8}").tobytes()
    if len(data) % 2:
        data += b"\x00"
    ds.PixelData = data
    ds["PixelData"].VR = "OB" if bits_allocated <= 8 else "OW"
    ds["PixelData"].is_undefined_length = False
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_stored
    ds.PixelRepresentation = 1 if signed else 0
    if samples > 1:
        ds.PlanarConfiguration = 0
    for keyword in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
        if keyword in ds:
            del ds[keyword]
    # The copy is now Explicit VR Little Endian: decode every element still held as read, then
    # forget how the original was encoded so it is written in the new syntax.
    for _ in ds.iterall():
        pass
    ds.set_original_encoding(None, None)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian


def blank_regions(dataset: Dataset, regions: Iterable[Region]) -> BlankingResult:
    """A copy of `dataset` with each region set to black; `dataset` itself is left unchanged.

    Raises ValueError, naming the region, when a region is empty or outside the image, and when
    the instance has no pixel data.
    """
    chosen = tuple(regions)
    if not chosen:
        raise ValueError("no region to blank")
    geometry = _geometry(dataset)
    for region in chosen:
        _check(region, *geometry)
    out = copy.deepcopy(dataset)
    syntax = UID(transfer_syntax_of(out))
    meta = getattr(out, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        out.ensure_file_meta()
        out.file_meta.TransferSyntaxUID = syntax
    if _in_place_possible(out, syntax):
        _blank_in_place(out, chosen, geometry)
    else:
        _blank_decoded(out, syntax, chosen, geometry)
    out.BurnedInAnnotation = "NO"
    if str(out.get("PatientIdentityRemoved", "")).strip().upper() == "YES":
        add_method_code(out, CLEAN_PIXEL_DATA)
    return BlankingResult(
        dataset=out,
        regions=chosen,
        original_transfer_syntax=str(syntax),
        transfer_syntax=str(out.file_meta.TransferSyntaxUID),
    )
