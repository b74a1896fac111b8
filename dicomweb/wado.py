"""WADO-RS retrieval of studies, series and instances as DICOM (PS3.18 §10.4).

Stored bytes stream out untouched when the client accepts the stored transfer syntax
(``transfer-syntax=*`` or the stored UID); otherwise an instance is transcoded to Explicit
VR Little Endian, the default syntax of ``application/dicom`` (PS3.18 §8.7.3.5.2), when that
is what was asked and it can be decoded.

Everything is decided before the status line, from what ingest recorded
(:func:`storage.transcode.transcode_problem`): the Selected Transfer Syntax of each part is
the first acceptable one that instance can be delivered in (PS3.18 §8.7.8.2, which lets it
differ from part to part). When some instances fit no acceptable syntax, the response holds
the others, with status 206 (Partial Content) and a ``Warning: 299`` (PS3.18 §8.4) naming
each one left out and why; when none fits, it is a 406 (Not Acceptable) saying why. Those
are statuses of the Retrieve Transaction (PS3.18 §10.4.3; PS3.2 Table N.7-92), and earlier
editions of PS3.18 spelled the rule out (§6.5.2.2, RetrieveSeries): "either a Not Acceptable
response if no data is returned or a Partial Content response if only some data is
returned", the body holding "every instance ... that can be converted to one of the
requested Transfer Syntaxes".

A single instance is transcoded before the status line too, so a pixel stream that fails
despite the recorded facts still gets a 406 (or the next acceptable syntax), never a cut
body. In a multipart body each part is transcoded before its headers are written; a part
that fails there anyway is logged and ends the response without its closing delimiter, which
every multipart reader reports, rather than a well-formed body that silently lacks it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, replace

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from dicomweb import multipart, uri
from dicomweb.context import Service
from dicomweb.errors import not_acceptable, request_id
from dicomweb.httpcache import IMMUTABLE, REVALIDATE, EntityTag, entity_tag, precondition
from dicomweb.lanes import BlobLane, in_thread, primed
from dicomweb.negotiation import Acceptable
from dicomweb.requests import acceptables, path_uids
from dicomweb.syntaxes import DEFAULT_SYNTAX_BY_MEDIA_TYPE, DICOM, with_syntax
from storage.archive import Archive
from storage.errors import Unavailable
from storage.records import StoredInstance
from storage.transcode import to_explicit_little_endian, transcode_problem

log = logging.getLogger(__name__)

MAX_WARNINGS = 20
"""Instances named one by one in Warning fields; clients cap the number of header fields
(Python's http.client at 100), and the first field already gives the count."""


@dataclass(frozen=True)
class Candidate:
    """One acceptable DICOM representation: multipart or one bare part, and the transfer
    syntax asked for (None: any, so as stored)."""

    multipart: bool
    syntax: str | None


@dataclass(frozen=True)
class Part:
    """One instance of the answer and its Selected Transfer Syntax (PS3.18 §8.7.8.2)."""

    instance: StoredInstance
    syntax: str
    named: bool
    """The syntax was asked for by UID (not ``*``)."""

    @property
    def transcoded(self) -> bool:
        return self.syntax != self.instance.transfer_syntax


@dataclass(frozen=True)
class Plan:
    """The whole answer, decided before the status line."""

    multipart: bool
    parts: list[Part]
    left_out: list[tuple[StoredInstance, str]]
    """Instances no acceptable syntax fits, each with why."""


def candidates(accepted: Iterable[Acceptable], *, single: bool) -> list[Candidate]:
    """The acceptable DICOM representations, most preferred first; a bare
    ``application/dicom`` only for one instance (several never fit one bare body)."""
    found: list[Candidate] = []
    for acceptable in accepted:
        if not acceptable.matches(DICOM):
            continue
        concrete = acceptable.essence == DICOM
        if concrete and not acceptable.multipart and not single:
            continue
        syntax = acceptable.transfer_syntax
        if syntax == "*" or (syntax is None and not concrete):
            wanted = None
        else:
            wanted = syntax or DEFAULT_SYNTAX_BY_MEDIA_TYPE[DICOM]
        found.append(Candidate(multipart=acceptable.multipart or not concrete, syntax=wanted))
    return found


def _part(instance: StoredInstance, candidate: Candidate) -> Part | str:
    """The part ``candidate`` makes of ``instance``, or why it cannot."""
    if candidate.syntax is None:
        return Part(instance, instance.transfer_syntax, named=False)
    problem = transcode_problem(instance, candidate.syntax)
    return problem if problem is not None else Part(instance, candidate.syntax, named=True)


def plan_retrieve(
    accepted: Iterable[Acceptable], found: list[StoredInstance], *, single: bool
) -> Plan:
    """Choose the container, then each instance's syntax; 406 when nothing can be sent.

    The container is that of the most preferred representation at least one instance can be
    sent in; each instance then takes the first representation of that container it fits."""
    choices = candidates(accepted, single=single)
    if not choices:
        raise not_acceptable(
            'ask for multipart/related; type="application/dicom" (with transfer-syntax=* for '
            "the stored bytes)" + (", or application/dicom" if single else "")
        )
    first = next((c for c in choices if any(isinstance(_part(i, c), Part) for i in found)), None)
    if first is None:
        reasons = [(i, _reason(i, choices)) for i in found]
        raise not_acceptable(
            "no instance can be sent in an acceptable transfer syntax: "
            + "; ".join(f"{i.sop_uid} {why}" for i, why in reasons[:MAX_WARNINGS])
            + "; transfer-syntax=* sends them as stored"
        )
    usable = [c for c in choices if c.multipart == first.multipart]
    parts: list[Part] = []
    left_out: list[tuple[StoredInstance, str]] = []
    for instance in found:
        part = next((p for c in usable if isinstance(p := _part(instance, c), Part)), None)
        if part is None:
            left_out.append((instance, _reason(instance, usable)))
        else:
            parts.append(part)
    return Plan(first.multipart, parts, left_out)


def _reason(instance: StoredInstance, choices: list[Candidate]) -> str:
    """Why ``instance`` fits none of ``choices`` (each of which names a syntax)."""
    reasons = {str(r) for c in choices if isinstance(r := _part(instance, c), str)}
    return " and ".join(sorted(reasons))


def _part_headers(root: str, part: Part) -> dict[str, str]:
    i = part.instance
    return {
        "Content-Type": with_syntax(DICOM, part.syntax),
        "Content-Location": uri.instance_url(root, i.study_uid, i.series_uid, i.sop_uid),
    }


def _retrieve_tag(version: str | None, plan: Plan, root: str) -> EntityTag:
    """The validator of a retrieval (RFC 9110 §8.8.3).

    An instance never changes, so its SHA-256 names its bytes; a study or series is a set
    that grows and shrinks, so its version token (replaced on every store and delete) names
    it. The rest names the representation: each part's syntax, the container, and for
    multipart the root written into each part's Content-Location. Multipart bodies get a
    fresh boundary each time, hence a weak tag (see :mod:`dicomweb.httpcache`).
    """
    content = plan.parts[0].instance.sha256 if version is None else version
    selection = hashlib.blake2b(digest_size=16)
    for part in plan.parts:
        selection.update(f"{part.instance.sop_uid}={part.syntax};".encode())
    container = f"multipart:{root}" if plan.multipart else "single"
    return entity_tag("retrieve", content, selection.hexdigest(), container, weak=plan.multipart)


def _warnings(plan: Plan, total: int) -> list[str]:
    """``Warning: 299`` values for a partial answer (PS3.18 §8.4, RFC 7234 §5.5)."""
    if not plan.left_out:
        return []
    texts = [
        f"{len(plan.left_out)} of {total} instances are not in this response: no acceptable "
        "transfer syntax fits them (transfer-syntax=* sends them as stored)"
    ]
    texts += [f"{i.sop_uid} {why}" for i, why in plan.left_out[:MAX_WARNINGS]]
    return [f'299 radcase-pacs "{_quote(text)}"' for text in texts]


def _quote(text: str) -> str:
    """A value safe inside an HTTP quoted-string and latin-1 header encoding."""
    cleaned = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "?" for c in text)
    return cleaned[:300]


