"""The query attribute catalogue: which attributes are matched and returned at each level.

One table drives the index schema, the QIDO-RS parser, the C-FIND identifier parser and the
response builder, so the three never disagree about what can be searched.

PS3.18 §10.6.1.2.3 (Tables 10.6.1-5, -6, -7) lists the attributes an origin server shall
support for matching at the study, series and instance levels, and PS3.18 §10.6.3.3
(Tables 10.6.3-3, -4, -5) those it shall return by default. We match a few more that viewers
send (OHIF's study list searches StudyDescription; worklists search by sex and birth date).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Level(StrEnum):
    """Query/retrieve levels (PS3.4 C.6.2, Study Root; patient attributes live on the study)."""

    STUDY = "STUDY"
    SERIES = "SERIES"
    INSTANCE = "INSTANCE"


class Kind(StrEnum):
    """How an attribute's values are matched (PS3.4 C.2.2.2) and stored."""

    UID = "UID"  # single value or list of UIDs (C.2.2.2.2)
    TEXT = "TEXT"  # single value or wildcard, case-sensitive
    PN = "PN"  # person name: case-insensitive; fuzzy also accent-insensitive (PS3.18 §8.3.4.2)
    DATE = "DATE"  # DA: single value or range (C.2.2.2.5)
    TIME = "TIME"  # TM: single value or range
    NUMBER = "NUMBER"  # IS: single value, compared as integers
    MODALITIES = "MODALITIES"  # ModalitiesInStudy: matches if any series matches
    COMPUTED = "COMPUTED"  # returned only, derived from the index (counts, availability)


@dataclass(frozen=True, slots=True)
class QueryAttribute:
    """One attribute the index knows: its tag, level, matching kind and index column.

    ``column`` is the column matched in SQL (for PN the ``_ci``/``_fuzzy`` pair derives from it);
    ``sequence`` is the enclosing sequence's tag for keys such as
    RequestAttributesSequence > ScheduledProcedureStepID (PS3.18 Table 10.6.1-6).
    """

    tag: int
    keyword: str
    vr: str
    level: Level
    kind: Kind
    column: str | None = None
    sequence: int | None = None

    @property
    def matchable(self) -> bool:
        return self.kind is not Kind.COMPUTED

    @property
    def key(self) -> str:
        """The 8-hex-digit DICOM JSON key (PS3.18 §F.2.1.1), dotted for sequence keys."""
        own = f"{self.tag:08X}"
        return f"{self.sequence:08X}.{own}" if self.sequence is not None else own


def _a(
    tag: int,
    keyword: str,
    vr: str,
    level: Level,
    kind: Kind,
    column: str | None = None,
    sequence: int | None = None,
) -> QueryAttribute:
    return QueryAttribute(tag, keyword, vr, level, kind, column, sequence)


S, SE, IN = Level.STUDY, Level.SERIES, Level.INSTANCE

REQUEST_ATTRIBUTES_SEQUENCE = 0x00400275

CATALOGUE: tuple[QueryAttribute, ...] = (
    # Study level, patient attributes included (Study Root model, PS3.18 §10.6.1.2.3).
    _a(0x0020000D, "StudyInstanceUID", "UI", S, Kind.UID, "study_uid"),
    _a(0x00100010, "PatientName", "PN", S, Kind.PN, "patient_name"),
    _a(0x00100020, "PatientID", "LO", S, Kind.TEXT, "patient_id"),
    _a(0x00100021, "IssuerOfPatientID", "LO", S, Kind.TEXT, "issuer_of_patient_id"),
    _a(0x00100030, "PatientBirthDate", "DA", S, Kind.DATE, "patient_birth_date"),
    _a(0x00100040, "PatientSex", "CS", S, Kind.TEXT, "patient_sex"),
    _a(0x00080020, "StudyDate", "DA", S, Kind.DATE, "study_date"),
    _a(0x00080030, "StudyTime", "TM", S, Kind.TIME, "study_time"),
    _a(0x00080050, "AccessionNumber", "SH", S, Kind.TEXT, "accession_number"),
    _a(0x00080090, "ReferringPhysicianName", "PN", S, Kind.PN, "referring_physician_name"),
    _a(0x00200010, "StudyID", "SH", S, Kind.TEXT, "study_id"),
    _a(0x00081030, "StudyDescription", "LO", S, Kind.TEXT, "study_description"),
    _a(0x00080061, "ModalitiesInStudy", "CS", S, Kind.MODALITIES, "modality"),
    _a(0x00080062, "SOPClassesInStudy", "UI", S, Kind.COMPUTED),
    _a(0x00201206, "NumberOfStudyRelatedSeries", "IS", S, Kind.COMPUTED),
    _a(0x00201208, "NumberOfStudyRelatedInstances", "IS", S, Kind.COMPUTED),
    # Series level.
    _a(0x0020000E, "SeriesInstanceUID", "UI", SE, Kind.UID, "series_uid"),
    _a(0x00080060, "Modality", "CS", SE, Kind.TEXT, "modality"),
    _a(0x00200011, "SeriesNumber", "IS", SE, Kind.NUMBER, "series_number"),
    _a(0x0008103E, "SeriesDescription", "LO", SE, Kind.TEXT, "series_description"),
    _a(0x00180015, "BodyPartExamined", "CS", SE, Kind.TEXT, "body_part_examined"),
    _a(0x00400244, "PerformedProcedureStepStartDate", "DA", SE, Kind.DATE, "pps_start_date"),
    _a(0x00400245, "PerformedProcedureStepStartTime", "TM", SE, Kind.TIME, "pps_start_time"),
    _a(
        0x00400009,
        "ScheduledProcedureStepID",
        "SH",
        SE,
        Kind.TEXT,
        "scheduled_procedure_step_id",
        REQUEST_ATTRIBUTES_SEQUENCE,
    ),
    _a(
        0x00401001,
        "RequestedProcedureID",
        "SH",
        SE,
        Kind.TEXT,
        "requested_procedure_id",
        REQUEST_ATTRIBUTES_SEQUENCE,
    ),
    _a(0x00201209, "NumberOfSeriesRelatedInstances", "IS", SE, Kind.COMPUTED),
    # Instance level.
    _a(0x00080018, "SOPInstanceUID", "UI", IN, Kind.UID, "sop_uid"),
    _a(0x00080016, "SOPClassUID", "UI", IN, Kind.UID, "sop_class_uid"),
    _a(0x00200013, "InstanceNumber", "IS", IN, Kind.NUMBER, "instance_number"),
    _a(0x00080056, "InstanceAvailability", "CS", IN, Kind.COMPUTED),
)

