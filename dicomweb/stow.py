"""STOW-RS: store instances from a multipart/related request (PS3.18 §10.5).

The body is parsed as a stream; a part is complete once its closing delimiter has arrived, so
a body cut off mid-part never stores a partial instance. Complete parts are ingested in
batches (:meth:`~storage.archive.Archive.ingest_many`): the response acknowledges every
instance at once, so they can share one round of syncs and one durable index commit instead
of paying them each. A batch is ingested once it holds ``BATCH_PARTS`` parts or
``BATCH_BYTES`` bytes, and at the end of the body, so memory holds about ``BATCH_BYTES`` plus
one part (each spooled to disk past a threshold). Every part's outcome goes into the Store
Instances Response (PS3.18 §10.5.3, Table 10.5.3-3): ReferencedSOPSequence for stored
instances (with WarningReason when something was coerced), FailedSOPSequence with a
FailureReason for refused ones; a human-readable reason per problem goes in a ``Warning``
header, since the response module has no attribute for text.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from dicomweb import uri
from dicomweb.context import Service
from dicomweb.errors import HttpError, bad_request, not_acceptable
from dicomweb.mediatypes import MediaTypeError, parse_media_type
from dicomweb.multipart import (
    MultipartError,
    MultipartReader,
    Part,
    PartTooLarge,
    TruncatedPart,
    boundary_from_content_type,
)
from dicomweb.requests import acceptables, path_uids
from storage.archive import Archive, BatchOutcome, IngestResult
from storage.errors import BackendUnavailable, InstanceRejected, OutOfResources
from storage.instance_json import dumps
from storage.statuses import DimseStatus, dimse_status

log = logging.getLogger(__name__)

DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
BATCH_PARTS = 32
BATCH_BYTES = 16 * 2**20


@dataclass
class Outcome:
    """What happened to each part, in order."""

    stored: list[tuple[IngestResult, str]] = field(default_factory=list)
    failed: list[tuple[str, str, int, str]] = field(default_factory=list)
    backend_failed: bool = False
    retry_after: int | None = None
    """Seconds a store that did not answer asked clients to wait (Retry-After of a 503)."""

    def fail(self, status: int, reason: str, sop_class: str = "", sop_uid: str = "") -> None:
        self.failed.append((sop_class, sop_uid, status, reason))


def _check_content_type(request: Request) -> bytes:
    """PS3.18 §10.5.1.1: the body is multipart/related of application/dicom parts; anything
    else is 415 (metadata+bulk data STOW in JSON or XML is not offered)."""
    header = request.headers.get("content-type", "")
    try:
        part_type, boundary = boundary_from_content_type(header)
    except MultipartError as exc:
        raise HttpError(
            415, f'Content-Type must be multipart/related; type="{DICOM}" with a boundary ({exc})'
        ) from exc
    if part_type and part_type.lower() != DICOM:
        raise HttpError(415, f"parts of type {part_type!r} are not accepted; only {DICOM}")
    return boundary


def _check_accept(request: Request) -> None:
    if not any(
        a.matches(DICOM_JSON) or a.matches("application/json") for a in acceptables(request)
    ):
        raise not_acceptable("the store response is available as application/dicom+json")


def _part_is_dicom(part: Part) -> str | None:
    """None when the part may be DICOM, else why not."""
    if part.content_type is None:
        return None
    try:
        essence = parse_media_type(part.content_type).essence
    except MediaTypeError as exc:
        return f"part Content-Type is malformed: {exc}"
    return None if essence == DICOM else f"part of type {essence} is not {DICOM}"


@dataclass
class Batch:
    """Complete parts waiting to be ingested together, in arrival order: a part to ingest,
    or why a part was refused without reading it (kept in place so outcomes keep the
    parts' order)."""

    entries: list[Part | str] = field(default_factory=list)
    size: int = 0

    def add(self, part: Part) -> None:
        problem = _part_is_dicom(part)
        if problem is None:
            self.entries.append(part)
            self.size += part.size
        else:
            part.close()
            self.entries.append(problem)

    @property
    def full(self) -> bool:
        parts = sum(isinstance(entry, Part) for entry in self.entries)
        return parts >= BATCH_PARTS or self.size >= BATCH_BYTES

    def ingest(self, archive: Archive, study_uid: str | None, outcome: Outcome, root: str) -> None:
        """Ingest the parts as one batch and record every entry's outcome in order; never
        raises for the parts' content."""
        if not self.entries:
            return
        entries, self.entries, self.size = self.entries, [], 0
        parts = [entry for entry in entries if isinstance(entry, Part)]
        try:
            results = iter(archive.ingest_many(_bodies(parts), expected_study_uid=study_uid))
        finally:
            for part in parts:
                part.close()
        for entry in entries:
            if isinstance(entry, str):
                outcome.fail(DimseStatus.CANNOT_UNDERSTAND, entry)
            else:
                _record(next(results), outcome, root)

    def close(self) -> None:
        """Drop what was not ingested (the request failed: nothing is acknowledged)."""
        for entry in self.entries:
            if isinstance(entry, Part):
                entry.close()
        self.entries, self.size = [], 0


def _bodies(parts: list[Part]) -> Iterator[BinaryIO]:
    """Each part's body, released as soon as the archive asks for the next."""
    for part in parts:
        yield part.body
        part.close()


def _record(result: BatchOutcome, outcome: Outcome, root: str) -> None:
    if isinstance(result, IngestResult):
        url = uri.instance_url(root, result.study_uid, result.series_uid, result.sop_uid)
        outcome.stored.append((result, url))
    elif isinstance(result, InstanceRejected):
        outcome.fail(
            dimse_status(result), result.reason, result.sop_class_uid, result.sop_instance_uid
        )
    elif isinstance(result, OutOfResources):
        outcome.backend_failed = True
        outcome.fail(dimse_status(result), str(result))
    else:
        log.error("store failed for a STOW-RS part: %s", result)
        outcome.backend_failed = True
        if isinstance(result, BackendUnavailable):
            outcome.retry_after = max(outcome.retry_after or 0, result.retry_after)
        outcome.fail(dimse_status(result), "the archive could not store this instance")


async def store(request: Request) -> Response:
    """POST /studies[/{study}] (PS3.18 §10.5)."""
    service: Service = request.app.state.service
    study_uid = path_uids(request)[0] if "study" in request.path_params else None
    boundary = _check_content_type(request)
    _check_accept(request)
    limit = service.options.max_request_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HttpError(413, f"the request body exceeds the limit of {limit} bytes")
    archive = service.archive_for(request)
    lane = service.blobs
    root = service.root(request)
    outcome = Outcome()
    reader = MultipartReader(boundary, max_part_bytes=service.options.max_part_bytes)
    batch = Batch()
    received = 0
    try:
        try:
            async for chunk in request.stream():
                received += len(chunk)
                if received > limit:
                    raise HttpError(413, f"the request body exceeds the limit of {limit} bytes")
                for part in reader.feed(chunk):
                    batch.add(part)
                    if batch.full:
                        await lane.run(batch.ingest, archive, study_uid, outcome, root)
            truncated = reader.finish()
            await lane.run(batch.ingest, archive, study_uid, outcome, root)
        except PartTooLarge as exc:
            raise HttpError(413, str(exc)) from exc
        except MultipartError as exc:
            await lane.run(batch.ingest, archive, study_uid, outcome, root)
            if not outcome.stored and not outcome.failed:
                raise bad_request("body", f"not a readable multipart/related body: {exc}") from exc
            outcome.fail(
                DimseStatus.CANNOT_UNDERSTAND, f"the rest of the body could not be parsed: {exc}"
            )
            truncated = None
    except ClientDisconnect:
        log.info("STOW-RS client disconnected after %d bytes", received)
        raise
    finally:
        batch.close()
        reader.close()
    if isinstance(truncated, TruncatedPart):
        outcome.fail(
            DimseStatus.CANNOT_UNDERSTAND,
            f"the body ended inside a part after "
            f"{truncated.received} bytes; that part was not stored",
        )
    if not outcome.stored and not outcome.failed:
        raise bad_request("body", "the request contains no parts")
    return _response(outcome, study_uid, root)


def _response(outcome: Outcome, study_uid: str | None, root: str) -> Response:
    body: dict[str, Any] = {}
    studies = {r.study_uid for r, _ in outcome.stored}
    target = study_uid or (next(iter(studies)) if len(studies) == 1 else None)
    if target is not None:
        body["00081190"] = {"vr": "UR", "Value": [uri.study_url(root, target)]}
    if outcome.failed:
        body["00081198"] = {"vr": "SQ", "Value": [_failed_item(f) for f in outcome.failed]}
    if outcome.stored:
        body["00081199"] = {
            "vr": "SQ",
            "Value": [_stored_item(r, url) for r, url in outcome.stored],
        }
    warnings = [f"{sop or 'part'}: {reason}" for _, sop, _, reason in outcome.failed]
    warnings += [f"{r.sop_uid}: {text}" for r, _ in outcome.stored for _, text in r.warnings]
    if not outcome.stored:
        status = 503 if outcome.backend_failed else 409
    elif outcome.failed or warnings:
        status = 202
    else:
        status = 200
    headers = [("Warning", f'299 radcase-pacs "{_quote(w)}"') for w in warnings[:50]]
    if status == 503 and outcome.retry_after is not None:
        headers.append(("Retry-After", str(outcome.retry_after)))
    response = Response(dumps(body), status_code=status, media_type=DICOM_JSON)
    for name, value in headers:
        response.headers.append(name, value)
    return response


def _failed_item(failure: tuple[str, str, int, str]) -> dict[str, Any]:
    sop_class, sop_uid, status, _ = failure
    return {
        "00081150": _ui(sop_class),
        "00081155": _ui(sop_uid),
        "00081197": {"vr": "US", "Value": [status]},
    }


def _stored_item(result: IngestResult, url: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        "00081150": _ui(result.sop_class_uid),
        "00081155": _ui(result.sop_uid),
        "00081190": {"vr": "UR", "Value": [url]},
    }
    if result.warnings:
        codes = sorted({code for code, _ in result.warnings})
        item["00081196"] = {"vr": "US", "Value": codes[:1]}
    return item


def _ui(value: str) -> dict[str, Any]:
    return {"vr": "UI", "Value": [value]} if value else {"vr": "UI"}


def _quote(text: str) -> str:
    """A value safe inside an HTTP quoted-string and latin-1 header encoding."""
    cleaned = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "?" for c in text)
    return cleaned[:300]
