"""The modules that turn a frame's stored values into display values, read from the
instance's stored DICOM JSON: Modality LUT (PS3.3 §C.11.1), VOI LUT (PS3.3 §C.11.2) and
Palette Color LUT (PS3.3 §C.7.6.3.1.5-6, §C.7.9), including their places in the functional
groups of enhanced multi-frame images (PS3.3 §C.7.6.16). LUT data held as bulk data is fetched
only when the photometric interpretation uses it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import numpy as np

from storage import json_values as jv
from storage.errors import Unavailable

DEFAULT_FRAME_TIME_MS = 100.0
VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")


@dataclass(frozen=True)
class Window:
    """A VOI window (PS3.3 §C.11.2.1.2): center and width in modality LUT output units."""

    center: float
    width: float
    function: str = "LINEAR"

    def problem(self) -> str | None:
        """Why this window cannot be applied (PS3.3 §C.11.2.1.2, §C.11.2.1.3), or None."""
        if not (math.isfinite(self.center) and math.isfinite(self.width)):
            return "center and width must be finite numbers"
        if self.function not in VOI_FUNCTIONS:
            return f"unknown VOI LUT function {self.function!r}"
        if self.function == "LINEAR" and self.width < 1:
            return f"width {self.width:g} is below 1, the least a LINEAR window allows"
        if self.width <= 0:
            return f"width {self.width:g} must be greater than 0"
        return None


@dataclass(frozen=True)
class Lut:
    """A lookup table: LUT Descriptor (entries, first value mapped, bits per entry) and data
    (PS3.3 §C.11.1.1.1): inputs below the first value map to the first entry, inputs past
    the last entry to the last one."""

    first_mapped: int
    bits: int
    data: np.ndarray

    @property
    def maximum(self) -> int:
        """The top of the output range, 2^bits - 1."""
        return int(2**self.bits - 1)

    def apply(self, values: np.ndarray) -> np.ndarray:
        index = np.clip(np.floor(values - self.first_mapped), 0, len(self.data) - 1)
        return cast(np.ndarray, self.data[index.astype(np.intp)])


@dataclass(frozen=True)
class Presentation:
    """The modules that turn one frame's stored values into display values."""

    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0
    modality_lut: Lut | None = None
    window: Window | None = None
    voi_lut: Lut | None = None
    palette: tuple[Lut, Lut, Lut] | None = None
    frame_time_ms: float = DEFAULT_FRAME_TIME_MS


def presentation(
    doc: jv.Document, number: int, photometric: str, read_bulk: jv.BulkReader | None
) -> Presentation:
    """The Modality LUT, VOI LUT and Palette Color LUT modules of frame ``number``.

    Enhanced multi-frame images keep them in functional groups (PS3.3 §C.7.6.16): the
    frame's Per-frame item wins over the Shared item, which wins over the top level. LUT
    data is fetched (``read_bulk``) only for the photometric interpretation that uses it.
    """
    scopes = _functional_scopes(doc, number)
    signed = (jv.first_int(doc, "00280103") or 0) == 1
    frame_time = jv.first_float(doc, "00181063")
    frame_time_ms = frame_time if frame_time and frame_time > 0 else DEFAULT_FRAME_TIME_MS
    if photometric == "PALETTE COLOR":
        return Presentation(palette=_palette(doc, signed, read_bulk), frame_time_ms=frame_time_ms)
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        return Presentation(frame_time_ms=frame_time_ms)
    transform = _in_scopes(scopes, "00289145") or doc
    slope = jv.first_float(transform, "00281053")
    intercept = jv.first_float(transform, "00281052")
    modality_item = next(iter(jv.items(doc, "00283000")), None)
    voi_item = next(iter(jv.items(doc, "00283010")), None)
    return Presentation(
        rescale_slope=slope if slope is not None else 1.0,
        rescale_intercept=intercept if intercept is not None else 0.0,
        modality_lut=_lut(modality_item, signed, read_bulk) if modality_item else None,
        window=_dataset_window(_in_scopes(scopes, "00289132") or doc),
        voi_lut=_lut(voi_item, signed, read_bulk) if voi_item else None,
        frame_time_ms=frame_time_ms,
    )


