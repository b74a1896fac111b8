"""Query parameters of rendered and thumbnail requests (PS3.18 §8.3.5.1, Table 8.3.5-1).

Each parser either returns a value or raises a 400 that names the parameter and says what is
wrong with it (PS3.18 §8.1.2.1), so no input reaches the pipeline unchecked. Unknown parameters
are ignored, as PS3.18 lets origin servers do for parameters they do not support.
"""

from __future__ import annotations

import math
import re

from starlette.datastructures import QueryParams

from dicomweb.errors import bad_request
from dicomweb.presentation import Window
from dicomweb.rendering import ANNOTATIONS, DEFAULT_QUALITY, RenderParams, SourceRegion

MAX_VIEWPORT = 8192
"""Largest viewport side we render, to bound the work one request can ask for."""
DEFAULT_THUMBNAIL_SIZE = 128
_INTEGER = re.compile(r"^[+-]?[0-9]{1,9}$")
_DECIMAL = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]{1,3})?$")
_WINDOW_FUNCTIONS = {"linear": "LINEAR", "linear-exact": "LINEAR_EXACT", "sigmoid": "SIGMOID"}


def single(query: QueryParams, name: str) -> str | None:
    """The one value of ``name``; a 400 when it is given more than once."""
    found = query.getlist(name)
    if len(found) > 1:
        raise bad_request(name, "given more than once")
    return found[0] if found else None


def _shown(text: str, parameter: str, what: str) -> str:
    shown = repr(text) if len(text) <= 40 else repr(text[:40]) + "..."
    return shown if what == parameter else f"{what} {shown}"


def integer(text: str, parameter: str, what: str) -> int:
    if not _INTEGER.match(text.strip()):
        raise bad_request(parameter, f"{_shown(text, parameter, what)} is not an integer")
    return int(text)


def decimal(text: str, parameter: str, what: str) -> float:
    """A decimal string (DS, PS3.5 §6.2) such as ``40``, ``-1.5`` or ``1e3``."""
    if not _DECIMAL.match(text.strip()):
        raise bad_request(parameter, f"{_shown(text, parameter, what)} is not a number")
    value = float(text)
    if not math.isfinite(value):
        raise bad_request(parameter, f"{_shown(text, parameter, what)} is not a finite number")
    return value


def parse_window(text: str) -> Window:
    """``window=center,width,function`` (PS3.18 §8.3.5.1.4): all three parts, the function
    one of ``linear``, ``linear-exact``, ``sigmoid`` (PS3.3 §C.11.2.1.2-3), width within what
    that function allows."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) != 3:
        raise bad_request(
            "window",
            f"{text!r} must be center,width,function with function one of "
            "linear, linear-exact, sigmoid",
        )
    center = decimal(parts[0], "window", "center")
    width = decimal(parts[1], "window", "width")
    function = _WINDOW_FUNCTIONS.get(parts[2].lower())
    if function is None:
        raise bad_request(
            "window", f"function {parts[2]!r} is not one of linear, linear-exact, sigmoid"
        )
    window = Window(center, width, function)
    problem = window.problem()
    if problem:
        raise bad_request("window", problem)
    return window


def dimension(text: str, parameter: str, what: str) -> int:
    """A viewport or output side: 1 to :data:`MAX_VIEWPORT` pixels."""
    value = integer(text, parameter, what)
    if not 1 <= value <= MAX_VIEWPORT:
        shown = str(value) if what == parameter else f"{what} {value}"
        raise bad_request(parameter, f"{shown} is outside 1..{MAX_VIEWPORT}")
    return value


def parse_viewport(text: str, *, region_allowed: bool) -> tuple[int, int, SourceRegion | None]:
    """``viewport=vw,vh[,sx,sy,sw,sh]`` (PS3.18 §8.3.5.1.3; thumbnails take ``vw,vh`` only).

    ``sx``/``sy`` (default 0) are where the source region starts, ``sw``/``sh`` (default: to
    the edge of the image) its size, a negative size flipping that axis. Empty optional parts
    take their defaults. Whether the region fits the image is checked once the image's size is
    known (:meth:`SourceRegion.box`).
    """
    parts = [part.strip() for part in text.split(",")]
    if len(parts) not in ((2, 6) if region_allowed else (2,)):
        expected = "vw,vh or vw,vh,sx,sy,sw,sh" if region_allowed else "vw,vh"
        raise bad_request("viewport", f"{text!r} must be {expected}")
    width = dimension(parts[0], "viewport", "vw")
    height = dimension(parts[1], "viewport", "vh")
    if len(parts) == 2 or not any(parts[2:]):
        return width, height, None
    sx = integer(parts[2], "viewport", "sx") if parts[2] else 0
    sy = integer(parts[3], "viewport", "sy") if parts[3] else 0
    sw = integer(parts[4], "viewport", "sw") if parts[4] else None
    sh = integer(parts[5], "viewport", "sh") if parts[5] else None
    if sx < 0 or sy < 0:
        raise bad_request("viewport", "sx and sy must not be negative")
    if sw == 0 or sh == 0:
        raise bad_request("viewport", "sw and sh must not be 0")
    return width, height, SourceRegion(sx, sy, sw, sh)


def parse_quality(text: str, parameter: str = "quality") -> int:
    """``quality`` (PS3.18 §8.3.5.1.2): an integer 1 (worst) to 100 (best); only lossy
    media types (JPEG) use it."""
    value = integer(text, parameter, "quality")
    if not 1 <= value <= 100:
        raise bad_request(parameter, f"{value} is outside 1..100")
    return value


def parse_annotation(text: str, parameter: str = "annotation") -> tuple[str, ...]:
    """``annotation=patient,technique`` (PS3.18 §8.3.5.1.1); see
    :func:`dicomweb.rendering.render_image` for what we do with it."""
    keywords = tuple(part.strip() for part in text.split(","))
    for keyword in keywords:
        if keyword not in ANNOTATIONS:
            raise bad_request(parameter, f"{keyword!r} is not one of {', '.join(ANNOTATIONS)}")
    return keywords


def rendered_params(query: QueryParams) -> RenderParams:
    """The rendering parameters of a ``.../rendered`` request."""
    window = single(query, "window")
    viewport = single(query, "viewport")
    quality = single(query, "quality")
    annotation = single(query, "annotation")
    width = height = None
    region = None
    if viewport is not None:
        width, height, region = parse_viewport(viewport, region_allowed=True)
    return RenderParams(
        window=parse_window(window) if window is not None else None,
        region=region,
        width=width,
        height=height,
        quality=parse_quality(quality) if quality is not None else DEFAULT_QUALITY,
        annotations=parse_annotation(annotation) if annotation is not None else (),
    )


def thumbnail_params(query: QueryParams) -> RenderParams:
    """The parameters of a ``.../thumbnail`` request: ``viewport=vw,vh`` (default
    128x128, PS3.18 Table 8.3.5-1 allows no source region for thumbnails) and ``quality``.
    The origin server decides the pixel content of a thumbnail, so windows and annotations
    do not apply."""
    viewport = single(query, "viewport")
    quality = single(query, "quality")
    width = height = DEFAULT_THUMBNAIL_SIZE
    if viewport is not None:
        width, height, _ = parse_viewport(viewport, region_allowed=False)
    return RenderParams(
        width=width,
        height=height,
        quality=parse_quality(quality) if quality is not None else DEFAULT_QUALITY,
    )
