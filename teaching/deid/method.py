"""How a de-identified instance records what was done to it (PS3.3 C.7.1.1, C.12.1; CID 7050).

PS3.15 E.1.1 requires Patient Identity Removed (0012,0062) "YES" and a description of the
method in De-identification Method (0012,0063) and/or De-identification Method Code Sequence
(0012,0064); both are written, the codes from CID 7050 "De-identification Method" (DCM scheme):
113100 for the Basic Profile and one code per option applied. Longitudinal Temporal Information
Modified (0028,0303), SOP Common Module (PS3.3 C.12.1), says what happened to the dates
(PS3.15 E.2, E.3.6).
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from teaching.deid.options import DeidOptions

# PS3.16 CID 7050 (checked against the CID 7050 concepts pydicom ships from PS3.16).
BASIC_PROFILE = ("113100", "Basic Application Confidentiality Profile")
CLEAN_PIXEL_DATA = ("113101", "Clean Pixel Data Option")
CLEAN_GRAPHICS = ("113103", "Clean Graphics Option")
CLEAN_STRUCTURED_CONTENT = ("113104", "Clean Structured Content Option")
CLEAN_DESCRIPTORS = ("113105", "Clean Descriptors Option")
RETAIN_FULL_DATES = ("113106", "Retain Longitudinal Temporal Information Full Dates Option")
RETAIN_MODIFIED_DATES = (
    "113107",
    "Retain Longitudinal Temporal Information Modified Dates Option",
)
RETAIN_PATIENT_CHARACTERISTICS = ("113108", "Retain Patient Characteristics Option")
RETAIN_DEVICE_IDENTITY = ("113109", "Retain Device Identity Option")
RETAIN_UIDS = ("113110", "Retain UIDs Option")
RETAIN_INSTITUTION_IDENTITY = ("113112", "Retain Institution Identity Option")


def method_codes(options: DeidOptions) -> list[tuple[str, str]]:
    """The CID 7050 codes (value, meaning) of the profile and of each option applied."""
    switches = [
        (options.retain_patient_characteristics, RETAIN_PATIENT_CHARACTERISTICS),
        (options.retain_modified_dates, RETAIN_MODIFIED_DATES),
        (options.retain_full_dates, RETAIN_FULL_DATES),
        (options.clean_descriptors, CLEAN_DESCRIPTORS),
        (options.clean_structured_content, CLEAN_STRUCTURED_CONTENT),
        (options.clean_graphics, CLEAN_GRAPHICS),
        (options.retain_uids, RETAIN_UIDS),
        (options.retain_device_identity, RETAIN_DEVICE_IDENTITY),
        (options.retain_institution_identity, RETAIN_INSTITUTION_IDENTITY),
    ]
    return [BASIC_PROFILE] + [code for on, code in switches if on]


def code_item(code: tuple[str, str]) -> Dataset:
    item = Dataset()
    item.CodeValue = code[0]
    item.CodingSchemeDesignator = "DCM"
    item.CodeMeaning = code[1]
    return item


def temporal_state(options: DeidOptions) -> str:
    """Longitudinal Temporal Information Modified (0028,0303): MODIFIED, UNMODIFIED or REMOVED."""
    if options.retain_modified_dates:
        return "MODIFIED"
    if options.retain_full_dates:
        return "UNMODIFIED"
    return "REMOVED"


def record_method(ds: Dataset, options: DeidOptions) -> None:
    """Write the de-identification record into the copy (replacing any earlier one)."""
    codes = method_codes(options)
    ds.PatientIdentityRemoved = "YES"
    # LO, one meaning per value: every CID 7050 meaning fits the 64 characters of LO.
    ds.DeidentificationMethod = [meaning for _, meaning in codes]
    ds.DeidentificationMethodCodeSequence = Sequence([code_item(code) for code in codes])
    ds.LongitudinalTemporalInformationModified = temporal_state(options)


def add_method_code(ds: Dataset, code: tuple[str, str]) -> None:
    """Record one more method applied after de-identification (e.g. pixel blanking)."""
    existing = ds.get("DeidentificationMethodCodeSequence") or Sequence([])
    if any(item.get("CodeValue") == code[0] for item in existing):
        return
    existing.append(code_item(code))
    ds.DeidentificationMethodCodeSequence = existing
    current = ds.get("DeidentificationMethod")
    if not current:
        meanings: list[str] = []
    elif isinstance(current, str):
        meanings = [current]
    else:
        meanings = [str(value) for value in current]
    ds.DeidentificationMethod = [*meanings, code[1]]
