"""The DICOM JSON of a plain data element (PS3.18 §F.2), straight from its encoded bytes.

Ingest turns every attribute of every instance into DICOM JSON. Through pydicom that is two
steps per element, each costly in Python: convert the raw bytes into a value object (a
``MultiValue`` of ``UID``, ``IS`` or ``DSfloat``, with validation and hooks), then turn that
object into JSON. For a 512x512 CT they were about a third of the CPU of a whole ingest.
Most elements of an image header are short ASCII strings and binary numbers, whose JSON
follows from the bytes in a few operations; this module computes exactly the JSON pydicom's
``DataElement.to_json_dict`` gives for those, and declines (None) everything else, which the
caller converts through pydicom as before: sequences, binary and unknown VRs,
private and ambiguous implicit VRs, a person name with an empty value among several or
more than three groups, any non-ASCII or ISO 2022 escape byte (whose decoding
depends on Specific Character Set), and any number that is not plainly written. An element
declined here is converted by pydicom, so whatever pydicom would have refused (or warned
about) is still seen.

The rules mirror pydicom 3's readers (``pydicom.values``) with its default settings
(``datetime_conversion`` off, ``use_DS_decimal`` off, no numpy):
- CS, AS, DA, DT, TM, UI: the whole value loses trailing spaces and NULs, then splits on
  backslash (PS3.5 §6.2, §6.4);
- SH, LO, UC: split on backslash, each value loses trailing spaces and NULs;
- ST, LT, UT: one value (backslash is a character there), trailing spaces and NULs removed;
- IS, DS: as the strings above, each value a JSON number (PS3.18 §F.2.3);
- PN: as the strings above, each name split into its alphabetic, ideographic and phonetic
  groups at ``=`` (PS3.5 §6.2.1), empty groups at the end dropped (PS3.18 §F.2.2);
- US, SS, UL, SL, UV, SV, FL, FD: the binary values in the element's byte order.
``tests/storage/test_raw_json.py`` compares this with pydicom on every element of every
file pydicom ships.
"""

from __future__ import annotations

import re
import struct
from typing import Any, Final

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement

_WHOLE_STRIPPED: Final = frozenset({"CS", "AS", "DA", "DT", "TM", "UI"})
_EACH_STRIPPED: Final = frozenset({"SH", "LO", "UC"})
_SINGLE: Final = frozenset({"ST", "LT", "UT"})
_BINARY: Final = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "UV": "Q", "SV": "q"}
_BINARY_FLOAT: Final = {"FL": "f", "FD": "d"}
_INTEGER: Final = re.compile(r"\s*[+-]?\d+\s*")
_DECIMAL: Final = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*")
_ESCAPE: Final = b"\x1b"
STRING_VRS: Final = _WHOLE_STRIPPED | _EACH_STRIPPED | _SINGLE
"""The VRs whose JSON values are the element's strings as pydicom reads them."""
HANDLED_VRS: Final = STRING_VRS | {"IS", "DS", "PN"} | _BINARY.keys() | _BINARY_FLOAT.keys()
PN_GROUPS: Final = ("Alphabetic", "Ideographic", "Phonetic")


def element_json(raw: RawDataElement) -> dict[str, Any] | None:
    """The element's DICOM JSON as pydicom would give it, or None when pydicom must say."""
    vr = _vr(raw)
    if vr is None or raw.value is None:
        return None
    value: bytes = raw.value
    if not value:
        return {"vr": vr}
    if vr in _BINARY:
        return _numbers(vr, _BINARY[vr], value, raw.is_little_endian)
    if vr in _BINARY_FLOAT:
        return _numbers(vr, _BINARY_FLOAT[vr], value, raw.is_little_endian)
    if not value.isascii() or _ESCAPE in value:
        return None
    text = value.decode("ascii")
    if vr in _WHOLE_STRIPPED:
        return _strings(vr, text.rstrip(" \x00").split("\\"))
    if vr in _EACH_STRIPPED:
        return _strings(vr, [item.rstrip("\x00 ") for item in text.split("\\")])
    if vr in _SINGLE:
        return _strings(vr, [text.rstrip("\x00 ")])
    if vr == "PN":
        return _person_names(text.rstrip("\x00 ").split("\\"))
    items = text.rstrip(" \x00").split("\\")
    if items == [""]:
        return {"vr": vr}
    if vr == "IS":
        if not all(_INTEGER.fullmatch(item) for item in items):
            return None
        return {"vr": vr, "Value": [int(item) for item in items]}
    if not all(_DECIMAL.fullmatch(item) for item in items):
        return None
    return {"vr": vr, "Value": [float(item) for item in items]}


def _vr(raw: RawDataElement) -> str | None:
    """The VR as stored; for implicit VR, the data dictionary's when it names one plain VR
    this module handles (private tags and "US or SS" kinds are pydicom's to resolve)."""
    if raw.VR is not None:
        return raw.VR if raw.VR in HANDLED_VRS else None
    tag = raw.tag
    if (tag >> 16) % 2:
        return None
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return None
    return vr if vr in HANDLED_VRS else None


def _strings(vr: str, items: list[str]) -> dict[str, Any]:
    if items == [""]:
        return {"vr": vr}
    return {"vr": vr, "Value": items}


def _person_names(names: list[str]) -> dict[str, Any] | None:
    if names == [""]:
        return {"vr": "PN"}
    values = []
    for name in names:
        groups = name.split("=")
        while groups and not groups[-1]:
            groups.pop()
        if not groups or len(groups) > len(PN_GROUPS):
            return None
        values.append(dict(zip(PN_GROUPS, groups, strict=False)))
    return {"vr": "PN", "Value": values}


def _numbers(vr: str, code: str, value: bytes, little_endian: bool) -> dict[str, Any] | None:
    size = struct.calcsize(f"<{code}")
    if len(value) % size:
        return None
    order = "<" if little_endian else ">"
    numbers = struct.unpack(f"{order}{len(value) // size}{code}", value)
    return {"vr": vr, "Value": list(numbers)}
