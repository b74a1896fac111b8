"""Reading a Key Object Selection document that asks for a teaching-file export.

IHE RAD TCE: a radiologist flags images at the workstation, which sends a KOS (PS3.3 A.35.4)
whose document title is "For Teaching File Export"; the teaching-file system makes a draft case
of the images it references, with the document's Key Object Description text as the
radiologist's note.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from storage.dicom_text import attribute_text
from teaching.cases.codes import (
    KEY_OBJECT_DESCRIPTION,
    KEY_OBJECT_SELECTION_CLASS,
    PERSON_OBSERVER_NAME,
    TEACHING_EXPORT_TITLES,
)


@dataclass(frozen=True)
class Reference:
    study_uid: str
    series_uid: str
    sop_uid: str


@dataclass(frozen=True)
class KeyImageReference:
    sop_uid: str
    frames: tuple[int, ...] = ()


@dataclass(frozen=True)
class TeachingFileRequest:
    """What a teaching-file KOS asks for."""

    kos_sop_uid: str
    title: str
    description: str
    observer: str
    references: tuple[Reference, ...]
    key_images: tuple[KeyImageReference, ...]

    @property
    def study_uids(self) -> list[str]:
        return list(dict.fromkeys(r.study_uid for r in self.references))


def _code(item: Dataset) -> tuple[str, str]:
    codes = item.get("ConceptNameCodeSequence") or []
    if not codes:
        return "", ""
    code = codes[0]
    value = (
        attribute_text(code, "CodeValue")
        or attribute_text(code, "LongCodeValue")
        or attribute_text(code, "URNCodeValue")
    )
    return value, attribute_text(code, "CodingSchemeDesignator")


def teaching_file_request(ds: Dataset) -> TeachingFileRequest | None:
    """The request a KOS carries, or None when the data set is not a teaching-file KOS."""
    if attribute_text(ds, "SOPClassUID") != KEY_OBJECT_SELECTION_CLASS:
        return None
    title = TEACHING_EXPORT_TITLES.get(_code(ds))
    if title is None:
        return None
    descriptions: list[str] = []
    observers: list[str] = []
    key_images: list[KeyImageReference] = []
    for item in ds.get("ContentSequence") or []:
        kind = attribute_text(item, "ValueType")
        if kind == "TEXT" and _code(item) == KEY_OBJECT_DESCRIPTION:
            descriptions.append(attribute_text(item, "TextValue"))
        elif kind == "PNAME" and _code(item) == PERSON_OBSERVER_NAME:
            observers.append(attribute_text(item, "PersonName"))
        elif kind in ("IMAGE", "COMPOSITE"):
            for ref in item.get("ReferencedSOPSequence") or []:
                key_images.append(
                    KeyImageReference(attribute_text(ref, "ReferencedSOPInstanceUID"), _frames(ref))
                )
    return TeachingFileRequest(
        kos_sop_uid=attribute_text(ds, "SOPInstanceUID"),
        title=title,
        description="\n".join(d for d in descriptions if d),
        observer=next((o for o in observers if o), ""),
        references=tuple(_evidence(ds)),
        key_images=tuple(k for k in key_images if k.sop_uid),
    )


def _evidence(ds: Dataset) -> list[Reference]:
    """PS3.3 C.17.2.1 Current Requested Procedure Evidence Sequence: every referenced
    instance with its study and series."""
    found = []
    for study in ds.get("CurrentRequestedProcedureEvidenceSequence") or []:
        study_uid = attribute_text(study, "StudyInstanceUID")
        for series in study.get("ReferencedSeriesSequence") or []:
            series_uid = attribute_text(series, "SeriesInstanceUID")
            for ref in series.get("ReferencedSOPSequence") or []:
                sop_uid = attribute_text(ref, "ReferencedSOPInstanceUID")
                if study_uid and series_uid and sop_uid:
                    found.append(Reference(study_uid, series_uid, sop_uid))
    return found


def _frames(ref: Dataset) -> tuple[int, ...]:
    """Referenced Frame Number (IS, 1-n); values that are not positive integers are ignored."""
    value = ref.get("ReferencedFrameNumber")
    if value is None or value == "":
        return ()
    numbers = []
    for item in value if isinstance(value, MultiValue) else [value]:
        try:
            number = float(item)
        except (TypeError, ValueError):
            continue
        # int() would truncate a decimal string such as "1.5" (kept as a float by pydicom's
        # lenient reading) to frame 1; a frame number must be a whole number.
        if number.is_integer() and number >= 1:
            numbers.append(int(number))
    return tuple(numbers)
