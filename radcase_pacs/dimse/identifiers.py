"""C-FIND identifiers to typed queries, and matches back to response identifiers.

The same :class:`storage.query.Query` serves QIDO-RS and C-FIND: an identifier's key values
are the text that :func:`storage.query.condition` already parses (PS3.4 C.2.2.2 matching is
one engine), only the framing differs. Patient Root and Study Root information models
(PS3.4 C.6.1, C.6.2) differ only at the PATIENT level, which we answer from the studies'
patient attributes (the archive keeps patients on the study rows).
"""

from __future__ import annotations

import struct
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pynetdicom import evt

from storage.archive import Archive
from storage.attributes import CATALOGUE, Kind, Level, QueryAttribute, visible_at
from storage.dicom_text import element_text
from storage.errors import InvalidQuery
from storage.query import Condition, Query, condition
from storage.results import computed_json, dictionary_vr, match_attributes


class Model(StrEnum):
    PATIENT_ROOT = "PATIENT"
    STUDY_ROOT = "STUDY"


class InvalidIdentifier(ValueError):
    """An identifier that does not fit the information model (PS3.4 C.4.1.1.4: 0xA900
    Identifier does not match SOP Class); the message names the attribute."""


class UnreadableIdentifier(Exception):
    """An identifier whose bytes pydicom cannot decode (answered 0xC000: PS3.4 C.4.1.1.4,
    C.4.2.1.5, C.4.3.1.4 "Unable to process")."""


# What pydicom (and pynetdicom's inflating of a deflated identifier) raise on bytes that are
# not a data set: OSError "No tag to read" for a sequence cut short, EOFError and
# struct.error for a truncated header, ValueError for a value that cannot be converted,
# zlib.error for deflated bytes that do not inflate.
UNDECODABLE = (OSError, EOFError, ValueError, struct.error, zlib.error)


QUERY_RETRIEVE_LEVEL = 0x00080052
SPECIFIC_CHARACTER_SET = 0x00080005
RETRIEVE_AE_TITLE = 0x00080054
NUMBER_OF_PATIENT_RELATED_STUDIES = 0x00201200
NUMBER_OF_PATIENT_RELATED_SERIES = 0x00201202
NUMBER_OF_PATIENT_RELATED_INSTANCES = 0x00201204
UTF8 = "ISO_IR 192"

STORAGE_LEVEL = {
    "PATIENT": Level.STUDY,
    "STUDY": Level.STUDY,
    "SERIES": Level.SERIES,
    "IMAGE": Level.INSTANCE,
}
# The unique key of each level (PS3.4 C.6.1.1, C.6.2.1), always returned.
UNIQUE_KEYS = {
    "PATIENT": (0x00100020,),
    "STUDY": (0x0020000D,),
    "SERIES": (0x0020000D, 0x0020000E),
    "IMAGE": (0x0020000D, 0x0020000E, 0x00080018),
}
PATIENT_KEYS = frozenset({0x00100010, 0x00100020, 0x00100021, 0x00100030, 0x00100040})
PATIENT_COUNTS = {
    NUMBER_OF_PATIENT_RELATED_STUDIES: "studies",
    NUMBER_OF_PATIENT_RELATED_SERIES: "series",
    NUMBER_OF_PATIENT_RELATED_INSTANCES: "instances",
}
_FRAMING = frozenset({QUERY_RETRIEVE_LEVEL, SPECIFIC_CHARACTER_SET, RETRIEVE_AE_TITLE})
_BY_TAG = {a.tag: a for a in CATALOGUE if a.sequence is None}
_BY_SEQUENCE: dict[int, dict[int, QueryAttribute]] = {}
for _attribute in CATALOGUE:
    if _attribute.sequence is not None:
        _BY_SEQUENCE.setdefault(_attribute.sequence, {})[_attribute.tag] = _attribute
PAGE = 500


@dataclass(frozen=True)
class FindRequest:
    """A parsed C-FIND: the DIMSE level, the typed query and the keys to return."""

    level: str
    query: Query
    return_keys: frozenset[int]


