"""A copy held back for burned-in review, shown to the educator who reviews it.

A flagged instance's de-identified copy is kept outside the teaching index until an educator
decides (``Archive.hold``, PS3.15 E.3.1 Clean Pixel Data is a human decision), so no DICOMweb
root serves it. The review page shows it in the stack viewer all the same: this module
describes the held copy as one image of a viewer manifest, and answers its frames the way the
WADO-RS frames resource does for the viewer (PS3.18 §8.7.3.5: ``multipart/related`` of
``application/octet-stream`` parts, native Explicit VR Little Endian), decoded here with
pydicom. The manifest carries display attributes only, as ``stack.py``'s does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from dicomweb import multipart
from storage.transcode import EXPLICIT_VR_LITTLE_ENDIAN
from teaching.cases.export import read_dataset

DISPLAYABLE_BITS = (8, 16)


class NotShowable(ValueError):
    """The held copy's pixels cannot be shown in the browser (no pixel data, a depth or
    colour model the viewer does not take, a codec without a decoder here)."""


def decoded(data: bytes) -> tuple[Dataset, np.ndarray]:
    """The held copy and its frames as stored values: (frames, rows, columns[, 3]),
    colour as RGB (pydicom converts YBR), little endian."""
    dataset = read_dataset(data)
    if "PixelData" not in dataset:
        raise NotShowable("the instance has no pixel data")
    try:
        pixels = dataset.pixel_array
    except Exception as exc:  # pydicom raises many kinds for pixels it cannot decode
        raise NotShowable(f"its pixels could not be decoded here: {exc}") from exc
    samples = int(dataset.get("SamplesPerPixel", 1))
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    if frames == 1:
        pixels = pixels[np.newaxis]
    if samples not in (1, 3) or pixels.dtype.itemsize * 8 not in DISPLAYABLE_BITS:
        raise NotShowable("its pixels are of a kind the viewer does not show")
    return dataset, pixels.astype(pixels.dtype.newbyteorder("<"), copy=False)


def held_image(data: bytes, url: str) -> dict[str, Any]:
    """The manifest entry of a held copy (as ``stack.py`` makes them, plus ``url``, where the
    viewer asks for its frames)."""
    dataset, pixels = decoded(data)
    colour = pixels.ndim == 4
    grayscale = not colour
    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2"))
    window = None
    if grayscale:
        centre, width = _first(dataset, "WindowCenter"), _first(dataset, "WindowWidth")
        if centre is not None and width is not None and width >= 1:
            window = [centre, width]
    bits = pixels.dtype.itemsize * 8
    return {
        "sop": str(dataset.SOPInstanceUID),
        "url": url,
        "frames": int(pixels.shape[0]),
        "rows": int(pixels.shape[1]),
        "columns": int(pixels.shape[2]),
        "bitsAllocated": bits,
        "bitsStored": bits,
        "pixelRepresentation": 1 if pixels.dtype.kind == "i" else 0,
        "photometric": "RGB" if colour else photometric,
        "samplesPerPixel": 3 if colour else 1,
        "planarConfiguration": 0,
        "slope": (_first(dataset, "RescaleSlope") or 1.0) if grayscale else 1.0,
        "intercept": (_first(dataset, "RescaleIntercept") or 0.0) if grayscale else 0.0,
        "window": window,
    }


def held_manifest(data: bytes, url: str, study_uid: str, series_uid: str) -> dict[str, Any]:
    """A viewer manifest of the one held copy."""
    image = held_image(data, url)
    frames = image["frames"]
    label = f"Held image · {frames} frame{'s' if frames != 1 else ''}"
    return {
        "root": url,
        "study": study_uid,
        "series": [
            {
                "uid": series_uid,
                "number": None,
                "modality": "",
                "label": label,
                "thumbnail": None,
                "images": [image],
            }
        ],
    }


def frames_body(data: bytes, numbers: list[int]) -> tuple[bytes, str] | None:
    """The frames asked for, each in native little endian, and the multipart media type;
    None when a number is past the last frame."""
    _, pixels = decoded(data)
    if any(n < 1 or n > pixels.shape[0] for n in numbers):
        return None
    boundary = multipart.new_boundary()
    syntax = f"application/octet-stream; transfer-syntax={EXPLICIT_VR_LITTLE_ENDIAN}"
    headers = {"Content-Type": syntax}
    parts = [(headers, [pixels[n - 1].tobytes()]) for n in numbers]
    body = b"".join(multipart.iter_multipart(boundary, parts))
    media = multipart.content_type(
        boundary, "application/octet-stream", transfer_syntax=EXPLICIT_VR_LITTLE_ENDIAN
    )
    return body, media


def _first(dataset: Dataset, keyword: str) -> float | None:
    """The first value of a numeric attribute (Window Center may hold several)."""
    value = dataset.get(keyword)
    if isinstance(value, MultiValue | list):
        value = value[0] if value else None
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