def _transcoded(archive: Archive, instance: StoredInstance) -> bytes:
    return to_explicit_little_endian(archive.read(instance))


TRIP_BYTES = 4 * 1024 * 1024
"""Bytes read per trip to a worker thread: whole instances up to this much are read in one
trip and sent as one chunk (a 512 KB CT slice then costs an eighth of a trip, not a trip for
its part head and one per 1 MB chunk); a larger instance is read this much per trip."""


SMALL_PIECE = 64 * 1024
"""Pieces shorter than this are joined before they are sent, larger ones sent as they are."""


@dataclass
class _Pending:
    """What the next trip starts with: the parts still to send and a large instance's stream
    left part-way."""

    parts: list[Part]
    stream: Iterator[bytes] | None = None
    first: bool = True
    closed: bool = False
    prefetched: int = 0
    """How many of ``parts`` (counted from the first not yet sent) were hinted to the store."""
    failure: Unavailable | None = None
    """A transcoding that failed after this trip had read other parts: those go out first,
    then the next trip raises it."""


def _trip(
    archive: Archive, pending: _Pending, boundary: str, root: str, ready: dict[str, bytes], rid: str
) -> list[bytes | memoryview]:
    """The next pieces of the multipart body, about :data:`TRIP_BYTES` of them, read in one
    worker-thread trip; empty once the close delimiter has been returned.

    Stored bytes are read whole when the instance is at most :data:`TRIP_BYTES`, else
    streamed a chunk per trip; a transcoded body is made before its part head goes out."""
    if pending.failure is not None:
        raise pending.failure
    _prefetch(archive, pending)
    pieces: list[bytes | memoryview] = []
    size = 0
    while size < TRIP_BYTES:
        if pending.stream is not None:
            chunk = next(pending.stream, None)
            if chunk is None:
                pending.stream = None
                continue
            pieces.append(chunk)
            size += len(chunk)
            continue
        if not pending.parts:
            if not pending.closed:
                # With no part there is no content to end: the close starts with "--".
                pieces.append(multipart.encode_close(boundary)[2 if pending.first else 0 :])
                pending.closed = True
            break
        part = pending.parts[0]
        body: bytes | memoryview | None = None
        if part.transcoded:
            body = ready.get(part.instance.sop_uid)
            if body is None:
                try:
                    body = _transcoded_or_log(archive, part.instance, rid)
                except Unavailable as exc:
                    if not pieces:
                        raise
                    pending.failure = exc
                    break
        elif part.instance.blob_size <= TRIP_BYTES:
            body = archive.view(part.instance)
        del pending.parts[0]
        pending.prefetched = max(0, pending.prefetched - 1)
        pieces.append(
            multipart.encode_part_head(boundary, _part_headers(root, part), first=pending.first)
        )
        pending.first = False
        if body is None:
            pending.stream = archive.stream(part.instance, TRIP_BYTES)
        else:
            pieces.append(body)
            size += len(body)
    return pieces