def _functional_scopes(doc: jv.Document, number: int) -> list[jv.Document]:
    per_frame = jv.items(doc, "52009230")
    shared = jv.items(doc, "52009229")
    scopes = []
    if 0 < number <= len(per_frame):
        scopes.append(per_frame[number - 1])
    scopes.extend(shared[:1])
    return scopes


def _in_scopes(scopes: list[jv.Document], sequence: str) -> jv.Document:
    """The first item of ``sequence`` found in the functional groups, else an empty
    document so that callers fall back to the top level."""
    for scope in scopes:
        found = jv.items(scope, sequence)
        if found:
            return found[0]
    return {}


def _dataset_window(doc: jv.Document) -> Window | None:
    """The first Window Center/Width (PS3.3 §C.11.2.1.2) when usable, else None: an
    unusable stored window (width 0, say) falls through to the next VOI choice."""
    center, width = jv.first_float(doc, "00281050"), jv.first_float(doc, "00281051")
    if center is None or width is None:
        return None
    function = (jv.text(doc, "00281056") or "LINEAR").upper()
    window = Window(center, width, function)
    return None if window.problem() else window


def _descriptor(item: jv.Document, tag: str, signed: bool) -> tuple[int, int, int]:
    """(entries, first value mapped, bits) of a LUT Descriptor (PS3.3 §C.11.1.1.1): 0 entries
    means 65536; the first value is signed when the pixel data is and was stored as US."""
    element = jv.element(item, tag) or {}
    numbers = [jv.as_int(v) for v in jv.values(item, tag)]
    if len(numbers) != 3 or any(n is None for n in numbers):
        raise Unavailable(f"LUT Descriptor ({tag[:4]},{tag[4:]}) is not three integers")
    entries, first_mapped, bits = (int(n) for n in numbers)  # type: ignore[arg-type]
    if signed and element.get("vr") == "US" and first_mapped >= 2**15:
        first_mapped -= 2**16
    return entries or 2**16, first_mapped, bits


def _lut_data(data: bytes | None, entries: int, tag: str) -> np.ndarray:
    if data is None:
        raise Unavailable(f"LUT Data ({tag[:4]},{tag[4:]}) is missing")
    if len(data) in (2 * entries, 2 * entries + 1):
        return np.frombuffer(data[: 2 * entries], dtype="<u2").astype(np.int64)
    if len(data) in (entries, entries + 1):
        return np.frombuffer(data[:entries], dtype=np.uint8).astype(np.int64)
    raise Unavailable(
        f"LUT Data ({tag[:4]},{tag[4:]}) holds {len(data)} bytes for {entries} entries"
    )


def _lut(item: jv.Document, signed: bool, read_bulk: jv.BulkReader | None) -> Lut:
    entries, first_mapped, bits = _descriptor(item, "00283002", signed)
    data = _lut_data(jv.binary(item, "00283006", read_bulk), entries, "00283006")
    return Lut(first_mapped, bits, data)


def _palette(
    doc: jv.Document, signed: bool, read_bulk: jv.BulkReader | None
) -> tuple[Lut, Lut, Lut]:
    if "00281221" in doc and "00281201" not in doc:
        raise Unavailable("segmented palette color lookup tables are not supported")
    luts = []
    for descriptor, data_tag in (
        ("00281101", "00281201"),
        ("00281102", "00281202"),
        ("00281103", "00281203"),
    ):
        entries, first_mapped, bits = _descriptor(doc, descriptor, signed)
        data = _lut_data(jv.binary(doc, data_tag, read_bulk), entries, data_tag)
        luts.append(Lut(first_mapped, bits, data))
    return luts[0], luts[1], luts[2]
