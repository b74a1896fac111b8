"""Plain values that cross between the archive and its index backends."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from storage.attributes import Level


@dataclass(frozen=True)
class View:
    """What an index read may see: one tenant's studies, and of those only ``studies`` when
    it is set (a learner's published teaching studies). The index applies it as one SQL
    condition on every read, so every resource built on those reads obeys it alike."""

    tenant: str
    studies: frozenset[str] | None = None


@dataclass(frozen=True)
class InstanceRecord:
    """Everything the index stores for one instance, computed once at ingest.

    ``*_values`` map index columns to canonical values (see ``storage.normalize``); the
    ``*_doc`` fields are DICOM JSON objects (UTF-8 bytes) of each level's attributes.
    """

    tenant: str
    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str
    transfer_syntax: str
    study_values: dict[str, Any]
    series_values: dict[str, Any]
    instance_values: dict[str, Any]
    study_doc: bytes
    series_doc: bytes
    instance_doc: bytes
    blob_key: str
    blob_size: int
    sha256: str
    sidecar_key: str | None
    number_of_frames: int
    frames: bytes | None
    frames_source: str | None
    frames_syntax: str | None
    frames_problem: str | None
    bulk: bytes | None
    decode_problem: str | None = None
    """Why the pixel data does not decode although a decoder for its syntax is installed
    (found at ingest on the first frame, see :func:`storage.transcode.first_frame_problem`);
    None when it decodes, when nothing needs decoding, or for rows stored before this was
    recorded (then the syntax alone decides, as it did)."""


@dataclass(frozen=True)
class StoredInstance:
    """The index's view of a stored instance: enough to retrieve it without parsing."""

    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str
    transfer_syntax: str
    blob_key: str
    blob_size: int
    sha256: str
    sidecar_key: str | None
    number_of_frames: int
    frames: bytes | None
    frames_source: str | None
    frames_syntax: str | None
    frames_problem: str | None
    bulk: bytes | None
    decode_problem: str | None = None
    """Why the pixel data does not decode although a decoder for its syntax is installed
    (found at ingest on the first frame, see :func:`storage.transcode.first_frame_problem`);
    None when it decodes, when nothing needs decoding, or for rows stored before this was
    recorded (then the syntax alone decides, as it did)."""


@dataclass(frozen=True, slots=True)
class Stamp:
    """A study's or series' version token as it was before a change: the archive drops the
    cache entries keyed by it (new entries are keyed by the new token)."""

    study_uid: str
    series_uid: str | None
    version: str


class AddOutcome(StrEnum):
    STORED = "stored"
    ALREADY_PRESENT = "already-present"


@dataclass(frozen=True)
class AddResult:
    outcome: AddOutcome
    stale: tuple[Stamp, ...] = ()


@dataclass(frozen=True)
class Match:
    """One QIDO/C-FIND result row: the precomputed documents of its levels (study first) and
    the values derived from the index (counts, modalities), keyed by tag."""

    level: Level
    study_uid: str
    series_uid: str | None
    sop_uid: str | None
    docs: tuple[bytes, ...]
    computed: dict[int, Any] = field(default_factory=dict)
    position: int | None = None
    """Where the row sorts in a study-level search (its keyset position), else None."""


@dataclass(frozen=True)
class Removed:
    """What a delete took out of the index, for the archive to clean up after."""

    instances: tuple[StoredInstance, ...]
    stale: tuple[Stamp, ...]


@dataclass(frozen=True)
class Usage:
    """What one institution keeps in the archive: its studies, its instances and the bytes
    their stored files take."""

    studies: int
    instances: int
    stored_bytes: int
