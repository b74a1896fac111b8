"""Reading the DICOM JSON Model (PS3.18 Annex F) without trusting the server's shape."""

from __future__ import annotations

from typing import Any

from conformance.registry import Failure

Document = dict[str, Any]


def values(document: Document, tag: str) -> list[Any]:
    """The Value array of ``tag`` (8 hex digits), ``[]`` when absent or empty."""
    element = document.get(tag)
    if element is None:
        return []
    if not isinstance(element, dict) or "vr" not in element:
        raise Failure(f"attribute {tag} is not a DICOM JSON element (no vr): {element!r}")
    return list(element.get("Value", []))


def first(document: Document, tag: str) -> Any:
    found = values(document, tag)
    return found[0] if found else None


def uids(documents: list[Document], tag: str) -> list[str]:
    return [str(first(d, tag)) for d in documents]


def alphabetic(document: Document, tag: str = "00100010") -> str | None:
    """The Alphabetic component group of a PN (Annex F.2.2), as the server sent it."""
    value = first(document, tag)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Failure(f"PN {tag} is not an object with Alphabetic: {value!r}")
    return value.get("Alphabetic")


STUDY_UID = "0020000D"
SERIES_UID = "0020000E"
SOP_UID = "00080018"
SOP_CLASS = "00080016"
PATIENT_ID = "00100020"
MODALITIES = "00080061"
PIXEL_DATA = "7FE00010"
RETRIEVE_URL = "00081190"
REFERENCED_SOP = "00081199"
FAILED_SOP = "00081198"
REFERENCED_SOP_UID = "00081155"
FAILURE_REASON = "00081197"