BY_KEYWORD: dict[str, QueryAttribute] = {a.keyword: a for a in CATALOGUE}
BY_KEY: dict[str, QueryAttribute] = {a.key: a for a in CATALOGUE}
for _attr in CATALOGUE:
    if _attr.sequence is not None:
        BY_KEYWORD[f"RequestAttributesSequence.{_attr.keyword}"] = _attr

_LEVEL_ORDER = {S: 0, SE: 1, IN: 2}


def visible_at(attribute: QueryAttribute, level: Level) -> bool:
    """An attribute can be matched at its own level and any level below it (PS3.18 §10.6.1.2:
    a search for series across studies may use study keys)."""
    return _LEVEL_ORDER[attribute.level] <= _LEVEL_ORDER[level]


# Attributes each level returns by default (PS3.18 Tables 10.6.3-3, -4, -5), besides matched
# and requested ones. RetrieveURL (0008,1190) is added by the DICOMweb layer.
DEFAULT_RETURN: dict[Level, frozenset[int]] = {
    S: frozenset(
        {
            0x00080005,
            0x00080020,
            0x00080030,
            0x00080050,
            0x00080056,
            0x00080061,
            0x00080090,
            0x00080201,
            0x00100010,
            0x00100020,
            0x00100030,
            0x00100040,
            0x0020000D,
            0x00200010,
            0x00201206,
            0x00201208,
        }
    ),
    SE: frozenset(
        {
            0x00080005,
            0x00080060,
            0x00080201,
            0x0008103E,
            0x0020000E,
            0x00200011,
            0x00201209,
            0x00400244,
            0x00400245,
            0x00400275,
            0x00080056,
        }
    ),
    IN: frozenset(
        {
            0x00080005,
            0x00080016,
            0x00080018,
            0x00080056,
            0x00080201,
            0x00200013,
            0x00280010,
            0x00280011,
            0x00280100,
            0x00280008,
        }
    ),
}

# Top-level attributes copied from an instance into the study and series documents at ingest
# (Patient, General Study and Patient Study modules, PS3.3 C.7.1.1, C.7.2.1, C.7.2.2; General
# Series, Frame of Reference and General Equipment, C.7.3.1, C.7.4.1, C.7.5.1). The study level
# also keeps the whole of groups 0010 (patient) and 0012 (clinical trial, de-identification).
STUDY_DOC_GROUPS = frozenset({0x0010, 0x0012})
STUDY_DOC_TAGS = frozenset(
    {
        0x00080005,
        0x00080020,
        0x00080030,
        0x00080050,
        0x00080051,
        0x00080090,
        0x00080096,
        0x00080201,
        0x00081030,
        0x00081032,
        0x00081048,
        0x00081049,
        0x00081060,
        0x00081062,
        0x00081080,
        0x00081084,
        0x0020000D,
        0x00200010,
        0x00321032,
        0x00321033,
        0x00321060,
        0x00321064,
        0x00401012,
    }
)
SERIES_DOC_TAGS = frozenset(
    {
        0x00080005,
        0x00080021,
        0x00080031,
        0x00080060,
        0x00080064,
        0x00080070,
        0x00080080,
        0x00080201,
        0x00081010,
        0x0008103E,
        0x00081040,
        0x00081050,
        0x00081070,
        0x00081090,
        0x00181000,
        0x00181020,
        0x00181030,
        0x00180015,
        0x00185100,
        0x0020000E,
        0x00200011,
        0x00200052,
        0x00200060,
        0x00201040,
        0x00400244,
        0x00400245,
        0x00400253,
        0x00400254,
        0x00400260,
        0x00400275,
    }
)


def in_study_doc(tag: int) -> bool:
    return tag in STUDY_DOC_TAGS or (tag >> 16) in STUDY_DOC_GROUPS


def in_series_doc(tag: int) -> bool:
    return tag in SERIES_DOC_TAGS
