"""Reading attribute values back out of the DICOM JSON stored at ingest (PS3.18 Annex F).

Reads never parse the instance blob, so whatever a read needs of the data set (the Image Pixel
module to decode a frame, the Modality and VOI LUT modules to render it) comes from the
per-instance JSON. These helpers accept what our ingest writes: numbers for IS/DS, or the text
of a value pydicom could not convert (kept rather than lost, see ``instance_json``), and
binary values inline (``InlineBinary``) or as a ``BulkDataURI`` whose path after ``/bulk/`` is
what :meth:`storage.archive.Archive.bulk` takes.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from collections.abc import Callable
from typing import Any

Document = dict[str, Any]
BulkReader = Callable[[str], bytes]
"""Fetches a bulk value (little endian bytes) by its path, e.g. ``00283010/0/00283006``."""


def element(doc: Document, tag: str) -> dict[str, Any] | None:
    """The JSON object of ``tag`` (8 hex digits, upper case), or None when absent."""
    value = doc.get(tag)
    return value if isinstance(value, dict) else None


def values(doc: Document, tag: str) -> list[Any]:
    """The ``Value`` array of ``tag``; empty when absent or empty (PS3.18 §F.2.5)."""
    found = element(doc, tag)
    items = found.get("Value") if found else None
    return list(items) if isinstance(items, list) else []


def first(doc: Document, tag: str) -> Any | None:
    items = values(doc, tag)
    return items[0] if items else None


def as_float(value: Any) -> float | None:
    """A finite number from a JSON number or a numeric string, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def as_int(value: Any) -> int | None:
    """An integer from a JSON number or an integer string (IS), else None."""
    number = as_float(value)
    if number is None or not number.is_integer():
        return None
    return int(number)


def first_float(doc: Document, tag: str) -> float | None:
    return as_float(first(doc, tag))


def first_int(doc: Document, tag: str) -> int | None:
    return as_int(first(doc, tag))


def text(doc: Document, tag: str) -> str | None:
    value = first(doc, tag)
    return value.strip() if isinstance(value, str) and value.strip() else None


def items(doc: Document, tag: str) -> list[Document]:
    """The items of a sequence (SQ) attribute."""
    return [item for item in values(doc, tag) if isinstance(item, dict)]


def binary(doc: Document, tag: str, read_bulk: BulkReader | None) -> bytes | None:
    """A binary value as little endian bytes, wherever the JSON put it.

    ``InlineBinary`` is base64 (PS3.18 §F.2.7); a ``BulkDataURI`` is fetched through
    ``read_bulk``; a ``Value`` array (US or SS, as LUT Data may be encoded) is packed as 16-bit
    little endian words, which is how the same data would be held as OW.
    """
    found = element(doc, tag)
    if found is None:
        return None
    if isinstance(found.get("InlineBinary"), str):
        try:
            return base64.b64decode(found["InlineBinary"], validate=True)
        except (binascii.Error, ValueError):
            return None
    uri = found.get("BulkDataURI")
    if isinstance(uri, str):
        if read_bulk is None or "/bulk/" not in uri:
            return None
        return read_bulk(uri.rsplit("/bulk/", 1)[1])
    numbers = [as_int(v) for v in values(doc, tag)]
    if not numbers or any(n is None for n in numbers):
        return None
    signed = found.get("vr") == "SS"
    try:
        return struct.pack(f"<{len(numbers)}{'h' if signed else 'H'}", *numbers)
    except struct.error:
        return None
