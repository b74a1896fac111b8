"""The switchable options of the Basic Application Level Confidentiality Profile (PS3.15 E.3).

Teaching files want the patient's characteristics, the intervals between a patient's studies and
the clinically useful descriptions and structured content, so those options are on by default;
everything that identifies the patient, the staff, the site or the device is not retained.
"""

from __future__ import annotations

from dataclasses import dataclass

# Column names of the Table E.1-1 data (teaching/data/README.md) each option switches on.
RETAIN_UIDS = "rtnUIDsOpt"
RETAIN_DEVICE_IDENTITY = "rtnDevIdOpt"
RETAIN_INSTITUTION_IDENTITY = "rtnInstIdOpt"
RETAIN_PATIENT_CHARACTERISTICS = "rtnPatCharsOpt"
RETAIN_FULL_DATES = "rtnLongFullDatesOpt"
RETAIN_MODIFIED_DATES = "rtnLongModifDatesOpt"
CLEAN_DESCRIPTORS = "cleanDescOpt"
CLEAN_STRUCTURED_CONTENT = "cleanStructContOpt"
CLEAN_GRAPHICS = "cleanGraphOpt"
RETAIN_SAFE_PRIVATE = "rtnSafePrivOpt"


@dataclass(frozen=True)
class DeidOptions:
    """Which PS3.15 E.3 options apply; the defaults are the teaching-file profile.

    On by default: Retain Patient Characteristics (E.3.7), Retain Longitudinal Temporal
    Information with Modified Dates (E.3.6), Clean Descriptors (E.3.5), Clean Structured Content
    (E.3.4) and Clean Graphics (E.3.3). Off: Retain UIDs (E.3.9), Retain Device Identity (E.3.8),
    Retain Institution Identity (E.3.11) and Retain ... Full Dates (E.3.6). The Retain Safe
    Private option (E.3.10) is not offered: private attributes are always removed.
    """

    retain_patient_characteristics: bool = True
    retain_modified_dates: bool = True
    clean_descriptors: bool = True
    clean_structured_content: bool = True
    clean_graphics: bool = True
    retain_uids: bool = False
    retain_device_identity: bool = False
    retain_institution_identity: bool = False
    retain_full_dates: bool = False

    def __post_init__(self) -> None:
        # E.3.6 defines the two temporal options as alternatives: dates are either kept as
        # they are or modified, never both.
        if self.retain_full_dates and self.retain_modified_dates:
            raise ValueError(
                "retain_full_dates and retain_modified_dates are alternatives (PS3.15 E.3.6); "
                "switch one of them off"
            )

    def enabled_columns(self) -> frozenset[str]:
        """The Table E.1-1 option columns that are in force."""
        switches = {
            RETAIN_UIDS: self.retain_uids,
            RETAIN_DEVICE_IDENTITY: self.retain_device_identity,
            RETAIN_INSTITUTION_IDENTITY: self.retain_institution_identity,
            RETAIN_PATIENT_CHARACTERISTICS: self.retain_patient_characteristics,
            RETAIN_FULL_DATES: self.retain_full_dates,
            RETAIN_MODIFIED_DATES: self.retain_modified_dates,
            CLEAN_DESCRIPTORS: self.clean_descriptors,
            CLEAN_STRUCTURED_CONTENT: self.clean_structured_content,
            CLEAN_GRAPHICS: self.clean_graphics,
        }
        return frozenset(column for column, on in switches.items() if on)
