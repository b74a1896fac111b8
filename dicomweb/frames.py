"""WADO-RS frames and bulk data (PS3.18 §10.4.1.1.4, §10.4.1.1.5).

Frames come from the frame table written at ingest: one ranged read each, no DICOM parsing.
Native frames are ``application/octet-stream`` in Explicit VR Little Endian; encapsulated
frames go out in their stored syntax, as that syntax's own media type (``image/jpeg``,
``image/jls``, ``image/jp2``...) or as ``application/octet-stream`` when the client asks for
``transfer-syntax=*`` (what OHIF does). Asked for as ``application/octet-stream`` in Explicit
VR Little Endian (named, or by default), encapsulated frames are decoded and sent native when a
decoder is installed (see :func:`_decompressed`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from dicomweb import multipart
from dicomweb.context import Service
from dicomweb.errors import HttpError, not_acceptable
from dicomweb.httpcache import IMMUTABLE, entity_tag, is_multipart, representation, revalidate
from dicomweb.lanes import in_thread
from dicomweb.negotiation import Acceptable
from dicomweb.ranges import with_ranges
from dicomweb.requests import acceptables, instance_uids
from dicomweb.syntaxes import (
    DEFAULT_SYNTAX_BY_MEDIA_TYPE,
    EXPLICIT_VR_LITTLE_ENDIAN,
    OCTET_STREAM,
    frame_media_type,
    with_syntax,
)
from storage.archive import Archive, BulkData, FrameSet
from storage.errors import Unavailable
from storage.pixels import can_decode
from storage.records import StoredInstance

MAX_FRAMES_PER_REQUEST = 10000
MAX_FRAME_NUMBER = 2**31 - 1  # NumberOfFrames is an IS (PS3.5 Table 6.2-1)


@dataclass(frozen=True)
class FrameChoice:
    media_type: str
    multipart: bool
    decompress: bool = False
    """Encapsulated frames to be decoded and sent as native Explicit VR Little Endian."""


def parse_frame_list(text: str) -> list[int]:
    """``1``, ``1,3,5`` (PS3.18 §8.3.1 frame list): positive integers, comma-separated.

    Only ASCII digits (``str.isdigit`` also takes ``²`` and other scripts' digits, which
    ``int`` then refuses), and at most the largest NumberOfFrames an IS can hold, checked on
    the text first: ``int`` refuses strings of more than 4300 digits.
    """
    numbers = []
    for item in text.split(","):
        item = item.strip()
        shown = repr(item) if len(item) <= 24 else repr(item[:24]) + "..."
        digits = item.lstrip("0")
        if not (item.isascii() and item.isdigit()) or not digits:
            raise HttpError(400, f"frame list: {shown} is not a frame number (1 or more)")
        if len(digits) > 10 or int(digits) > MAX_FRAME_NUMBER:
            raise HttpError(
                400, f"frame list: {shown} exceeds the largest frame number ({MAX_FRAME_NUMBER})"
            )
        numbers.append(int(digits))
    if len(numbers) > MAX_FRAMES_PER_REQUEST:
        raise HttpError(400, f"frame list: at most {MAX_FRAMES_PER_REQUEST} frames per request")
    return numbers


def choose_frames(
    accepted: Iterable[Acceptable],
    syntax: str,
    encapsulated: bool,
    count: int,
    *,
    decodable: bool = False,
) -> FrameChoice:
    """The first acceptable media type for frames in ``syntax``: as stored, or, for
    encapsulated frames that ``decodable`` says we can decode, decompressed to
    application/octet-stream in Explicit VR Little Endian, the default syntax of that media
    type (PS3.18 §8.7.3.5.2), when that is what the range asks for."""
    own = frame_media_type(syntax, encapsulated)
    for acceptable in accepted:
        wanted = acceptable.transfer_syntax
        if acceptable.essence in (OCTET_STREAM, own):
            default = DEFAULT_SYNTAX_BY_MEDIA_TYPE.get(acceptable.essence)
            single = not acceptable.multipart and count == 1
            if wanted == "*" or wanted == syntax or (wanted is None and default == syntax):
                return FrameChoice(acceptable.essence, multipart=not single)
            if (
                decodable
                and encapsulated
                and acceptable.essence == OCTET_STREAM
                and (wanted or default) == EXPLICIT_VR_LITTLE_ENDIAN
            ):
                return FrameChoice(OCTET_STREAM, multipart=not single, decompress=True)
        elif acceptable.matches(own) and wanted in (None, "*", syntax):
            return FrameChoice(own, multipart=True)
    stored = with_syntax(own, syntax)
    decompression = (
        f"or transfer-syntax={EXPLICIT_VR_LITTLE_ENDIAN} to have them decompressed"
        if decodable
        else "(no decoder is installed for this syntax, so they cannot be decompressed)"
    )
    raise not_acceptable(
        f'the frames are stored as {stored}; ask for multipart/related; type="{own}" or '
        f'type="application/octet-stream" with transfer-syntax=* {decompression}'
        if encapsulated
        else f"the frames are available as {stored}"
    )


def frames_response(
    request: Request,
    frames: FrameSet,
    headers: dict[str, str],
    *,
    choice: FrameChoice | None = None,
) -> Response:
    """Frames as chosen (``choice``, or negotiated here for frames sent as they are)."""
    if choice is None:
        choice = choose_frames(
            acceptables(request), frames.transfer_syntax, frames.encapsulated, len(frames.frames)
        )
    part_type = with_syntax(choice.media_type, frames.transfer_syntax)
    if not choice.multipart:
        return Response(frames.frames[0], media_type=part_type, headers=headers)
    # The frames are in memory already: one body, sent at once, costs less than a stream
    # whose every chunk is a round trip through a worker thread.
    boundary = multipart.new_boundary()
    parts = (({"Content-Type": part_type}, [frame]) for frame in frames.frames)
    return Response(
        b"".join(multipart.iter_multipart(boundary, parts)),
        media_type=multipart.content_type(
            boundary, choice.media_type, **{"transfer-syntax": frames.transfer_syntax}
        ),
        headers=headers,
    )


async def retrieve_frames(request: Request) -> Response:
    service: Service = request.app.state.service
    study_uid, series_uid, sop_uid = instance_uids(request)
    numbers = parse_frame_list(request.path_params["frames"])
    archive = service.archive_for(request)
    instance, frames = await service.blobs.run(
        _instance_and_frames, archive, study_uid, series_uid, sop_uid, numbers
    )
    choice = choose_frames(
        acceptables(request),
        frames.transfer_syntax,
        frames.encapsulated,
        len(frames.frames),
        decodable=frames.encapsulated and can_decode(frames.transfer_syntax),
    )
    if choice.decompress:
        frames = await service.blobs.run(
            _decompressed, archive, study_uid, series_uid, sop_uid, frames, numbers
        )
    response = frames_response(request, frames, {"Cache-Control": IMMUTABLE}, choice=choice)
    return _validated(request, instance, "frames/" + ",".join(map(str, numbers)), response)


def _instance_and_frames(
    archive: Archive, study_uid: str, series_uid: str, sop_uid: str, numbers: list[int]
) -> tuple[StoredInstance, FrameSet]:
    """The instance (whose SHA-256 validates the frames: looked up before the read, see
    :func:`_instance`) and its frames, in one trip to a worker thread."""
    (instance,) = archive.instances(study_uid, series_uid, sop_uid)
    return instance, archive.frames(study_uid, series_uid, sop_uid, numbers, instance=instance)


def _decompressed(
    archive: Archive,
    study_uid: str,
    series_uid: str,
    sop_uid: str,
    frames: FrameSet,
    numbers: list[int],
) -> FrameSet:
    """Encapsulated frames decoded to native Explicit VR Little Endian bytes: little endian,
    samples interleaved, and in RGB where the stored Photometric Interpretation is YBR_FULL
    or YBR_FULL_422 (PS3.18 §8.7.3.5.2 lets the server convert; this is also what the
    instance transcoded to Explicit VR Little Endian holds, with PhotometricInterpretation
    RGB). A frame that will not decode is a 406 saying why: the stored bytes
    (``transfer-syntax=*``) remain available."""
    try:
        return archive.decompressed_frames(study_uid, series_uid, sop_uid, frames, numbers)
    except Unavailable as exc:
        raise not_acceptable(
            f"{exc}; the stored frames are available with transfer-syntax=*"
        ) from exc


async def retrieve_bulk(request: Request) -> Response:
    """A BulkDataURI from our metadata (``.../bulk/{path}``)."""
    service: Service = request.app.state.service
    study_uid, series_uid, sop_uid = instance_uids(request)
    path = request.path_params["path"]
    archive = service.archive_for(request)
    instance = await _instance(archive, study_uid, series_uid, sop_uid)
    bulk = await service.blobs.run(archive.bulk, study_uid, series_uid, sop_uid, path)
    response = _bulk_response(request, bulk)
    return _validated(request, instance, "bulk/" + path.upper(), response)


def _bulk_response(request: Request, bulk: BulkData) -> Response:
    headers = {"Cache-Control": IMMUTABLE}
    if bulk.frames is not None:
        return frames_response(request, bulk.frames, headers)
    assert bulk.value is not None
    value = bulk.value
    for acceptable in acceptables(request):
        if acceptable.matches(OCTET_STREAM) and acceptable.transfer_syntax in (
            None,
            "*",
            EXPLICIT_VR_LITTLE_ENDIAN,
        ):
            if not acceptable.multipart and acceptable.essence == OCTET_STREAM:
                return Response(value, media_type=OCTET_STREAM, headers=headers)
            boundary = multipart.new_boundary()
            body = multipart.iter_multipart(boundary, [({"Content-Type": OCTET_STREAM}, [value])])
            return StreamingResponse(
                body, media_type=multipart.content_type(boundary, OCTET_STREAM), headers=headers
            )
    raise not_acceptable("bulk data is available as application/octet-stream")


async def _instance(
    archive: Archive, study_uid: str, series_uid: str, sop_uid: str
) -> StoredInstance:
    """The instance whose SHA-256 validates its frames and bulk data. Looked up before the
    read, so a replacement in between yields an old tag on new bytes (refetched next time),
    never a new tag on old bytes."""
    (instance,) = await in_thread(archive.instances, study_uid, series_uid, sop_uid)
    return instance


def _validated(
    request: Request, instance: StoredInstance, resource: str, response: Response
) -> Response:
    """ETag, Cache-Control and Vary on frames and bulk data, 304 when the client holds them,
    byte ranges of a bare body (:mod:`dicomweb.ranges`).

    They never change once stored (Cache-Control ``immutable``); the tag names the stored
    bytes (SHA-256), the frames or value asked for, and the chosen representation (the
    Content-Type, boundary aside), so another Accept gets another tag. The representation is
    only known once ``response`` exists, hence a check after the read: revalidation of an
    immutable resource is rare.
    """
    tag = entity_tag(
        "frames-bulk",
        instance.sha256,
        resource,
        representation(response),
        weak=is_multipart(response),
    )
    checked = revalidate(request, response, tag, Cache_Control=IMMUTABLE, Vary="Accept")
    return checked if checked.status_code == 304 else with_ranges(request, checked, tag)
