"""The clinical study search of the educators' study browser, as on a PACS worklist.

The form's fields become a typed :class:`storage.query.Query` at the study level, as QIDO-RS
parameters do (``dicomweb/qido.py``), with the matching rules of PS3.4 C.2.2.2: a patient
name with ``*`` or ``?`` is a wildcard match over the name's component groups; a plain name
matches the start of any of its components, as QIDO-RS fuzzy matching does (PS3.18 §8.3.4.2),
so "doe" finds "DOE^JOHN"; the description is found anywhere in the study's (``*word*`` unless
the educator wrote wildcards); dates are an inclusive range (C.2.2.2.5). A value that cannot
be matched is a problem naming the field, never a server error.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from storage import json_values as jv
from storage.attributes import BY_KEYWORD, Level
from storage.errors import InvalidQuery
from storage.query import Condition, Query, condition
from storage.records import Match
from storage.results import match_attributes

PAGE = 25
MAX_VALUE = 64
TEXT_FIELDS = {
    "name": ("Patient name", "PatientName"),
    "pid": ("Patient ID", "PatientID"),
    "accession": ("Accession number", "AccessionNumber"),
    "modality": ("Modality", "ModalitiesInStudy"),
    "description": ("Description", "StudyDescription"),
}
DATE_FIELDS = {"from": "Study date from", "to": "Study date to"}


@dataclass(frozen=True)
class Search:
    """A worklist search as the form gave it, the query it makes and its problems."""

    given: dict[str, str]
    query: Query | None
    errors: list[str] = field(default_factory=list)
    page: int = 1


@dataclass(frozen=True)
class StudyRow:
    uid: str
    patient: str
    patient_id: str
    date: str
    modalities: str
    description: str
    accession: str
    series: int | None
    instances: int | None


def read_search(params: dict[str, str], page_text: str = "1") -> Search:
    """The search of the query parameters ``params`` (``name``, ``pid``, ``accession``,
    ``modality``, ``description``, ``from``, ``to``, as the form names them)."""
    given = {name: params.get(name, "").strip() for name in (*TEXT_FIELDS, *DATE_FIELDS)}
    errors = []
    conditions: list[Condition] = []
    fuzzy = False
    for name, (label, keyword) in TEXT_FIELDS.items():
        value = given[name]
        if not value:
            continue
        if len(value) > MAX_VALUE or any(ch < " " or ch == "\x7f" for ch in value):
            errors.append(f"{label}: at most {MAX_VALUE} characters, on one line.")
            continue
        if name == "name" and "*" not in value and "?" not in value:
            fuzzy = True
        elif name == "modality":
            value = value.upper()
        elif name == "description" and "*" not in value and "?" not in value:
            value = f"*{value}*"
        try:
            conditions.append(condition(BY_KEYWORD[keyword], value))
        except InvalidQuery as exc:
            errors.append(f"{label}: {exc.reason}.")
    dates = []
    for name, label in DATE_FIELDS.items():
        text = given[name]
        if not text:
            dates.append("")
            continue
        try:
            dates.append(_date(text).strftime("%Y%m%d"))
        except ValueError:
            errors.append(f"{label}: not a date ({text[:MAX_VALUE]!r}); write it as YYYY-MM-DD.")
            dates.append("")
    if all(dates) and dates[0] > dates[1]:
        errors.append("Study date to: the range ends before it starts.")
    elif any(dates):
        conditions.append(condition(BY_KEYWORD["StudyDate"], f"{dates[0]}-{dates[1]}"))
    page = int(page_text) if page_text.isascii() and page_text.isdigit() else 1
    page = min(max(page, 1), 10**6)
    if errors:
        return Search(given, None, errors, page)
    query = Query(
        level=Level.STUDY,
        conditions=tuple(conditions),
        fuzzy=fuzzy,
        limit=PAGE + 1,
        offset=(page - 1) * PAGE,
    )
    return Search(given, query, [], page)


def _date(text: str) -> datetime.date:
    """A date from a date input (YYYY-MM-DD) or as DICOM writes it (YYYYMMDD)."""
    if len(text) == 8 and text.isascii() and text.isdigit():
        return datetime.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    return datetime.date.fromisoformat(text)


def study_row(match: Match) -> StudyRow:
    attributes = match_attributes(match)
    return StudyRow(
        uid=match.study_uid,
        patient=person_name(attributes),
        patient_id=jv.text(attributes, "00100020") or "",
        date=shown_date(jv.text(attributes, "00080020") or ""),
        modalities=", ".join(str(v) for v in jv.values(attributes, "00080061")),
        description=jv.text(attributes, "00081030") or "",
        accession=jv.text(attributes, "00080050") or "",
        series=jv.first_int(attributes, "00201206"),
        instances=jv.first_int(attributes, "00201208"),
    )


def person_name(attributes: dict[str, Any]) -> str:
    """The patient's name as a worklist shows it: "DOE, JOHN" from "DOE^JOHN"."""
    value = jv.first(attributes, "00100010")
    text = value.get("Alphabetic", "") if isinstance(value, dict) else ""
    parts = [p for p in str(text).split("^") if p]
    if len(parts) < 2:
        return parts[0] if parts else ""
    return f"{parts[0]}, {' '.join(parts[1:])}"


def shown_date(value: str) -> str:
    """YYYY-MM-DD from a DA value; anything else as it is."""
    if len(value) == 8 and value.isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return value