def decoded_identifier(event: evt.Event) -> Dataset:
    """The request's identifier with every element decoded now, nested ones included.

    pydicom defers decoding until an element is read; decoding all of it here keeps the
    peer's undecodable bytes (UnreadableIdentifier) apart from faults of the code that then
    reads the identifier, which are ours and must not be answered as the peer's.
    """
    try:
        identifier = event.identifier
        with warnings.catch_warnings():
            # pydicom warns of values invalid for their VR; matching refuses those itself,
            # naming the key (0xA900), so they are not unreadable bytes.
            warnings.simplefilter("ignore")
            for _ in identifier.iterall():
                pass
    except UNDECODABLE as exc:
        raise UnreadableIdentifier(f"cannot read the identifier: {exc}") from exc
    return identifier


def query_level(identifier: Dataset, model: Model) -> str:
    """Query/Retrieve Level (0008,0052), checked against the model (PS3.4 C.6.1.1.1:
    PATIENT exists only in the Patient Root model)."""
    level = str(identifier.get("QueryRetrieveLevel", "") or "").strip().upper()
    allowed = list(STORAGE_LEVEL) if model is Model.PATIENT_ROOT else list(STORAGE_LEVEL)[1:]
    if level not in allowed:
        raise InvalidIdentifier(
            f"QueryRetrieveLevel: {level or 'missing'!s} is not one of {', '.join(allowed)} "
            f"in the {model.value.title()} Root model"
        )
    return level


def parse_find(identifier: Dataset, model: Model) -> FindRequest:
    """Matching keys become conditions; every key, matching or not, is returned (PS3.4
    C.4.1.1.3.1: the response carries the attributes the identifier asked for)."""
    level = query_level(identifier, model)
    storage_level = STORAGE_LEVEL[level]
    conditions: list[Condition] = []
    return_keys = set(UNIQUE_KEYS[level])
    for element in identifier:
        tag = int(element.tag)
        if tag in _FRAMING or element.tag.group == 0x0000 or element.tag.is_private:
            continue
        return_keys.add(tag)
        if element.VR == "SQ":
            conditions.extend(_sequence_conditions(element, level, storage_level))
            continue
        attribute = _BY_TAG.get(tag)
        text = element_text(element)
        if attribute is None or not attribute.matchable or text == "":
            continue  # a return key, or matching we do not offer (PS3.4 C.2.2.1.2)
        _check_level(attribute, level, storage_level)
        conditions.append(_condition(attribute, text))
    query = Query(level=storage_level, conditions=tuple(conditions))
    return FindRequest(level, query, frozenset(return_keys))


def _sequence_conditions(element: DataElement, level: str, storage_level: Level) -> list[Condition]:
    """Sequence matching (PS3.4 C.2.2.2.6): one item whose keys match, here the Request
    Attributes Sequence keys the catalogue indexes."""
    known = _BY_SEQUENCE.get(int(element.tag), {})
    items = element.value or []
    if not known or not items:
        return []
    if len(items) > 1:
        raise InvalidIdentifier(f"{element.keyword}: a matching sequence holds one item")
    found = []
    for inner in items[0]:
        attribute = known.get(int(inner.tag))
        text = element_text(inner)
        if attribute is not None and text:
            _check_level(attribute, level, storage_level)
            found.append(_condition(attribute, text))
    return found


def _check_level(attribute: QueryAttribute, level: str, storage_level: Level) -> None:
    """PS3.4 C.4.1.2.1: keys of levels below the query level are not allowed; at the
    PATIENT level only patient attributes match."""
    if (level == "PATIENT" and attribute.tag not in PATIENT_KEYS) or not visible_at(
        attribute, storage_level
    ):
        raise InvalidIdentifier(
            f"{attribute.keyword}: a {attribute.level.lower()}-level key cannot be matched "
            f"in a {level} query"
        )


