"""Rendering one decoded frame to an 8-bit image, and encoding it (PS3.18 §8.3.5.1, §8.7.4).

The pixel pipeline is PS3.4 Annex N (N.2 "Pixel Transformation Sequence"), written here in
numpy so that every step is ours and checkable against PS3.3:

* grayscale (MONOCHROME1/2): stored values → Modality LUT (PS3.3 §C.11.1: the Modality LUT
  Sequence, else Rescale Slope/Intercept) → VOI LUT (PS3.3 §C.11.2: the request's window, else
  the data set's first Window Center/Width with its VOI LUT Function, else the VOI LUT
  Sequence, else the full range of modality values present in the frame) → Presentation LUT
  (identity for MONOCHROME2, inversion for MONOCHROME1, PS3.3 §C.7.6.3.1.2) → 8 bits;
* PALETTE COLOR: stored values → Red/Green/Blue Palette Color LUTs (PS3.3 §C.7.6.3.1.5-6);
* RGB (the decoder has already turned YBR_FULL/YBR_FULL_422/YBR_ICT/YBR_RCT into RGB, see
  :mod:`storage.pixels`): scaled from Bits Stored to 8 bits.

Then the source region is cut out and the result scaled to fit the viewport, in that order
(PS3.18 §8.3.5.1: region after the presentation, viewport after the region). Rendered images
hold at most 8 bits per channel (PS3.18 §8.7.4).

Every float-to-8-bit conversion rounds half up (``floor(y + 0.5)``) after clamping to
[0, 255]: PS3.3 defines the VOI output as a continuous value and leaves rounding to the
implementation.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from dicomweb.errors import bad_request
from dicomweb.presentation import Presentation, Window
from storage.errors import Unavailable
from storage.pixels import DecodedFrame

JPEG = "image/jpeg"
PNG = "image/png"
GIF = "image/gif"
MEDIA_TYPES = (JPEG, PNG, GIF)
"""Rendered Media Types we produce, the default first (PS3.18 Table 8.7.4-1)."""
DEFAULT_QUALITY = 90
ANNOTATIONS = ("patient", "technique")


def _region_problem(
    parameter: str, box: tuple[int, int, int, int], rows: int, columns: int
) -> None:
    left, top, right, bottom = box
    if not (0 <= left < right <= columns and 0 <= top < bottom <= rows):
        raise bad_request(
            parameter,
            f"the region ({left},{top})-({right},{bottom}) is empty or falls outside the "
            f"{columns}x{rows} image",
        )


@dataclass(frozen=True)
class SourceRegion:
    """The part of the source image to show, in pixels (PS3.18 §8.3.5.1.3 ``viewport``
    ``sx, sy, sw, sh``): the top left corner, then the size, absent meaning "to the edge of
    the image" and a negative size flipping that axis."""

    x: int = 0
    y: int = 0
    width: int | None = None
    height: int | None = None

    def box(self, rows: int, columns: int) -> tuple[int, int, int, int, bool, bool]:
        """(left, top, right, bottom, flip horizontally, flip vertically); a 400 naming
        ``viewport`` when the region does not fit the image."""
        if self.x >= columns or self.y >= rows:
            raise bad_request(
                "viewport",
                f"sx,sy ({self.x},{self.y}) lies outside the {columns}x{rows} image",
            )
        width = columns - self.x if self.width is None else self.width
        height = rows - self.y if self.height is None else self.height
        box = (self.x, self.y, self.x + abs(width), self.y + abs(height))
        _region_problem("viewport", box, rows, columns)
        return (*box, width < 0, height < 0)


@dataclass(frozen=True)
class FractionRegion:
    """The part of the source image to show, as fractions 0.0-1.0 of its columns and rows
    (the WADO-URI ``region`` parameter ``xmin, ymin, xmax, ymax``, PS3.18 §9)."""

    left: float
    top: float
    right: float
    bottom: float

    def box(self, rows: int, columns: int) -> tuple[int, int, int, int, bool, bool]:
        box = (
            round(self.left * columns),
            round(self.top * rows),
            round(self.right * columns),
            round(self.bottom * rows),
        )
        _region_problem("region", box, rows, columns)
        return (*box, False, False)


@dataclass(frozen=True)
class RenderParams:
    """What a request asks of the rendering (PS3.18 §8.3.5.1 and the WADO-URI equivalents).

    ``width``/``height`` bound the output: the image (or region) is scaled to the largest
    size that fits both while keeping its aspect ratio; one bound alone scales to it.
    ``window`` applies to grayscale images only: the VOI LUT stage exists in the grayscale
    pipeline alone (PS3.4 §N.2), so colour images ignore it. ``annotations`` are accepted
    and not burned in (see :func:`render_image`).
    """

    window: Window | None = None
    region: SourceRegion | FractionRegion | None = None
    width: int | None = None
    height: int | None = None
    quality: int = DEFAULT_QUALITY
    annotations: tuple[str, ...] = field(default=())

    def key(self) -> str:
        """A canonical text of everything that changes the output (ETags, cache keys)."""
        window = self.window
        return "|".join(
            [
                f"w={window.center!r},{window.width!r},{window.function}" if window else "w=",
                f"r={self.region!r}",
                f"s={self.width},{self.height}",
                f"q={self.quality}",
            ]
        )


# -- the pixel pipeline ---------------------------------------------------------------------


def to_uint8(values: np.ndarray) -> np.ndarray:
    """[0, 255] floats to bytes, rounding half up; NaN (float pixel data) becomes 0."""
    clean = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0, posinf=255.0, neginf=0.0)
    return np.floor(np.clip(clean, 0.0, 255.0) + 0.5).astype(np.uint8)


