"""A data element's value as text, the way its encoded form holds it: several values joined
by a backslash (PS3.5 §6.4), a person name in its DICOM string form (PS3.5 §6.2.1), bytes
(an unknown VR) read as ASCII.

Ingest (index values), C-FIND and C-MOVE identifiers, KOS intake, de-identification and the
DIMSE audit all read attribute values as text; they read them this one way.
"""

from __future__ import annotations

from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException
from pydicom.multival import MultiValue

UNDECODABLE: tuple[type[Exception], ...] = (
    BytesLengthException,
    NotImplementedError,
    LookupError,
    ValueError,
)
"""What pydicom raises when it decodes an element's raw value on first access and cannot: a
length that does not fit the VR, an unknown VR, and (when reading validation is strict) a VR
it cannot look up, a value or a character set it cannot decode."""


def value_text(value: Any) -> str:
    """A value as text, unstripped; "" for no value."""
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(v) for v in value)
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    return str(value)


def element_text(element: DataElement) -> str:
    """An element's value as text, stripped of padding; "" for no value."""
    return value_text(element.value).strip()


def attribute_text(ds: Dataset, keyword: str) -> str:
    """The value of ``ds``'s attribute ``keyword`` as text, stripped of padding; "" when the
    attribute is absent or empty."""
    return value_text(ds.get(keyword)).strip()
