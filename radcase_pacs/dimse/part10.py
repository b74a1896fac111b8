"""A received C-STORE data set as a PS3.10 file, and its study, read without pydicom.

Each instance a C-STORE brings is stored as a DICOM file: the data set as it came, after a
128-byte preamble, ``DICM`` and the File Meta Information (PS3.10 §7.1). pynetdicom builds that
header as a pydicom data set and encodes it, and the audit entry written before the store
read the Study Instance UID back through pydicom: together a fifth of the CPU of a C-STORE of
a CT slice, for a dozen short elements. Both are plain encodings, done here directly:
- :func:`file_meta` encodes the same elements pynetdicom's ``create_file_meta`` sets, in
  Explicit VR Little Endian (PS3.10 §7.1: always that syntax), byte for byte what
  ``Event.encoded_dataset(include_meta=True)`` gives;
- :func:`study_instance_uid` walks the top-level element headers (PS3.5 §7.1.2, §7.1.3) up
  to (0020,000D); an element of undefined length on the way (a sequence) or anything it does
  not expect makes it raise :class:`CannotWalk`, and the caller asks pydicom.
"""

from __future__ import annotations

import struct
from typing import Final

from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ImplicitVRLittleEndian
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, VR
from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION

PREAMBLE: Final = b"\x00" * 128 + b"DICM"
STUDY_INSTANCE_UID: Final = 0x0020000D
UNDEFINED_LENGTH: Final = 0xFFFFFFFF
_LONG_VRS: Final = frozenset(vr.encode("ascii") for vr in EXPLICIT_VR_LENGTH_32)
_VRS: Final = frozenset(vr.value.encode("ascii") for vr in VR if len(vr.value) == 2)


class CannotWalk(Exception):
    """Walking the element headers is not enough to find the attribute."""


def received_file(sop_class_uid: str, sop_instance_uid: str, syntax: str, data_set: bytes) -> bytes:
    """The PS3.10 file of a data set received in ``syntax``, named by its C-STORE request's
    Affected SOP Class and Instance UIDs."""
    return b"".join((PREAMBLE, file_meta(sop_class_uid, sop_instance_uid, syntax), data_set))


def file_meta(sop_class_uid: str, sop_instance_uid: str, syntax: str) -> bytes:
    """The File Meta Information group, with its group length (PS3.10 Table 7.1-1)."""
    elements = b"".join(
        (
            _long(0x0001, b"OB", b"\x00\x01"),
            _short(0x0002, b"UI", _uid(sop_class_uid)),
            _short(0x0003, b"UI", _uid(sop_instance_uid)),
            _short(0x0010, b"UI", _uid(syntax)),
            _short(0x0012, b"UI", _uid(PYNETDICOM_IMPLEMENTATION_UID)),
            _short(0x0013, b"SH", _text(PYNETDICOM_IMPLEMENTATION_VERSION)),
        )
    )
    return _short(0x0000, b"UL", struct.pack("<L", len(elements))) + elements


def _uid(value: str) -> bytes:
    """A UI value, padded to even length with a NUL (PS3.5 §6.2)."""
    encoded = value.encode("latin-1", "replace")
    return encoded + b"\x00" if len(encoded) % 2 else encoded


def _text(value: str) -> bytes:
    """A text value, padded to even length with a space (PS3.5 §6.2)."""
    encoded = value.encode("latin-1", "replace")
    return encoded + b" " if len(encoded) % 2 else encoded


def _short(element: int, vr: bytes, value: bytes) -> bytes:
    return struct.pack("<HH2sH", 0x0002, element, vr, len(value)) + value


def _long(element: int, vr: bytes, value: bytes) -> bytes:
    return struct.pack("<HH2s2xL", 0x0002, element, vr, len(value)) + value


def study_instance_uid(data: bytes) -> str | None:
    """The Study Instance UID text of a PS3.10 file, stripped of its padding; None when the
    data set has none. Raises :class:`CannotWalk`."""
    try:
        syntax, position = _meta_syntax(data)
        if syntax is None or syntax == DeflatedExplicitVRLittleEndian:
            raise CannotWalk(f"transfer syntax {syntax}")
        implicit = syntax == ImplicitVRLittleEndian
        order = ">" if syntax == ExplicitVRBigEndian else "<"
        if (data[position + 4 : position + 6] in _VRS) == implicit:
            # The encoding contradicts the syntax, which pydicom detects and follows.
            raise CannotWalk("the data set is not in its transfer syntax's VR encoding")
        while position + 8 <= len(data):
            tag, length, value_at = _header(data, position, implicit, order)
            if length == UNDEFINED_LENGTH:
                raise CannotWalk(f"undefined length at offset {position}")
            if tag == STUDY_INSTANCE_UID:
                value = data[value_at : value_at + length]
                return value.decode("ascii").rstrip("\x00 ").strip()
            if tag > STUDY_INSTANCE_UID:
                return None
            position = value_at + length
        return None
    except (struct.error, UnicodeDecodeError) as exc:
        raise CannotWalk(str(exc)) from exc


def _meta_syntax(data: bytes) -> tuple[str | None, int]:
    """The Transfer Syntax UID of the file meta group and where the data set starts."""
    if data[128:132] != b"DICM":
        return None, 0
    position = 132
    syntax = None
    while position + 8 <= len(data) and data[position : position + 2] == b"\x02\x00":
        tag, length, value_at = _header(data, position, False, "<")
        if length == UNDEFINED_LENGTH:
            return None, 0
        if tag == 0x00020010:
            syntax = data[value_at : value_at + length].decode("ascii").rstrip("\x00 ")
        position = value_at + length
    return syntax, position


def _header(data: bytes, position: int, implicit: bool, order: str) -> tuple[int, int, int]:
    """(tag, value length, where the value starts) of the element header at ``position``."""
    group, element = struct.unpack_from(f"{order}HH", data, position)
    tag = group << 16 | element
    if implicit:
        (length,) = struct.unpack_from("<L", data, position + 4)
        return tag, length, position + 8
    vr = data[position + 4 : position + 6]
    if vr not in _VRS:
        raise CannotWalk(f"no VR at offset {position + 4}")
    if vr in _LONG_VRS:
        (length,) = struct.unpack_from(f"{order}L", data, position + 8)
        return tag, length, position + 12
    (length,) = struct.unpack_from(f"{order}H", data, position + 6)
    return tag, length, position + 8
