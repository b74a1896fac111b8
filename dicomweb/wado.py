"""WADO-RS retrieval of studies, series and instances as DICOM (PS3.18 §10.4).

Stored bytes stream out untouched when the client accepts the stored transfer syntax
(``transfer-syntax=*`` or the stored UID); otherwise the instance is transcoded to Explicit
VR Little Endian, the default syntax of ``application/dicom`` (PS3.18 §8.7.3.5.2), when that
is what was asked and a decoder exists. Anything else is a 406 that lists what we have.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from dicomweb import multipart, uri
from dicomweb.context import Service
from dicomweb.errors import HttpError, bad_request, check_query_encoding, not_acceptable
from dicomweb.httpcache import IMMUTABLE as IMMUTABLE  # frames and others import it from here
from dicomweb.httpcache import REVALIDATE, EntityTag, entity_tag, precondition
from dicomweb.negotiation import Acceptable, NotAcceptableHeader, accept_from_request, parse_accept
from dicomweb.syntaxes import DEFAULT_SYNTAX_BY_MEDIA_TYPE, with_syntax
from storage.archive import Archive
from storage.query import is_valid_uid
from storage.records import StoredInstance
from storage.transcode import can_transcode, to_explicit_little_endian

DICOM = "application/dicom"


@dataclass(frozen=True)
class DicomChoice:
    """How to answer: multipart or one bare part, and the target syntax (None: as stored)."""

    multipart: bool
    target: str | None


def path_uids(request: Request) -> tuple[str, str | None, str | None]:
    """Study, series and instance UIDs from the path, each checked (400 names a bad one)."""
    params = request.path_params
    names = (
        ("study", "StudyInstanceUID"),
        ("series", "SeriesInstanceUID"),
        ("instance", "SOPInstanceUID"),
    )
    values: list[str | None] = []
    for key, keyword in names:
        value = params.get(key)
        if value is not None and not is_valid_uid(value):
            raise HttpError(400, f"{keyword} in the path: {value!r} is not a valid UID")
        values.append(value)
    assert values[0] is not None
    return values[0], values[1], values[2]


def acceptables(request: Request) -> list[Acceptable]:
    check_query_encoding(request)
    header = accept_from_request(
        request.headers.get("accept"), request.query_params.getlist("accept")
    )
    try:
        return parse_accept(header)
    except NotAcceptableHeader as exc:
        raise bad_request("Accept", str(exc)) from exc


def choose_dicom(accepted: Iterable[Acceptable], stored: set[str], *, single: bool) -> DicomChoice:
    """The first acceptable representation we can produce for every instance."""
    for acceptable in accepted:
        if not acceptable.matches(DICOM):
            continue
        concrete = acceptable.essence == DICOM
        if concrete and not acceptable.multipart and not single:
            continue  # several instances never fit one bare application/dicom body
        syntax = acceptable.transfer_syntax
        if syntax == "*" or (syntax is None and not concrete):
            target = None
        else:
            target = syntax or DEFAULT_SYNTAX_BY_MEDIA_TYPE[DICOM]
        if target is not None and not all(can_transcode(s, target) for s in stored):
            continue
        if target is not None and stored == {target}:
            target = None
        return DicomChoice(multipart=acceptable.multipart or not concrete, target=target)
    raise not_acceptable(
        "the instances are stored as "
        + ", ".join(sorted(stored))
        + '; ask for multipart/related; type="application/dicom" with transfer-syntax=* '
        "or one of those (or 1.2.840.10008.1.2.1 where it can be decoded)"
    )


def _instance_body(
    archive: Archive, instance: StoredInstance, target: str | None
) -> Iterator[bytes]:
    if target is None or target == instance.transfer_syntax:
        yield from archive.stream(instance)
    else:
        yield to_explicit_little_endian(archive.read(instance))


def _part_headers(root: str, instance: StoredInstance, target: str | None) -> dict[str, str]:
    return {
        "Content-Type": with_syntax(DICOM, target or instance.transfer_syntax),
        "Content-Location": uri.instance_url(
            root, instance.study_uid, instance.series_uid, instance.sop_uid
        ),
    }


def _retrieve_tag(
    version: str | None, found: list[StoredInstance], choice: DicomChoice, root: str
) -> EntityTag:
    """The validator of a retrieval (RFC 9110 §8.8.3).

    An instance never changes, so its SHA-256 names its bytes; a study or series is a set
    that grows and shrinks, so its version token (replaced on every store and delete) names
    it. The rest names the representation: target syntax and container, and for multipart
    the root written into each part's Content-Location. Multipart bodies get a fresh
    boundary each time, hence a weak tag (see :mod:`dicomweb.httpcache`).
    """
    content = found[0].sha256 if version is None else version
    container = f"multipart:{root}" if choice.multipart else "single"
    return entity_tag(
        "retrieve", content, choice.target or "stored", container, weak=choice.multipart
    )


async def retrieve(request: Request) -> Response:
    """GET /studies/{study}[/series/{series}[/instances/{instance}]] (PS3.18 §10.4.1)."""
    service: Service = request.app.state.service
    study_uid, series_uid, sop_uid = path_uids(request)
    archive = service.archive_for(request)
    version = None
    if sop_uid is None:
        # Read the version before the instance list: a store in between then gives an old
        # tag with a new body (the next request refetches), never a new tag with an old body.
        version = await run_in_threadpool(archive.version, study_uid, series_uid)
    found = await run_in_threadpool(archive.instances, study_uid, series_uid, sop_uid)
    choice = choose_dicom(
        acceptables(request), {i.transfer_syntax for i in found}, single=sop_uid is not None
    )
    root = service.root(request)
    tag = _retrieve_tag(version, found, choice, root)
    headers = {
        "ETag": str(tag),
        "Cache-Control": IMMUTABLE if sop_uid else REVALIDATE,
        "Vary": "Accept",
    }
    not_modified = precondition(request, tag, headers)
    if not_modified is not None:
        return not_modified
    if not choice.multipart:
        (instance,) = found
        part = _part_headers(root, instance, choice.target)
        return StreamingResponse(
            _instance_body(archive, instance, choice.target),
            media_type=part["Content-Type"],
            headers=headers,
        )
    boundary = multipart.new_boundary()
    parts = (
        (_part_headers(root, i, choice.target), _instance_body(archive, i, choice.target))
        for i in found
    )
    params = {"transfer-syntax": choice.target} if choice.target else {}
    return StreamingResponse(
        multipart.iter_multipart(boundary, parts),
        media_type=multipart.content_type(boundary, DICOM, **params),
        headers=headers,
    )
