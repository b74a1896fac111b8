"""WADO-RS frames and bulk data (PS3.18 §10.4.1.1.4, §10.4.1.1.5).

Frames come from the frame table written at ingest: one ranged read each, no DICOM parsing.
Native frames are ``application/octet-stream`` in Explicit VR Little Endian; encapsulated
frames go out in their stored syntax, as that syntax's own media type (``image/jpeg``,
``image/jls``, ``image/jp2``...) or as ``application/octet-stream`` when the client asks for
``transfer-syntax=*`` (what OHIF does).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from dicomweb import multipart
from dicomweb.context import Service
from dicomweb.errors import HttpError, not_acceptable
from dicomweb.negotiation import Acceptable
from dicomweb.syntaxes import (
    DEFAULT_SYNTAX_BY_MEDIA_TYPE,
    EXPLICIT_VR_LITTLE_ENDIAN,
    OCTET_STREAM,
    frame_media_type,
    with_syntax,
)
from dicomweb.wado import IMMUTABLE, acceptables, path_uids
from storage.archive import FrameSet

MAX_FRAMES_PER_REQUEST = 10000


@dataclass(frozen=True)
class FrameChoice:
    media_type: str
    multipart: bool


def parse_frame_list(text: str) -> list[int]:
    """``1``, ``1,3,5`` (PS3.18 §8.3.1 frame list): positive integers, comma-separated."""
    numbers = []
    for item in text.split(","):
        item = item.strip()
        if not item.isdigit() or int(item) < 1:
            raise HttpError(400, f"frame list: {item!r} is not a frame number (1 or more)")
        numbers.append(int(item))
    if len(numbers) > MAX_FRAMES_PER_REQUEST:
        raise HttpError(400, f"frame list: at most {MAX_FRAMES_PER_REQUEST} frames per request")
    return numbers


def choose_frames(
    accepted: Iterable[Acceptable], syntax: str, encapsulated: bool, count: int
) -> FrameChoice:
    """The first acceptable media type for frames in ``syntax`` that needs no transcoding."""
    own = frame_media_type(syntax, encapsulated)
    for acceptable in accepted:
        wanted = acceptable.transfer_syntax
        if acceptable.essence in (OCTET_STREAM, own):
            default = DEFAULT_SYNTAX_BY_MEDIA_TYPE.get(acceptable.essence)
            if wanted == "*" or wanted == syntax or (wanted is None and default == syntax):
                single = not acceptable.multipart and count == 1
                return FrameChoice(acceptable.essence, multipart=not single)
        elif acceptable.matches(own) and wanted in (None, "*", syntax):
            return FrameChoice(own, multipart=True)
    stored = with_syntax(own, syntax)
    raise not_acceptable(
        f'the frames are stored as {stored}; ask for multipart/related; type="{own}" or '
        f'type="application/octet-stream" with transfer-syntax=* (decompression of frames '
        f"is not offered)"
        if encapsulated
        else f"the frames are available as {stored}"
    )


def frames_response(request: Request, frames: FrameSet, headers: dict[str, str]) -> Response:
    choice = choose_frames(
        acceptables(request), frames.transfer_syntax, frames.encapsulated, len(frames.frames)
    )
    part_type = with_syntax(choice.media_type, frames.transfer_syntax)
    if not choice.multipart:
        return Response(frames.frames[0], media_type=part_type, headers=headers)
    boundary = multipart.new_boundary()
    parts = (({"Content-Type": part_type}, [frame]) for frame in frames.frames)
    return StreamingResponse(
        multipart.iter_multipart(boundary, parts),
        media_type=multipart.content_type(
            boundary, choice.media_type, **{"transfer-syntax": frames.transfer_syntax}
        ),
        headers=headers,
    )


async def retrieve_frames(request: Request) -> Response:
    service: Service = request.app.state.service
    study_uid, series_uid, sop_uid = path_uids(request)
    assert series_uid is not None and sop_uid is not None
    numbers = parse_frame_list(request.path_params["frames"])
    archive = service.archive_for(request)
    frames = await run_in_threadpool(archive.frames, study_uid, series_uid, sop_uid, numbers)
    return frames_response(request, frames, {"Cache-Control": IMMUTABLE})


async def retrieve_bulk(request: Request) -> Response:
    """A BulkDataURI from our metadata (``.../bulk/{path}``)."""
    service: Service = request.app.state.service
    study_uid, series_uid, sop_uid = path_uids(request)
    assert series_uid is not None and sop_uid is not None
    path = request.path_params["path"]
    archive = service.archive_for(request)
    bulk = await run_in_threadpool(archive.bulk, study_uid, series_uid, sop_uid, path)
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