def _prefetch(archive: Archive, pending: _Pending) -> None:
    """Hint the stored files of this trip and the next to the store before reading any:
    files not in memory are then read from the disk side by side, and ahead of the send."""
    ahead = 0
    upcoming: list[StoredInstance] = []
    for n, part in enumerate(pending.parts):
        ahead += part.instance.blob_size
        if ahead > 2 * TRIP_BYTES:
            break
        if n >= pending.prefetched and not part.transcoded:
            upcoming.append(part.instance)
        pending.prefetched = max(pending.prefetched, n + 1)
    if upcoming:
        archive.prefetch(upcoming)


def _transcoded_or_log(archive: Archive, instance: StoredInstance, rid: str) -> bytes:
    try:
        return _transcoded(archive, instance)
    except Unavailable as exc:
        log.error(
            "request %s: instance %s did not transcode although ingest found it "
            "decodable; the multipart body ends here: %s",
            rid,
            instance.sop_uid,
            exc,
        )
        raise


async def _multipart_body(
    lane: BlobLane,
    archive: Archive,
    plan: Plan,
    boundary: str,
    root: str,
    ready: dict[str, bytes],
    rid: str,
) -> AsyncIterator[bytes | memoryview]:
    """The multipart body (PS3.18 §8.7.3.5), each part's head and stored bytes as they are,
    read :data:`TRIP_BYTES` at a time by a worker thread and sent as one chunk per trip."""
    pending = _Pending(list(plan.parts))
    while pieces := await lane.run(_trip, archive, pending, boundary, root, ready, rid):
        for piece in _coalesced(pieces):
            yield piece


def _coalesced(pieces: list[bytes | memoryview]) -> Iterator[bytes | memoryview]:
    """Stored bytes as they are (a memory map is copied once, by the socket), the small
    pieces between them (a part's close and the next part's head) joined."""
    small: list[bytes] = []
    for piece in pieces:
        if isinstance(piece, bytes) and len(piece) < SMALL_PIECE:
            small.append(piece)
            continue
        if small:
            yield b"".join(small)
            small = []
        yield piece
    if small:
        yield b"".join(small)


