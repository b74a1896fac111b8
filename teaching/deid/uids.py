"""UID replacement: a keyed hash of each original UID to a `2.25.` UID (PS3.15 E.1.1, PS3.5 B.2).

Why a keyed hash: the same study exported twice must map to the same UIDs (so follow-up series
join the same teaching study), and nobody without the per-deployment secret may recompute the
mapping from a known clinical UID. HMAC-SHA256(secret, original UID), its first 128 bits read as
an unsigned integer, is written as `2.25.<decimal>` (PS3.5 B.2, UUID-derived UIDs): at most
44 characters, below the 64 of PS3.5 9.1, and a decimal integer never has a leading zero.

Well-known UIDs are kept: they identify kinds of things (SOP classes, transfer syntaxes, coding
schemes, well-known frames of reference), not the patient, and remapping them would break the
object. A UID is well-known when pydicom's UID dictionary lists it, when it lies under the DICOM
root `1.2.840.10008.` (everything DICOM itself registers, including UIDs newer than pydicom's
dictionary), when it is one of the coding scheme UIDs of PS3.16 Section 8 listed below, or when
it is this engine's own implementation class UID.

This module does no I/O: `UidMap` exposes the (original -> replacement) pairs for the caller to
persist (with access control) so later exports of the same patient join the same study.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pydicom._uid_dict import UID_dictionary

DICOM_ROOT = "1.2.840.10008."
UUID_ROOT = "2.25."
# Implementation Class UID written in the rebuilt file meta (PS3.10 7.1); a fixed 2.25 UID.
IMPLEMENTATION_CLASS_UID = "2.25.198535334918210992886008795500825682644"
IMPLEMENTATION_VERSION_NAME = "RADCASE_DEID_1"

# Coding schemes registered by HL7 OIDs rather than under the DICOM root (PS3.16 Section 8,
# Table 8-1): they name vocabularies, appear in Coding Scheme UID (0008,010C), and identify
# no one.
CODING_SCHEME_UIDS = frozenset(
    {
        "2.16.840.1.113883.6.96",  # SNOMED CT (SCT)
        "2.16.840.1.113883.6.1",  # LOINC (LN)
        "2.16.840.1.113883.6.8",  # UCUM
        "2.16.840.1.113883.6.256",  # RadLex (RADLEX)
        "2.16.840.1.113883.6.3",  # ICD-10
        "2.16.840.1.113883.6.86",  # UMLS
        "2.16.840.1.113883.6.119",  # FMA
        "2.16.840.1.113883.3.26.1.1",  # NCI Thesaurus (NCIt)
    }
)


def normalize_uid(value: str) -> str:
    """A UID as stored may carry a trailing NUL or spaces (PS3.5 9.1 padding); compare without."""
    return str(value).strip().rstrip("\x00").strip()


def is_well_known(uid: str) -> bool:
    """True for UIDs that name kinds of things, not patients, studies or instances."""
    uid = normalize_uid(uid)
    return (
        uid in UID_dictionary
        or uid.startswith(DICOM_ROOT)
        or uid in CODING_SCHEME_UIDS
        or uid == IMPLEMENTATION_CLASS_UID
    )


def remap_uid(key: bytes, uid: str) -> str:
    """The `2.25.` replacement of `uid` under `key`; well-known and empty UIDs unchanged."""
    uid = normalize_uid(uid)
    if not uid or is_well_known(uid):
        return uid
    digest = hmac.new(key, b"uid\x00" + uid.encode("utf-8"), hashlib.sha256).digest()
    # 128 bits are at most 39 decimal digits: 44 characters in all, within PS3.5 9.1's 64.
    return UUID_ROOT + str(int.from_bytes(digest[:16], "big"))


@dataclass(frozen=True)
class UidMap:
    """The (original -> replacement) pairs of one de-identification, for the caller to keep."""

    pairs: Mapping[str, str] = field(default_factory=dict)

    def __getitem__(self, original: str) -> str:
        return self.pairs[normalize_uid(original)]

    def __contains__(self, original: object) -> bool:
        return isinstance(original, str) and normalize_uid(original) in self.pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def items(self) -> Iterable[tuple[str, str]]:
        return self.pairs.items()

    def replacements(self) -> frozenset[str]:
        return frozenset(self.pairs.values())


class UidMapper:
    """Remaps UIDs under one key and records every pair it produced."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._pairs: dict[str, str] = {}

    def remap(self, uid: str) -> str:
        original = normalize_uid(uid)
        replacement = remap_uid(self._key, original)
        if replacement != original:
            self._pairs[original] = replacement
        return replacement

    def uid_map(self) -> UidMap:
        return UidMap(pairs=dict(self._pairs))
