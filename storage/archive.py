"""The archive core: ingest, query, retrieve and delete over an index, a blob store and a
cache, the same code on the embedded default and in production.

Write order (DESIGN "Data flow"): the blob first, then the index rows in one transaction,
then cache invalidation. An index row therefore never points at a missing blob; a crash
between the two leaves an orphan blob that nothing references and nothing ever serves, until
the orphan sweep (:mod:`storage.sweep`, ``radcase-pacs sweep`` and the periodic run of
``serve``) removes it once older than its grace period.

Reads never parse DICOM: metadata is assembled from the per-instance JSON stored at ingest
and cached as bytes under a version key; frames and bulk data are ranged reads located by the
frame and bulk tables.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from itertools import islice
from typing import Any, BinaryIO

from storage.attributes import Level
from storage.blobs.base import CHUNK_SIZE, Staged
from storage.errors import (
    ArchiveError,
    BackendFailure,
    InstanceRejected,
    NotFound,
    Unavailable,
)
from storage.frames import FrameTable
from storage.instance_json import ROOT_MARK
from storage.pixels import DecodedFrame, PixelDescription, decode_frame, native_bytes
from storage.prepare import EXPLICIT_VR_LITTLE_ENDIAN, Prepared, prepare
from storage.query import Query, is_valid_uid
from storage.records import (
    AddOutcome,
    AddResult,
    InstanceRecord,
    Match,
    Stamp,
    StoredInstance,
    Usage,
    View,
)
from storage.stores import Stores
from storage.sweep import References, SweepReport, sweep_store
from storage.tenants import TENANT_PATTERN, is_valid_tenant

log = logging.getLogger(__name__)

PIXEL_DATA_PATHS = ("7FE00010", "7FE00008", "7FE00009")
METADATA_TTL = 24 * 3600.0
# Frames are cached under the instance's content hash (an instance never changes, so the key
# can never be stale): a viewer scrolling back and forth through a series reads each frame
# from the blob store once. Larger frames (whole-slide tiles, big multi-MB images) go
# straight through, so that one of them cannot evict hundreds of metadata bodies.
FRAME_TTL = 3600.0
CURSOR_TTL = 600.0
SEARCH_TTL = 600.0
"""Search answers expire by generation; the time limit only bounds what a cache keeps."""
FRAME_CACHE_LIMIT = 2 * 1024 * 1024


@dataclass(frozen=True)
class IngestResult:
    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str
    outcome: AddOutcome
    warnings: tuple[tuple[int, str], ...] = ()
    """(PS3.4 warning status, text) for each thing coerced or found wrong but kept."""


@dataclass(frozen=True)
class FrameSet:
    """Requested frames, in request order, in their own transfer syntax."""

    transfer_syntax: str
    encapsulated: bool
    frames: list[bytes]


@dataclass(frozen=True)
class BulkData:
    """One bulk data value; ``frames`` set when the value is the pixel data."""

    vr: str
    value: bytes | None = None
    frames: FrameSet | None = None


IngestOutcome = IngestResult | InstanceRejected | BackendFailure
"""What became of one instance offered for storage: stored (or already there), refused (the
sender's problem), or not stored because a backend failed (the server's problem)."""

IngestObserver = Callable[["Archive", IngestOutcome], None]
"""Told of every ingest outcome, with the archive view that ingested it."""

BatchOutcome = IngestOutcome
"""What became of one instance of :meth:`Archive.ingest_many`: what :meth:`Archive.ingest`
would have returned, or the refusal or backend failure it would have raised."""


@dataclass(frozen=True)
class _Staging:
    """An instance whose blobs are staged, waiting for the batch's syncs and commit."""

    record: InstanceRecord
    result: IngestResult
    """What to answer once it is committed as STORED."""
    staged: tuple[Staged, ...]


