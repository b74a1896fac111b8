"""An independent reference for rendered images, built from pydicom's own pixel and LUT
functions (``pixel_array``, ``apply_modality_lut``, ``apply_voi_lut``, ``apply_color_lut``,
``convert_color_space``) plus the 8-bit mapping written out here, and helpers to store files
and read images back.

Where pydicom's conventions differ from what the server does on purpose, the reference
follows PS3.3 and says so:

* ``apply_windowing`` scales its output to the range the modality values could take
  (derived from Bits Stored, Pixel Representation and the rescale); PS3.3 C.11.2.1.2 leaves
  ymin/ymax to the application, and a rendered image wants 0..255. The reference therefore
  applies the window through a one-off data set whose declared range is 8 bits unsigned, so
  pydicom computes ``((x - (c - 0.5)) / (w - 1) + 0.5) * 255`` itself.
* ``apply_voi_lut`` prefers a VOI LUT Sequence over Window Center/Width; PS3.3 C.11.2 lets
  either be used, and the server takes the window first (``prefer_lut=False`` here).
* pydicom leaves MONOCHROME1 as stored; PS3.3 C.7.6.3.1.2 (and the Presentation LUT of
  PS3.4 N.2.1) inverts it for display: ``255 - value``.
* Rounding to 8 bits is ``floor(clip(y, 0, 255) + 0.5)`` on both sides.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import (
    apply_color_lut,
    apply_modality_lut,
    apply_voi_lut,
    convert_color_space,
    pixel_array,
)
from starlette.testclient import TestClient

from tests.factories import stow, to_bytes

MONOCHROME = ("MONOCHROME1", "MONOCHROME2")


def read(data: bytes) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(io.BytesIO(data), force=True)


def store(client: TestClient, source: Path | Dataset) -> Dataset:
    """STOW-RS one file or data set; returns it as pydicom reads it back."""
    data = source.read_bytes() if isinstance(source, Path) else to_bytes(source)
    response = stow(client, [data])
    assert response.status_code in (200, 202), response.text  # type: ignore[attr-defined]
    return read(data)


def instance_url(ds: Dataset) -> str:
    return (
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )


def wado_url(ds: Dataset, **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return (
        f"/dicomweb/wado?requestType=WADO&studyUID={ds.StudyInstanceUID}"
        f"&seriesUID={ds.SeriesInstanceUID}&objectUID={ds.SOPInstanceUID}"
        + (f"&{query}" if query else "")
    )


def decode_image(data: bytes) -> np.ndarray:
    """A PNG/JPEG/GIF body as an array: (rows, columns) gray or (rows, columns, 3) RGB."""
    image = Image.open(io.BytesIO(data))
    if image.mode == "P":
        image = image.convert("RGB")
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    return np.asarray(image)


def to_uint8(values: np.ndarray) -> np.ndarray:
    clean = np.nan_to_num(np.asarray(values, dtype=np.float64))
    return np.floor(np.clip(clean, 0.0, 255.0) + 0.5).astype(np.uint8)


def number_of_frames(ds: Dataset) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def _first(value: object) -> object:
    return value[0] if isinstance(value, MultiValue | list | tuple) else value


def window_8bit(
    values: np.ndarray, photometric: str, center: float, width: float, function: str
) -> np.ndarray:
    """pydicom's apply_voi_lut over a data set declaring an 8-bit unsigned range, so that
    its ymin..ymax is 0..255 (see the module docstring)."""
    voi = Dataset()
    voi.PhotometricInterpretation = photometric
    voi.BitsStored = 8
    voi.PixelRepresentation = 0
    voi.WindowCenter = center
    voi.WindowWidth = width
    voi.VOILUTFunction = function
    return to_uint8(apply_voi_lut(values.astype(np.float64), voi, prefer_lut=False))


def reference(
    ds: Dataset, index: int = 0, window: tuple[float, float, str] | None = None
) -> np.ndarray:
    """Frame ``index`` rendered to 8 bits by pydicom's functions and PS3.3's formulas."""
    photometric = str(ds.PhotometricInterpretation)
    raw = pixel_array(ds, index=index, raw=True)
    if photometric in MONOCHROME:
        values = apply_modality_lut(raw, ds)
        if window is not None:
            gray = window_8bit(values, photometric, *window)
        elif "WindowCenter" in ds and "WindowWidth" in ds:
            center = float(_first(ds.WindowCenter))  # type: ignore[arg-type]
            width = float(_first(ds.WindowWidth))  # type: ignore[arg-type]
            function = str(ds.get("VOILUTFunction", "LINEAR"))
            gray = window_8bit(values, photometric, center, width, function)
        elif "VOILUTSequence" in ds:
            bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
            lut = apply_voi_lut(values, ds, prefer_lut=False).astype(np.float64)
            gray = to_uint8(lut * 255.0 / (2**bits - 1))
        else:
            low, high = float(values.min()), float(values.max())
            scaled = (values - low) / (high - low) * 255.0 if high > low else values * 0.0
            gray = to_uint8(scaled)
        return 255 - gray if photometric == "MONOCHROME1" else gray
    if photometric == "PALETTE COLOR":
        bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
        rgb = apply_color_lut(raw, ds).astype(np.float64)
        return to_uint8(rgb * 255.0 / (2**bits - 1))
    if photometric in ("YBR_FULL", "YBR_FULL_422"):
        raw = convert_color_space(raw, "YBR_FULL", "RGB")
    bits = int(ds.BitsStored)
    if bits == 8:
        return raw.astype(np.uint8)
    return to_uint8(raw.astype(np.float64) * 255.0 / (2**bits - 1))