def _condition(attribute: QueryAttribute, text: str) -> Condition:
    if "\\" in text and attribute.kind is not Kind.UID:
        raise InvalidIdentifier(
            f"{attribute.keyword}: several values are matched only for UID keys (PS3.4 C.2.2.2.2)"
        )
    try:
        return condition(attribute, text)
    except InvalidQuery as exc:
        raise InvalidIdentifier(str(exc)) from exc


# -- results ------------------------------------------------------------------------------


def response_identifier(
    attributes: dict[str, Any], computed: dict[int, Any], request: FindRequest, ae_title: str
) -> Dataset:
    """One C-FIND response identifier: each requested key with its value, or empty when the
    archive has none (PS3.4 C.4.1.1.3.2); Retrieve AE Title says where to C-MOVE from."""
    wanted: dict[str, Any] = {}
    for tag in request.return_keys:
        key = f"{tag:08X}"
        if tag in computed:
            wanted[key] = computed_json(tag, computed[tag])
        elif key in attributes:
            wanted[key] = attributes[key]
    ds = Dataset.from_json(wanted)
    for tag in request.return_keys:
        if tag not in ds:
            _add_empty(ds, tag)
    ds.QueryRetrieveLevel = request.level
    ds.RetrieveAETitle = ae_title
    if not _is_ascii(ds):
        ds.SpecificCharacterSet = UTF8
    return ds


def _add_empty(ds: Dataset, tag: int) -> None:
    vr = dictionary_vr(tag)
    if vr == "UN":
        return  # an unknown public tag or a private one: nothing sensible to return
    ds.add_new(tag, vr, Sequence() if vr == "SQ" else None)


def _is_ascii(ds: Dataset) -> bool:
    for element in ds.iterall():
        if element.VR in ("PN", "LO", "SH", "LT", "ST", "UT", "UC") and element.value:
            values = element.value if isinstance(element.value, MultiValue) else [element.value]
            if not all(str(v).isascii() for v in values):
                return False
    return True


def find(archive: Archive, request: FindRequest, ae_title: str) -> Iterator[Dataset]:
    """Response identifiers, page by page so that a large result never sits in memory."""
    if request.level == "PATIENT":
        yield from _find_patients(archive, request, ae_title)
        return
    offset = 0
    while True:
        query = _page(request.query, offset)
        matches = archive.query(query, limit=PAGE)
        for match in matches:
            yield response_identifier(match_attributes(match), match.computed, request, ae_title)
        if len(matches) < PAGE:
            return
        offset += PAGE


def _page(query: Query, offset: int) -> Query:
    return Query(level=query.level, conditions=query.conditions, offset=offset)


def _find_patients(archive: Archive, request: FindRequest, ae_title: str) -> Iterator[Dataset]:
    """PATIENT level: one response per Patient ID (with its issuer), counts summed over its
    studies (PS3.4 C.6.1.1.2, Number of Patient Related Studies/Series/Instances)."""
    patients: dict[tuple[str, str], tuple[dict[str, Any], dict[str, int]]] = {}
    offset = 0
    while True:
        matches = archive.query(_page(request.query, offset), limit=PAGE)
        for match in matches:
            attributes = match_attributes(match)
            key = (_first(attributes, "00100020"), _first(attributes, "00100021"))
            patient = {k: v for k, v in attributes.items() if k.startswith("0010")}
            _, counts = patients.setdefault(
                key, (patient, {"studies": 0, "series": 0, "instances": 0})
            )
            counts["studies"] += 1
            counts["series"] += int(match.computed.get(0x00201206, 0))
            counts["instances"] += int(match.computed.get(0x00201208, 0))
        if len(matches) < PAGE:
            break
        offset += PAGE
    for patient, counts in patients.values():
        computed = {tag: counts[name] for tag, name in PATIENT_COUNTS.items()}
        yield response_identifier(patient, computed, request, ae_title)


def _first(attributes: dict[str, Any], key: str) -> str:
    values = attributes.get(key, {}).get("Value") or [""]
    return str(values[0])
