"""The stack viewer's manifest: what ``static/viewer.js`` needs to fetch, decode and window
every image of a teaching study, built on the server from the archive's stored JSON.

The manifest is the only description of the study the browser receives before an answer, so
it carries display attributes and nothing else: no description, name, comment or any other
text of the header (a series description such as "CT chest: right lower lobe pneumonia"
would give the diagnosis away). Labels are made here from the modality, the series number
and the image count.

Pixels come from the WADO-RS frames resource of the teaching root (PS3.18 §10.4.1.1.4) as
native Explicit VR Little Endian: stored frames as they are, compressed frames decompressed by
the server (``dicomweb/frames.py``). What an image entry describes is therefore the frames as
delivered: decompressed colour frames are RGB, samples interleaved, whatever the stored
Photometric Interpretation (YBR_FULL_422 for baseline JPEG) and Planar Configuration were.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from storage import json_values as jv
from storage.archive import Archive
from storage.errors import ArchiveError
from storage.pixels import PixelDescription
from storage.records import StoredInstance
from storage.transcode import EXPLICIT_VR_LITTLE_ENDIAN, needs_decoding, transcode_problem

DEFAULT_ROOT = "/teaching/dicomweb"
GRAYSCALE = ("MONOCHROME1", "MONOCHROME2")
# What the browser can turn into display values without a lookup table from the header:
# grayscale through the Modality and VOI stages, and colour as RGB (YBR_FULL is converted
# in the browser, PS3.3 §C.7.6.3.1.2). PALETTE COLOR needs its LUT data, YBR_FULL_422 and
# the JPEG 2000 colour spaces exist only compressed (the server then delivers RGB).
DISPLAYABLE = (*GRAYSCALE, "RGB", "YBR_FULL")
BITS = (8, 16)


@dataclass(frozen=True)
class _Image:
    """One displayable instance, with the keys it is sorted by within its series."""

    series_uid: str
    series_number: int | None
    modality: str
    instance_number: int | None
    position: float | None
    entry: dict[str, Any]


def stack_manifest(
    archive: Archive,
    study_uid: str,
    root: str = DEFAULT_ROOT,
    *,
    only: Collection[str] | None = None,
) -> dict[str, Any]:
    """The manifest of ``study_uid`` as the caller's ``archive`` (already restricted to what
    the caller may see) holds it: series by Series Number, images by Instance Number then
    position along the stack. Instances the viewer cannot show (no pixel data, a colour
    model or bit depth it does not decode, frames the server cannot deliver natively) are
    left out, and so are those not in ``only`` when given (the instances of one teaching
    case, where the teaching study holds those of other cases too). Raises
    :class:`storage.errors.NotFound` for a study the archive does not hold.
    """
    documents = archive.documents(study_uid)
    if only is not None:
        documents = [d for d in documents if jv.text(d, "00080018") in only]
    stored = {instance.sop_uid: instance for instance in archive.instances(study_uid)}
    images = []
    for document in documents:
        image = _image(document, stored)
        if image is not None:
            images.append(image)
    by_series: dict[str, list[_Image]] = {}
    for image in images:
        by_series.setdefault(image.series_uid, []).append(image)
    series = [
        _series(members, root.rstrip("/"), study_uid)
        for members in sorted(by_series.values(), key=_series_order)
    ]
    return {"root": root.rstrip("/"), "study": study_uid, "series": series}


def _series_order(members: list[_Image]) -> tuple[bool, int, str]:
    number = members[0].series_number
    return (number is None, number or 0, members[0].series_uid)


def _image_order(image: _Image) -> tuple[bool, int, bool, float, str]:
    number, position = image.instance_number, image.position
    return (number is None, number or 0, position is None, position or 0.0, image.entry["sop"])


def _series(members: list[_Image], root: str, study_uid: str) -> dict[str, Any]:
    first = members[0]
    ordered = sorted(members, key=_image_order)
    count = sum(image.entry["frames"] for image in ordered)
    parts = [first.modality or "Images"]
    if first.series_number is not None:
        parts.append(f"series {first.series_number}")
    parts.append(f"{count} image{'s' if count != 1 else ''}")
    return {
        "uid": first.series_uid,
        "number": first.series_number,
        "modality": first.modality,
        "label": " · ".join(parts),
        "thumbnail": f"{root}/studies/{study_uid}/series/{first.series_uid}/thumbnail",
        "images": [image.entry for image in ordered],
    }


def _image(document: dict[str, Any], stored: dict[str, StoredInstance]) -> _Image | None:
    sop_uid, series_uid = jv.text(document, "00080018"), jv.text(document, "0020000E")
    instance = stored.get(sop_uid or "")
    if instance is None or series_uid is None:
        return None
    try:
        pixels = PixelDescription.from_json(document)
    except ArchiveError:
        return None
    if (
        pixels.pixel_keyword != "PixelData"
        or pixels.bits_allocated not in BITS
        or pixels.samples_per_pixel not in (1, 3)
        or transcode_problem(instance, EXPLICIT_VR_LITTLE_ENDIAN) is not None
    ):
        return None
    photometric, planar = pixels.photometric_interpretation, pixels.planar_configuration
    syntax = instance.frames_syntax or EXPLICIT_VR_LITTLE_ENDIAN
    if pixels.samples_per_pixel == 3 and needs_decoding(syntax):
        photometric, planar = "RGB", 0  # as dicomweb/frames.py delivers decompressed colour
    if photometric not in DISPLAYABLE or (photometric in GRAYSCALE) != (
        pixels.samples_per_pixel == 1
    ):
        return None
    transform, voi = _modules(document)
    slope = jv.first_float(transform, "00281053")
    intercept = jv.first_float(transform, "00281052")
    grayscale = photometric in GRAYSCALE
    entry = {
        "sop": instance.sop_uid,
        "frames": pixels.number_of_frames,
        "rows": pixels.rows,
        "columns": pixels.columns,
        "bitsAllocated": pixels.bits_allocated,
        "bitsStored": min(pixels.bits_stored, pixels.bits_allocated),
        "pixelRepresentation": pixels.pixel_representation,
        "photometric": photometric,
        "samplesPerPixel": pixels.samples_per_pixel,
        "planarConfiguration": planar,
        "slope": slope if grayscale and slope else 1.0,
        "intercept": intercept if grayscale and intercept is not None else 0.0,
        "window": _window(voi) if grayscale else None,
    }
    position = jv.values(document, "00200032")
    return _Image(
        series_uid=series_uid,
        series_number=jv.first_int(document, "00200011"),
        modality=(jv.text(document, "00080060") or "").upper(),
        instance_number=jv.first_int(document, "00200013"),
        position=jv.as_float(position[2]) if len(position) == 3 else None,
        entry=entry,
    )


def _modules(document: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Where the Pixel Value Transformation and Frame VOI LUT values are: the Shared
    Functional Groups of an enhanced multi-frame image (PS3.3 §C.7.6.16.2.9, §C.7.6.16.2.10),
    else the top level. One set for the whole instance: the viewer windows a stack as one."""
    shared = jv.items(document, "52009229")
    per_frame = jv.items(document, "52009230")
    scopes = shared[:1] + per_frame[:1]

    def found(sequence: str) -> dict[str, Any]:
        for scope in scopes:
            items = jv.items(scope, sequence)
            if items:
                return items[0]
        return document

    return found("00289145"), found("00289132")


def _window(document: dict[str, Any]) -> list[float] | None:
    """The first Window Center/Width pair (PS3.3 §C.11.2.1.2) when usable (width at least 1,
    the least a LINEAR window allows), else None: the viewer then windows over the pixels."""
    center, width = jv.first_float(document, "00281050"), jv.first_float(document, "00281051")
    if center is None or width is None or width < 1:
        return None
    return [center, width]