def apply_window(values: np.ndarray, window: Window) -> np.ndarray:
    """PS3.3 §C.11.2.1.2.1 (LINEAR), §C.11.2.1.3.2 (LINEAR_EXACT), §C.11.2.1.3.1 (SIGMOID)
    with ymin = 0 and ymax = 255."""
    x, c, w = values, window.center, window.width
    if window.function == "SIGMOID":
        with np.errstate(over="ignore"):
            return 255.0 / (1.0 + np.exp(-4.0 * (x - c) / w))
    if window.function == "LINEAR":
        c, w = c - 0.5, w - 1.0
        if w <= 0:  # width 1: a threshold at c - 0.5
            return np.where(x <= c, 0.0, 255.0)
    y = ((x - c) / w + 0.5) * 255.0
    y = np.where(x <= c - w / 2, 0.0, y)
    return np.where(x > c + w / 2, 255.0, y)


def grayscale(stored: np.ndarray, pres: Presentation, window: Window | None) -> np.ndarray:
    """Modality LUT, then VOI LUT, to 8 bits (PS3.4 §N.2.1)."""
    if pres.modality_lut is not None:
        values = pres.modality_lut.apply(stored).astype(np.float64)
    else:
        values = stored.astype(np.float64) * pres.rescale_slope + pres.rescale_intercept
    chosen = window or pres.window
    if chosen is not None:
        return to_uint8(apply_window(values, chosen))
    if pres.voi_lut is not None:
        return to_uint8(pres.voi_lut.apply(values) * (255.0 / pres.voi_lut.maximum))
    return to_uint8(full_range(values))


def full_range(values: np.ndarray) -> np.ndarray:
    """No window and no VOI LUT: the lowest modality value present maps to 0 and the highest
    to 255, linearly (a LINEAR_EXACT window spanning them); a flat frame is black."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.zeros(values.shape)
    low, high = float(finite.min()), float(finite.max())
    if high <= low:
        return np.zeros(values.shape)
    return (values - low) / (high - low) * 255.0


def display_values(decoded: DecodedFrame, pres: Presentation, window: Window | None) -> np.ndarray:
    """The frame as 8-bit display values: (rows, columns) gray or (rows, columns, 3) RGB."""
    photometric = decoded.photometric_interpretation
    array = decoded.array
    if photometric in ("MONOCHROME1", "MONOCHROME2"):
        if array.ndim != 2:
            raise Unavailable(f"{photometric} pixel data with {array.shape[-1]} samples per pixel")
        gray = grayscale(array, pres, window)
        return 255 - gray if photometric == "MONOCHROME1" else gray
    if photometric == "PALETTE COLOR":
        if pres.palette is None or array.ndim != 2:
            raise Unavailable("PALETTE COLOR pixel data without a usable palette")
        channels = [to_uint8(lut.apply(array) * (255.0 / lut.maximum)) for lut in pres.palette]
        return np.stack(channels, axis=-1)
    if photometric == "RGB" and array.ndim == 3 and array.shape[-1] == 3:
        bits = decoded.description.bits_stored
        if array.dtype == np.uint8 and bits == 8:
            return array
        return to_uint8(array.astype(np.float64) * (255.0 / (2.0**bits - 1)))
    raise Unavailable(f"rendering {photometric} pixel data is not supported")


# -- geometry and encoding ------------------------------------------------------------------


def fit(values: np.ndarray, params: RenderParams) -> Image.Image:
    """Cut out the source region, then scale to fit the viewport keeping the aspect ratio
    (PS3.18 §8.3.5.1.3; WADO-URI ``rows``/``columns`` are the same bounds)."""
    if params.region is not None:
        left, top, right, bottom, flip_x, flip_y = params.region.box(*values.shape[:2])
        values = values[top:bottom, left:right]
        if flip_x:
            values = values[:, ::-1]
        if flip_y:
            values = values[::-1]
    image = Image.fromarray(np.ascontiguousarray(values), "RGB" if values.ndim == 3 else "L")
    size = scaled_size(image.width, image.height, params.width, params.height)
    if size != (image.width, image.height):
        image = image.resize(size, Image.Resampling.LANCZOS)
    return image


def scaled_size(
    width: int, height: int, max_width: int | None, max_height: int | None
) -> tuple[int, int]:
    """The largest size within the bounds with the same aspect ratio (at least 1x1)."""
    scales = []
    if max_width is not None:
        scales.append(max_width / width)
    if max_height is not None:
        scales.append(max_height / height)
    if not scales:
        return width, height
    scale = min(scales)
    return max(1, round(width * scale)), max(1, round(height * scale))


def encode(images: list[Image.Image], media_type: str, quality: int, frame_time_ms: float) -> bytes:
    """Encode with Pillow: baseline JPEG (PS3.18 §8.7.4 requires the baseline 8-bit Huffman
    process) with 4:4:4 chroma, PNG, or GIF (animated when given several images)."""
    out = io.BytesIO()
    first = images[0]
    if media_type == JPEG:
        first.save(out, "JPEG", quality=quality, subsampling=0)
    elif media_type == PNG:
        first.save(out, "PNG")
    elif media_type == GIF:
        if len(images) > 1:
            first.save(
                out,
                "GIF",
                save_all=True,
                append_images=images[1:],
                duration=max(20, round(frame_time_ms)),
                loop=0,
            )
        else:
            first.save(out, "GIF")
    else:
        raise ValueError(f"not a rendered media type we produce: {media_type}")
    return out.getvalue()


def render_image(decoded: DecodedFrame, pres: Presentation, params: RenderParams) -> Image.Image:
    """One frame through the whole pipeline, ready to encode.

    ``annotation=patient,technique`` (PS3.18 §8.3.5.1.1) is accepted and not applied: no
    text is burned into the pixels, so the output is the same with or without it.
    """
    return fit(display_values(decoded, pres, params.window), params)