HELD_PREFIX = "_pending"
"""Held copies live outside every indexed key (those start with a tenant name, which never
starts with an underscore)."""
# The keys the archive writes (what its orphan sweep may remove, and nothing else):
# TENANT/STUDY/SERIES/SOP.SHA256[:16].dcm (see Archive._record), its bulk sidecar with
# ".bulk" appended, and held copies, HELD_PREFIX/TENANT/SOP.dcm (see Archive.hold).
_TENANT = TENANT_PATTERN.pattern.removeprefix("^").removesuffix("$")
ARCHIVE_KEY = re.compile(
    rf"{_TENANT}/[^/]+/[^/]+/[^/]+\.[0-9a-f]{{16}}\.dcm(?:\.bulk)?"
    rf"|{HELD_PREFIX}/{_TENANT}/[^/]+\.dcm"
)


def is_archive_key(key: str) -> bool:
    """Whether ``key`` has the shape of a blob an archive writes."""
    return ARCHIVE_KEY.fullmatch(key) is not None


class Archive:
    """A view of one set of :class:`~storage.stores.Stores`: the tenant (institution) it acts
    for, the studies it may see, and the observers told of each ingest. Views are cheap and
    immutable; ``with_tenant``, ``restricted_to`` and ``observed_by`` make new ones over the
    same stores. The stores are private: every caller goes through the methods below, so the
    archive owns every key, the write order and the invalidation."""

    __slots__ = ("_stores", "observers", "tenant", "visible_studies")

    def __init__(
        self,
        stores: Stores,
        *,
        tenant: str = "default",
        visible_studies: frozenset[str] | None = None,
        observers: tuple[IngestObserver, ...] = (),
    ) -> None:
        """``visible_studies``: None for every study of the tenant, else only those (applied
        by the index to every read: searches, metadata, instances, frames, deletes).
        ``observers`` are called with every ingest outcome; a failing observer is logged,
        never the sender's problem: the instance is stored either way."""
        if not is_valid_tenant(tenant):
            raise ValueError(f"invalid tenant name {tenant!r}")
        self._stores = stores
        self.tenant = tenant
        self.visible_studies = visible_studies
        self.observers = observers

    def __repr__(self) -> str:
        seen = "" if self.visible_studies is None else f", {len(self.visible_studies)} studies"
        return f"Archive({self._stores!r}, tenant={self.tenant!r}{seen})"

    def _view(self, **changes: Any) -> Archive:
        values = {
            "tenant": self.tenant,
            "visible_studies": self.visible_studies,
            "observers": self.observers,
            **changes,
        }
        return Archive(self._stores, **values)

    def open(self) -> None:
        """Open the shared stores (migrating the index); idempotent, views share them."""
        self._stores.open()

    def close(self) -> None:
        self._stores.close()

    def with_tenant(self, tenant: str) -> Archive:
        """A view of the same stores scoped to another tenant (institution)."""
        return self._view(tenant=tenant)

    def restricted_to(self, studies: frozenset[str]) -> Archive:
        """A view that sees only ``studies`` (within what this view already sees)."""
        if self.visible_studies is not None:
            studies = studies & self.visible_studies
        return self._view(visible_studies=frozenset(studies))

    def observed_by(self, *observers: IngestObserver) -> Archive:
        """A view whose ingests are also reported to ``observers``."""
        return self._view(observers=(*self.observers, *observers))

    @property
    def _scope(self) -> View:
        return View(self.tenant, self.visible_studies)

    def ping(self) -> None:
        self._stores.index.ping()

    def checks(self) -> dict[str, Callable[[], None]]:
        """A ping of each store by its role (``/healthz`` says which one fails); each raises
        BackendFailure when its store does not answer."""
        return {
            "index": self._stores.index.ping,
            "blobs": self._stores.blobs.ping,
            "cache": self._stores.cache.ping,
        }

    # -- ingest ---------------------------------------------------------------------------

    def ingest(self, source: BinaryIO, *, expected_study_uid: str | None = None) -> IngestResult:
        """Store one instance from a seekable file; raises InstanceRejected with a PS3.4
        status when it cannot be stored, or BackendFailure when a store fails, leaving
        nothing behind. Observers hear of all three.
        When it returns, the instance is durable (blob synced, index committed): the caller
        may acknowledge it.

        C-STORE acknowledges each instance with its own response (PS3.4 §B.2.2), so each one
        pays its own syncs here; a request that acknowledges many at once uses
        :meth:`ingest_many`."""
        try:
            result = self._ingest(source, expected_study_uid)
        except (InstanceRejected, BackendFailure) as exc:
            self._notify(exc)
            raise
        self._notify(result)
        return result

    def _ingest(self, source: BinaryIO, expected_study_uid: str | None) -> IngestResult:
        prepared = prepare(source, expected_study_uid=expected_study_uid)
        existing = self._stores.index.find_instance(self.tenant, prepared.sop_uid)
        if existing is not None and existing.sha256 == prepared.sha256:
            return self._result(prepared, AddOutcome.ALREADY_PRESENT)
        record = self._record(prepared)
        self._write_blobs(prepared, record)
        try:
            added = self._stores.index.add_instance(record)
        except BaseException:
            self._discard_unreferenced(record)
            raise
        self._invalidate(added.stale)
        return self._result(prepared, added.outcome)

    def ingest_many(
        self, sources: Iterable[BinaryIO], *, expected_study_uid: str | None = None
    ) -> list[BatchOutcome]:
        """Store several instances acknowledged together, as STOW-RS acknowledges the parts
        of one request in one response (PS3.18 §10.5.3); for each source, in order, what
        :meth:`ingest` would have returned, or the InstanceRejected or BackendFailure it
        would have raised. Any other error is raised, leaving nothing referenced behind.

        The durability costs are paid once for the batch instead of once per instance: each
        source is read and its blobs staged as it comes (only the precomputed index row is
        kept, so a caller may pass a generator that closes each source once the next is
        asked for), then every blob is made durable at once (one sync per file, one per
        folder), then the index rows are committed in one transaction, each under a
        savepoint (a conflict refuses that instance alone), then stale cache entries are
        dropped and observers told of each outcome (failures too), as :meth:`ingest` tells
        them. Nothing is durable, or referenced, before that commit, so the caller
        acknowledges only after this returns."""
        outcomes: list[BatchOutcome | None] = []
        batch: list[tuple[int, _Staging]] = []
        try:
            for slot, source in enumerate(sources):
                outcomes.append(None)
                try:
                    staging = self._stage(source, expected_study_uid)
                except (InstanceRejected, BackendFailure) as exc:
                    outcomes[slot] = exc
                    continue
                if isinstance(staging, IngestResult):
                    outcomes[slot] = staging
                else:
                    batch.append((slot, staging))
            if batch:
                committed = self._commit_staged([staging for _, staging in batch])
                for (slot, _), outcome in zip(batch, committed, strict=True):
                    outcomes[slot] = outcome
        except BaseException:
            for _, staging in batch:
                self._stores.blobs.discard(staging.staged)
                self._discard_unreferenced(staging.record)
            raise
        done = [outcome for outcome in outcomes if outcome is not None]
        for outcome in done:
            self._notify(outcome)
        return done

    def _stage(self, source: BinaryIO, expected_study_uid: str | None) -> IngestResult | _Staging:
        """Prepare one instance and stage its blobs; an IngestResult when it is already
        stored as it is."""
        prepared = prepare(source, expected_study_uid=expected_study_uid)
        existing = self._stores.index.find_instance(self.tenant, prepared.sop_uid)
        if existing is not None and existing.sha256 == prepared.sha256:
            return self._result(prepared, AddOutcome.ALREADY_PRESENT)
        record = self._record(prepared)
        blobs = self._stores.blobs
        prepared.source.seek(0)
        staged = [blobs.stage(record.blob_key, prepared.source, prepared.size)]
        if record.sidecar_key is not None:
            sidecar = prepared.sidecar
            try:
                staged.append(blobs.stage(record.sidecar_key, io.BytesIO(sidecar), len(sidecar)))
            except BaseException:
                blobs.discard(staged)
                raise
        return _Staging(record, self._result(prepared, AddOutcome.STORED), tuple(staged))

    def _commit_staged(self, batch: list[_Staging]) -> list[BatchOutcome]:
        """Publish the staged blobs, commit the index rows of the instances published, then
        drop stale cache entries; the outcome of each, in order."""
        staged = [blob for staging in batch for blob in staging.staged]
        failures = iter(self._stores.blobs.publish(staged))
        outcomes: list[BatchOutcome] = []
        published: list[int] = []
        for n, staging in enumerate(batch):
            failed = [f for f in islice(failures, len(staging.staged)) if f is not None]
            outcomes.append(failed[0] if failed else staging.result)
            if not failed:
                published.append(n)
        stale: dict[Stamp, None] = {}
        answers = self._add_all([batch[n].record for n in published])
        for n, added in zip(published, answers, strict=True):
            if isinstance(added, AddResult):
                outcomes[n] = replace(batch[n].result, outcome=added.outcome)
                stale.update(dict.fromkeys(added.stale))
            else:
                outcomes[n] = added
        for staging, outcome in zip(batch, outcomes, strict=True):
            if not isinstance(outcome, IngestResult):
                self._discard_unreferenced(staging.record)
        self._invalidate(tuple(stale))
        return outcomes

    def _add_all(
        self, records: list[InstanceRecord]
    ) -> list[AddResult | InstanceRejected] | list[BackendFailure]:
        """The index's answer for each record; a failed transaction fails them all."""
        try:
            return self._stores.index.add_instances(records)
        except BackendFailure as exc:
            return [exc] * len(records)

    def _notify(self, outcome: IngestOutcome) -> None:
        for observer in self.observers:
            try:
                observer(self, outcome)
            except Exception:
                log.exception("after-ingest step %r failed", observer)

    def _record(self, p: Prepared) -> InstanceRecord:
        key = f"{self.tenant}/{p.study_uid}/{p.series_uid}/{p.sop_uid}.{p.sha256[:16]}.dcm"
        pixel = p.parsed.pixel
        table = pixel.frame_table if pixel is not None else None
        return InstanceRecord(
            tenant=self.tenant,
            study_uid=p.study_uid,
            series_uid=p.series_uid,
            sop_uid=p.sop_uid,
            sop_class_uid=p.sop_class_uid,
            transfer_syntax=p.parsed.transfer_syntax,
            study_values=p.study_values,
            series_values=p.series_values,
            instance_values=p.instance_values,
            study_doc=p.study_doc,
            series_doc=p.series_doc,
            instance_doc=p.body.body,
            blob_key=key,
            blob_size=p.size,
            sha256=p.sha256,
            sidecar_key=f"{key}.bulk" if p.sidecar else None,
            number_of_frames=len(table.frames) if table is not None else 0,
            frames=table.to_bytes() if table is not None else None,
            frames_source=("sidecar" if pixel and pixel.derived else "instance") if table else None,
            frames_syntax=pixel.frames_transfer_syntax if pixel is not None else None,
            frames_problem=pixel.problem if pixel is not None else None,
            bulk=p.bulk_table,
            decode_problem=p.decode_problem,
        )

    def _write_blobs(self, p: Prepared, record: InstanceRecord) -> None:
        p.source.seek(0)
        self._stores.blobs.put(record.blob_key, p.source, p.size)
        if record.sidecar_key is not None:
            self._stores.blobs.put(record.sidecar_key, io.BytesIO(p.sidecar), len(p.sidecar))

    def _discard_unreferenced(self, record: InstanceRecord) -> None:
        """Remove the blobs just written when the index did not take them (best effort: what
        this misses, or a crash leaves, the orphan sweep of :mod:`storage.sweep` removes)."""
        try:
            current = self._stores.index.find_instance(self.tenant, record.sop_uid)
            if current is None or current.blob_key != record.blob_key:
                self._stores.blobs.delete(record.blob_key)
                if record.sidecar_key:
                    self._stores.blobs.delete(record.sidecar_key)
        except ArchiveError:
            log.warning("could not discard blob %s after a failed ingest", record.blob_key)

    @staticmethod
    def _result(p: Prepared, outcome: AddOutcome) -> IngestResult:
        return IngestResult(
            p.study_uid, p.series_uid, p.sop_uid, p.sop_class_uid, outcome, tuple(p.warnings)
        )

    # -- cache ----------------------------------------------------------------------------

    def _metadata_key(self, study_uid: str, series_uid: str | None, version: str) -> str:
        return f"{self.tenant}/meta/{study_uid}/{series_uid or ''}/{version}"

    def _invalidate(self, stale: tuple[Stamp, ...]) -> None:
        if stale:
            self._stores.cache.delete(
                *(self._metadata_key(s.study_uid, s.series_uid, s.version) for s in stale)
            )

    def cached(
        self, kind: str, parts: tuple[str, ...], build: Callable[[], bytes], ttl: float
    ) -> bytes:
        """Bytes derived from stored data (a thumbnail, say), from the cache or built and
        cached. ``parts`` must name everything the bytes depend on (an instance's SHA-256,
        a study's version, the rendering parameters); the archive adds the tenant."""
        key = "/".join((self.tenant, kind, *parts))
        body = self._stores.cache.get(key)
        if body is None:
            body = build()
            self._stores.cache.set(key, body, ttl)
        return body

    # -- query ----------------------------------------------------------------------------

    def query(self, query: Query, *, limit: int) -> list[Match]:
        """Matches of a typed query, at most ``limit`` from ``query.offset``. The caller folds
        the client's ``query.limit`` and its own cap into ``limit`` (QIDO asks for one row
        more than it returns, to know whether more exist).

        Deep pages stay fast: a full study-level page leaves a cursor in the cache (the
        keyset position of the row that ends it), so the request for the next offset, which
        a client paging through results sends next, resumes after that row instead of
        having the database skip ``offset`` rows. Without a cursor (a jump, an expired
        entry) the offset is applied as given; both give the same rows in the same order."""
        resumed = self._resumed(query)
        matches = self._stores.index.query(self._scope, resumed or query, limit)
        if query.level is Level.STUDY and len(matches) >= limit > 1:
            # QIDO shows one row less than it fetched, so the next page may start after
            # either of the last two rows.
            for shown in (len(matches) - 1, len(matches)):
                position = matches[shown - 1].position
                if position is not None:
                    key = self._cursor_key(query, query.offset + shown)
                    self._stores.cache.set(key, str(position).encode(), CURSOR_TTL)
        return matches

    def cached_search(self, search: str, build: Callable[[], bytes]) -> bytes:
        """The answer to ``search`` (a text naming the whole request: the query, its limit,
        how results are written) from the cache, else ``build()``, then cached.

        Entries are keyed by the index's generation for this tenant, which every commit that
        adds or removes instances raises, so a search never sees an answer older than the
        last store or delete, in any process: the generation is read before ``build`` queries
        the index, so an answer cached under it is at least as new as it (an index with a
        read replica adds what makes that hold there, see :mod:`storage.replica.index`).
        Also by tenant and by the set of studies this view may see."""
        generation = self._stores.index.generation(self.tenant)
        seen = sorted(self.visible_studies) if self.visible_studies is not None else None
        digest = hashlib.blake2b(repr((search, seen)).encode(), digest_size=16).hexdigest()
        key = f"{self.tenant}/search/{generation}/{digest}"
        found = self._stores.cache.get(key)
        if found is not None:
            return found
        answer = build()
        self._stores.cache.set(key, answer, SEARCH_TTL)
        return answer

    def _resumed(self, query: Query) -> Query | None:
        if query.level is not Level.STUDY or query.offset == 0 or query.after is not None:
            return None
        cursor = self._stores.cache.get(self._cursor_key(query, query.offset))
        if cursor is None:
            return None
        return replace(query, offset=0, after=int(cursor))

    def _cursor_key(self, query: Query, offset: int) -> str:
        """Cursors are per tenant, per search (conditions and scope), per set of visible
        studies and per offset."""
        search = replace(query, offset=0, limit=None, include=frozenset())
        seen = sorted(self.visible_studies) if self.visible_studies is not None else None
        digest = hashlib.blake2b(repr((search, seen)).encode(), digest_size=16).hexdigest()
        return f"{self.tenant}/cursor/{digest}/{offset}"

    # -- retrieve -------------------------------------------------------------------------

    def metadata(
        self, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None
    ) -> tuple[bytes, str]:
        """The DICOM JSON array of a study, series or instance (PS3.18 §10.4.1.1.2), with
        :data:`storage.instance_json.ROOT_MARK` where the service root goes, and a version
        token that changes whenever the body does (for ETags)."""
        if sop_uid is not None:
            docs = self._stores.index.instance_docs(self._scope, study_uid, series_uid, sop_uid)
            if not docs:
                raise NotFound(f"instance {sop_uid} not found")
            return b"[" + docs[0] + b"]", hashlib.blake2b(docs[0], digest_size=8).hexdigest()
        version = self.version(study_uid, series_uid)
        key = self._metadata_key(study_uid, series_uid, version)
        body = self._stores.cache.get(key)
        if body is None:
            docs = self._stores.index.instance_docs(self._scope, study_uid, series_uid)
            body = b"[" + b",".join(docs) + b"]"
            self._stores.cache.set(key, body, METADATA_TTL)
        return body, version

    def instances(
        self, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None
    ) -> list[StoredInstance]:
        found = self._stores.index.instances(self._scope, study_uid, series_uid, sop_uid)
        if not found:
            raise NotFound(f"{_describe(study_uid, series_uid, sop_uid)} not found")
        return found

    def stream(self, instance: StoredInstance, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        return self._stores.blobs.stream(instance.blob_key, chunk_size)

    def view(self, instance: StoredInstance) -> bytes | memoryview:
        """The stored bytes of an instance to send as they are (see BlobStore.view)."""
        return self._stores.blobs.view(instance.blob_key)

    def prefetch(self, instances: Sequence[StoredInstance]) -> None:
        """A hint that these instances' stored bytes are about to be read whole."""
        self._stores.blobs.prefetch([instance.blob_key for instance in instances])

    def read(self, instance: StoredInstance) -> bytes:
        return self._stores.blobs.get(instance.blob_key)

    def stored(self, sop_uid: str) -> StoredInstance | None:
        """The tenant's instance with this SOP Instance UID, whatever study holds it."""
        return self._stores.index.find_instance(self.tenant, sop_uid)

    def walk(self, after: str = "", limit: int = 500) -> list[StoredInstance]:
        """Up to ``limit`` of the tenant's instances with SOP Instance UIDs after ``after``,
        in that order: keyset pages for a migration or a check that walks everything."""
        return self._stores.index.stored_instances(self.tenant, after, limit)

    def tenants(self) -> list[str]:
        """Every tenant that holds at least one study in these stores."""
        return self._stores.index.tenants()

    def usage(self) -> Usage:
        """This view's institution's studies, instances and stored bytes (all of them,
        whatever the view's visible studies)."""
        return self._stores.index.usage(self.tenant)

    def frames(
        self,
        study_uid: str,
        series_uid: str,
        sop_uid: str,
        numbers: list[int],
        *,
        instance: StoredInstance | None = None,
    ) -> FrameSet:
        """Frames by 1-based number (PS3.18 §10.4.1.1.4): one ranged read each, through the
        cache where the blobs are remote (a local file's pages are already in memory, so a
        cached copy would only hold them twice). ``instance``, when the caller has just looked
        it up, saves a second lookup."""
        if instance is None:
            (instance,) = self.instances(study_uid, series_uid, sop_uid)
        table = self._frame_table(instance)
        for number in numbers:
            if not 1 <= number <= len(table.frames):
                raise NotFound(
                    f"frame {number} does not exist: the instance has {len(table.frames)} "
                    f"frame{'s' if len(table.frames) != 1 else ''}"
                )
        key = self._frames_key(instance)
        local = self._stores.blobs.local
        frames = []
        for number in numbers:
            cache_key = f"{self.tenant}/frame/{instance.sha256}/{number}"
            frame = None if local else self._stores.cache.get(cache_key)
            if frame is None:
                span = table.span(number - 1)
                frame = table.extract(
                    number - 1, self._stores.blobs.read_range(key, span.offset, span.length)
                )
                if not local and len(frame) <= FRAME_CACHE_LIMIT:
                    self._stores.cache.set(cache_key, frame, FRAME_TTL)
            frames.append(frame)
        return FrameSet(
            instance.frames_syntax or EXPLICIT_VR_LITTLE_ENDIAN, table.encapsulated, frames
        )

    def _frame_table(self, instance: StoredInstance) -> FrameTable:
        if instance.frames is None:
            if instance.frames_problem:
                raise Unavailable(f"frames cannot be served: {instance.frames_problem}")
            raise NotFound(f"instance {instance.sop_uid} has no pixel data")
        return FrameTable.from_bytes(instance.frames)

    @staticmethod
    def _frames_key(instance: StoredInstance) -> str:
        if instance.frames_source == "sidecar" and instance.sidecar_key:
            return instance.sidecar_key
        return instance.blob_key

    def bulk(self, study_uid: str, series_uid: str, sop_uid: str, path: str) -> BulkData:
        """A bulk data value by its path (PS3.18 §10.4.1.1.5): the pixel data as frames, any
        other value as one ranged read of the bulk sidecar."""
        (instance,) = self.instances(study_uid, series_uid, sop_uid)
        if path in PIXEL_DATA_PATHS:
            if instance.frames is None and not instance.frames_problem:
                raise NotFound(f"instance {sop_uid} has no pixel data")
            table = self._frame_table(instance)
            numbers = list(range(1, len(table.frames) + 1))
            vr = "OB" if table.encapsulated else "OW"
            return BulkData(vr, frames=self.frames(study_uid, series_uid, sop_uid, numbers))
        entries = json.loads(instance.bulk) if instance.bulk else {}
        entry = entries.get(path.upper())
        if entry is None or instance.sidecar_key is None:
            raise NotFound(f"instance {sop_uid} has no bulk data at {path}")
        vr, offset, length = entry
        return BulkData(
            vr, value=self._stores.blobs.read_range(instance.sidecar_key, offset, length)
        )

    # -- pixels (decoding for rendering and transcoding; never parses the blob) -----------

    def version(self, study_uid: str, series_uid: str | None = None) -> str:
        """The version token of a study or series: it changes whenever an instance is added
        or removed, so it keys anything derived from the current set of instances."""
        version = self._stores.index.version(self._scope, study_uid, series_uid)
        if version is None:
            raise NotFound(f"{_describe(study_uid, series_uid, None)} not found")
        return version

    def documents(
        self, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None
    ) -> list[dict[str, Any]]:
        """The stored DICOM JSON of each instance as dicts, in display order, with
        BulkDataURIs relative to the service root (their path after ``/bulk/`` is what
        :meth:`bulk` takes)."""
        body, _ = self.metadata(study_uid, series_uid, sop_uid)
        documents = json.loads(body.replace(ROOT_MARK, b""))
        return [doc for doc in documents if isinstance(doc, dict)]

    def pixel_description(self, study_uid: str, series_uid: str, sop_uid: str) -> PixelDescription:
        """The Image Pixel module of an instance, from its stored JSON (PS3.3 §C.7.6.3)."""
        (document,) = self.documents(study_uid, series_uid, sop_uid)
        return PixelDescription.from_json(document)

    def decoded_frame(
        self,
        study_uid: str,
        series_uid: str,
        sop_uid: str,
        number: int,
        description: PixelDescription | None = None,
    ) -> DecodedFrame:
        """Frame ``number`` (1-based) decoded to pixel values: one ranged read through the
        frame table, then pydicom's decoder for the stored syntax. NotFound for a frame out
        of range; Unavailable (with the reason) when it cannot be decoded."""
        frames = self.frames(study_uid, series_uid, sop_uid, [number])
        if description is None:
            description = self.pixel_description(study_uid, series_uid, sop_uid)
        return decode_frame(frames.frames[0], frames.transfer_syntax, description, number=number)

    def decompressed_frames(
        self, study_uid: str, series_uid: str, sop_uid: str, frames: FrameSet, numbers: list[int]
    ) -> FrameSet:
        """``frames`` (as :meth:`frames` returned them for ``numbers``) as native Explicit VR
        Little Endian frames; see :func:`storage.pixels.native_bytes` for their layout."""
        if not frames.encapsulated:
            return frames
        description = self.pixel_description(study_uid, series_uid, sop_uid)
        decoded = [
            native_bytes(decode_frame(frame, frames.transfer_syntax, description, number=number))
            for frame, number in zip(frames.frames, numbers, strict=True)
        ]
        return FrameSet(EXPLICIT_VR_LITTLE_ENDIAN, False, decoded)

    # -- delete ---------------------------------------------------------------------------

    def delete(
        self, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None
    ) -> int:
        """Remove index rows first (so nothing points at the blobs), then blobs, then cache
        entries; returns the number of instances removed."""
        removed = self._stores.index.remove(self._scope, study_uid, series_uid, sop_uid)
        if not removed.instances:
            raise NotFound(f"{_describe(study_uid, series_uid, sop_uid)} not found")
        for instance in removed.instances:
            for key in (instance.blob_key, instance.sidecar_key):
                if key is None:
                    continue
                try:
                    self._stores.blobs.delete(key)
                except ArchiveError:
                    log.warning("blob %s left for the orphan sweep", key)
        self._invalidate(removed.stale)
        return len(removed.instances)

    # -- held copies ----------------------------------------------------------------------

    def hold(self, sop_uid: str, data: bytes) -> str:
        """Keep an instance's bytes aside, outside the index (nothing serves them): a teaching
        copy waiting for an educator's review. Returns the key to read or release it by."""
        if not is_valid_uid(sop_uid):
            raise ValueError(f"invalid SOP Instance UID {sop_uid!r}")
        key = f"{HELD_PREFIX}/{self.tenant}/{sop_uid}.dcm"
        self._stores.blobs.put(key, io.BytesIO(data), len(data))
        return key

    def held(self, key: str) -> bytes:
        """The bytes kept under ``key`` by :meth:`hold` in this tenant."""
        return self._stores.blobs.get(self._held_key(key))

    def release(self, key: str) -> None:
        """Drop a held copy (releasing a missing one is not an error)."""
        self._stores.blobs.delete(self._held_key(key))

    def _held_key(self, key: str) -> str:
        """A key :meth:`hold` made for this tenant, or ValueError: the archive never hands out
        another blob by a key a caller names."""
        folder = f"{HELD_PREFIX}/{self.tenant}/"
        if not key.startswith(folder) or "/" in key[len(folder) :]:
            raise ValueError(f"{key!r} is not a held copy of {self.tenant}")
        return key

    # -- the orphan sweep -----------------------------------------------------------------

    def referenced_keys(self, keys: Collection[str]) -> set[str]:
        """Those of ``keys`` that an index row of any tenant names as its blob or sidecar."""
        return self._stores.index.referenced_keys(keys)

    def sweep(
        self,
        *,
        grace: timedelta,
        also_referenced: Iterable[References] = (),
        dry_run: bool = False,
        stop: Callable[[], bool] = lambda: False,
        label: str = "blobs",
    ) -> SweepReport:
        """The orphan sweep (:mod:`storage.sweep`) of the blob store under this archive, every
        tenant's keys: a blob of an archive key's shape is kept while this archive's index or
        one of ``also_referenced`` names it (another archive sharing the store; whoever keeps
        held copies), and removed once unreferenced and older than ``grace``."""
        return sweep_store(
            self._stores.blobs,
            [self.referenced_keys, *also_referenced],
            grace=grace,
            owned=is_archive_key,
            dry_run=dry_run,
            stop=stop,
            label=label,
        )


def _describe(study_uid: str, series_uid: str | None, sop_uid: str | None) -> str:
    if sop_uid is not None:
        return f"instance {sop_uid}"
    if series_uid is not None:
        return f"series {series_uid}"
    return f"study {study_uid}"


__all__ = [
    "Archive",
    "BatchOutcome",
    "BulkData",
    "FrameSet",
    "IngestResult",
    "InstanceRejected",
    "Level",
]