def _multipart_length(plan: Plan, boundary: str, root: str, ready: dict[str, bytes]) -> int | None:
    """The body's length when every part's size is known before it is read (stored bytes, or
    a body transcoded already): sent as Content-Length, the body needs no chunked framing."""
    total = 0
    for n, part in enumerate(plan.parts):
        if part.transcoded:
            body = ready.get(part.instance.sop_uid)
            if body is None:
                return None
            total += len(body)
        else:
            total += part.instance.blob_size
        head = multipart.encode_part_head(boundary, _part_headers(root, part), first=n == 0)
        total += len(head)
    return total + len(multipart.encode_close(boundary)) - (0 if plan.parts else 2)


async def _single_body(
    lane: BlobLane, archive: Archive, part: Part, ready: dict[str, bytes]
) -> AsyncIterator[bytes | memoryview]:
    """One bare instance: read whole in one trip when small, else a chunk per trip."""
    body = ready.get(part.instance.sop_uid)
    if body is not None:
        yield body
        return
    if part.instance.blob_size <= TRIP_BYTES:
        yield await lane.run(archive.view, part.instance)
        return
    stream = archive.stream(part.instance, TRIP_BYTES)
    while (chunk := await lane.run(next, stream, None)) is not None:
        yield chunk


async def retrieve(request: Request) -> Response:
    """GET /studies/{study}[/series/{series}[/instances/{instance}]] (PS3.18 §10.4.1)."""
    service: Service = request.app.state.service
    study_uid, series_uid, sop_uid = path_uids(request)
    archive = service.archive_for(request)
    accepted = acceptables(request)
    version = None
    if sop_uid is None:
        # Read the version before the instance list: a store in between then gives an old
        # tag with a new body (the next request refetches), never a new tag with an old body.
        # An unknown study or series is a 404 here already.
        version = await in_thread(archive.version, study_uid, series_uid)
    found = await in_thread(archive.instances, study_uid, series_uid, sop_uid)
    single = sop_uid is not None
    plan = plan_retrieve(accepted, found, single=single)
    root = service.root(request)
    headers = {
        "Cache-Control": IMMUTABLE if single else REVALIDATE,
        "Vary": "Accept",
    }
    ready: dict[str, bytes] = {}
    while True:
        tag = _retrieve_tag(version, plan, root)
        headers["ETag"] = str(tag)
        not_modified = precondition(request, tag, headers)
        if not_modified is not None:
            return not_modified
        transcoded = [p.instance for p in plan.parts if p.transcoded]
        if not single or not transcoded:
            break
        # One instance: transcode it now, so that a failure still chooses the status.
        (instance,) = transcoded
        try:
            ready[instance.sop_uid] = await service.blobs.run(_transcoded, archive, instance)
            break
        except Unavailable as exc:
            log.warning("instance %s did not transcode: %s", instance.sop_uid, exc)
            found = [replace(instance, decode_problem=str(exc))]
            plan = plan_retrieve(accepted, found, single=True)
    return await _response(
        service.blobs, archive, plan, root, ready, headers, len(found), request_id(request)
    )


async def _response(
    lane: BlobLane,
    archive: Archive,
    plan: Plan,
    root: str,
    ready: dict[str, bytes],
    headers: dict[str, str],
    total: int,
    rid: str,
) -> Response:
    """The response, its body's first piece already read (:func:`~dicomweb.lanes.primed`):
    a store that does not answer is a 503, not a 200 cut short."""
    status = 206 if plan.left_out else 200
    if plan.multipart:
        boundary = multipart.new_boundary()
        syntaxes = {p.syntax for p in plan.parts}
        named = len(syntaxes) == 1 and all(p.named for p in plan.parts)
        params = {"transfer-syntax": syntaxes.pop()} if named else {}
        length = _multipart_length(plan, boundary, root, ready)
        if length is not None:
            headers = {**headers, "Content-Length": str(length)}
        response: Response = StreamingResponse(
            await primed(_multipart_body(lane, archive, plan, boundary, root, ready, rid)),
            status_code=status,
            media_type=multipart.content_type(boundary, DICOM, **params),
            headers=headers,
        )
    else:
        (part,) = plan.parts
        ready_body = ready.get(part.instance.sop_uid)
        size = part.instance.blob_size if ready_body is None else len(ready_body)
        if not part.transcoded or ready_body is not None:
            headers = {**headers, "Content-Length": str(size)}
        response = StreamingResponse(
            await primed(_single_body(lane, archive, part, ready)),
            media_type=_part_headers(root, part)["Content-Type"],
            headers=headers,
        )
    for warning in _warnings(plan, total):
        response.headers.append("Warning", warning)
    return response
