"""What a C-MOVE or C-GET retrieves, and each instance as the receiver can take it.

A retrieve identifier names unique keys at its level (PS3.4 C.4.2.1.4 and C.4.3.1.3: lists
of UIDs allowed); we resolve them with the same query engine as C-FIND and QIDO-RS, then
send the stored bytes when the receiver accepted the stored transfer syntax, or decompress
to Explicit VR Little Endian when it accepted only uncompressed data (PS3.4 C.4.2.3.1 leaves
the choice of transfer syntax to the presentation contexts).
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom.presentation import PresentationContext

from radcase_pacs.dimse.identifiers import InvalidIdentifier, Model, query_level
from storage.archive import Archive
from storage.attributes import BY_KEYWORD, Level
from storage.dicom_text import attribute_text
from storage.errors import InvalidQuery, NotFound, Unavailable
from storage.query import Condition, Query, condition
from storage.records import StoredInstance
from storage.transcode import to_explicit_little_endian, transcode_problem

log = logging.getLogger(__name__)

# pynetdicom reports sub-operation counts as US (PS3.7 Table 9.3-x): at most 65535.
MAX_SUB_OPERATIONS = 65535
UNCOMPRESSED = (str(ExplicitVRLittleEndian), str(ImplicitVRLittleEndian))

# Each level's unique key and the keys of the levels above that narrow it (PS3.4 C.6.1.1,
# C.6.2.1); the Patient ID above STUDY in the Patient Root model is implied by the Study UID.
_KEYS: dict[str, tuple[str, Level, tuple[str, ...]]] = {
    "PATIENT": ("PatientID", Level.STUDY, ()),
    "STUDY": ("StudyInstanceUID", Level.STUDY, ()),
    "SERIES": ("SeriesInstanceUID", Level.SERIES, ("StudyInstanceUID",)),
    "IMAGE": ("SOPInstanceUID", Level.INSTANCE, ("StudyInstanceUID", "SeriesInstanceUID")),
}


@dataclass(frozen=True)
class RetrieveRequest:
    """A parsed retrieve identifier: the typed query and the unique key it names."""

    keyword: str
    query: Query


def parse_retrieve(identifier: Dataset, model: Model) -> RetrieveRequest:
    """The instances a retrieve identifier designates, as a query; InvalidIdentifier when
    it does not name them as PS3.4 C.4.2.1.4 / C.4.3.1.3 ask."""
    keyword, storage_level, uppers = _KEYS[query_level(identifier, model)]
    conditions = [_unique_key(identifier, keyword)]
    conditions += [_unique_key(identifier, k) for k in uppers if attribute_text(identifier, k)]
    return RetrieveRequest(keyword, Query(level=storage_level, conditions=tuple(conditions)))


def instances_to_retrieve(archive: Archive, request: RetrieveRequest) -> list[StoredInstance]:
    """Every stored instance the request designates, in study/series/instance order;
    InvalidIdentifier when more match than a retrieve can count."""
    found: list[StoredInstance] = []
    for match in archive.query(request.query, limit=MAX_SUB_OPERATIONS + 1):
        try:
            found.extend(archive.instances(match.study_uid, match.series_uid, match.sop_uid))
        except NotFound:
            continue  # deleted since the query: nothing to send
        if len(found) > MAX_SUB_OPERATIONS:
            raise InvalidIdentifier(
                f"{request.keyword}: more than {MAX_SUB_OPERATIONS} instances match; retrieve "
                "a narrower level"
            )
    return found


def _unique_key(identifier: Dataset, keyword: str) -> Condition:
    text = attribute_text(identifier, keyword)
    if not text:
        raise InvalidIdentifier(f"{keyword}: the unique key of the retrieve level is missing")
    if "*" in text or "?" in text:
        raise InvalidIdentifier(f"{keyword}: a retrieve names instances, not a pattern")
    try:
        return condition(BY_KEYWORD[keyword], text)
    except InvalidQuery as exc:
        raise InvalidIdentifier(str(exc)) from exc


@dataclass(frozen=True)
class Accepted:
    """The storage contexts the receiver accepted: (SOP Class, transfer syntax) pairs."""

    pairs: frozenset[tuple[str, str]]

    @classmethod
    def from_contexts(cls, contexts: Iterable[PresentationContext]) -> Accepted:
        """Accepted contexts in which we may act as the Storage SCU."""
        return cls(
            frozenset(
                (str(cx.abstract_syntax), str(syntax))
                for cx in contexts
                if cx.as_scu
                for syntax in cx.transfer_syntax
            )
        )

    def takes(self, sop_class: str, syntax: str) -> bool:
        return (sop_class, syntax) in self.pairs

    def takes_uncompressed(self, sop_class: str) -> bool:
        return any(self.takes(sop_class, s) for s in UNCOMPRESSED)


def dataset_to_send(archive: Archive, instance: StoredInstance, accepted: Accepted) -> Dataset:
    """The instance in its stored syntax when the receiver takes it (pynetdicom converts
    between the uncompressed little-endian syntaxes itself), else decompressed.

    An instance that cannot be decompressed (no decoder, or pixel data that does not decode:
    recorded at ingest, or found now) goes as stored: pynetdicom finds no context for it and
    counts that one C-STORE sub-operation as failed, and the others go on (PS3.4 C.4.2.3.1,
    C.4.3.3.1: the final status then reports the failures)."""
    data = archive.read(instance)
    stored = UID(instance.transfer_syntax)
    sop_class = instance.sop_class_uid
    uncompressed_ok = accepted.takes_uncompressed(sop_class)
    convertible = stored.is_little_endian and not stored.is_compressed
    as_stored = accepted.takes(sop_class, stored) or (convertible and uncompressed_ok)
    target = str(ExplicitVRLittleEndian)
    if not as_stored and uncompressed_ok and transcode_problem(instance, target) is None:
        try:
            data = to_explicit_little_endian(data)
        except Unavailable as exc:
            log.warning("instance %s goes as stored: %s", instance.sop_uid, exc)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(io.BytesIO(data), force=True)


def requested_contexts(instances: Iterable[StoredInstance]) -> list[tuple[str, list[str]]]:
    """Contexts to propose to a C-MOVE destination: each SOP Class once uncompressed, and once
    in each compressed syntax it is stored in; at most 128 (PS3.8 §9.3.2.2 context IDs)."""
    uncompressed: list[tuple[str, list[str]]] = []
    compressed: list[tuple[str, list[str]]] = []
    seen: set[tuple[str, str]] = set()
    for instance in instances:
        sop_class, syntax = instance.sop_class_uid, instance.transfer_syntax
        if (sop_class, "") not in seen:
            seen.add((sop_class, ""))
            uncompressed.append((sop_class, list(UNCOMPRESSED)))
        if syntax not in UNCOMPRESSED and (sop_class, syntax) not in seen:
            seen.add((sop_class, syntax))
            compressed.append((sop_class, [syntax]))
    return (uncompressed + compressed)[:128]
