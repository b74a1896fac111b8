"""WADO-URI, the URI Service (PS3.18 §9): ``GET /wado?requestType=WADO&studyUID=..&...``.

One instance, named by query parameters (§9.1.2: ``requestType=WADO``, ``studyUID``,
``seriesUID``, ``objectUID``), as DICOM or rendered:

* ``contentType=application/dicom`` (what Cornerstone's wadouri loader asks for): the
  instance in ``transferSyntax``, or when that is absent in Explicit VR Little Endian, the
  default of §9.4.2.4. An instance stored in that syntax streams out byte for byte; others
  are transcoded when a decoder exists. With no ``transferSyntax`` and no way to transcode,
  the stored bytes are sent anyway: their File Meta names their syntax (§9.3 note), and that
  serves a client better than an error. A syntax asked for by name that we cannot produce is
  a 406 listing what we can.
* ``contentType=image/jpeg`` (also ``image/png``, ``image/gif``): rendered by
  :mod:`dicomweb.rendering` with ``frameNumber``, ``rows``/``columns`` (bounds that keep
  the aspect ratio), ``region`` (fractions of the image), ``windowCenter``/``windowWidth``
  (a LINEAR window, PS3.3 §C.11.2.1.2), ``imageQuality`` and ``annotation`` (accepted, not
  burned in). A multi-frame instance without ``frameNumber`` renders its first frame, or
  all its frames as an animated GIF for ``image/gif``.

Without ``contentType`` (or the Accept header naming something else), a single-frame image
is image/jpeg and everything else application/dicom (PS3.18 §8.7.4 Table 8.7.4-1 and the
WADO-URI defaults of earlier editions, §7.1-7.2 of PS3.18 2013). Presentation states
(``presentationUID``) and ``anonymize`` are refused with a 400 that says so; every bad
parameter is a 400 naming it; unknown UIDs are 404.
"""

from __future__ import annotations

from pydicom.uid import UID
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from dicomweb.context import Service
from dicomweb.errors import bad_request, check_query_encoding, not_acceptable
from dicomweb.httpcache import IMMUTABLE, entity_tag, precondition
from dicomweb.lanes import in_thread, primed
from dicomweb.negotiation import NotAcceptableHeader, parse_accept
from dicomweb.presentation import Window
from dicomweb.render_params import (
    decimal,
    dimension,
    integer,
    parse_annotation,
    parse_quality,
    single,
)
from dicomweb.rendered import InstanceRenderer, RenderedChoice, renderable
from dicomweb.rendering import DEFAULT_QUALITY, GIF, JPEG, PNG, FractionRegion, RenderParams
from dicomweb.syntaxes import DICOM
from storage.archive import Archive
from storage.errors import Unavailable
from storage.query import is_valid_uid
from storage.records import StoredInstance
from storage.transcode import (
    EXPLICIT_VR_LITTLE_ENDIAN,
    to_explicit_little_endian,
    transcode_problem,
)

URI_MEDIA_TYPES = (DICOM, JPEG, PNG, GIF)
RENDERING_PARAMETERS = (
    "rows",
    "columns",
    "region",
    "windowCenter",
    "windowWidth",
    "frameNumber",
    "imageQuality",
    "annotation",
)


def _uid(query: QueryParams, name: str) -> str:
    value = single(query, name)
    if value is None or not value.strip():
        raise bad_request(name, "required (PS3.18 §9.1.2)")
    if not is_valid_uid(value):
        raise bad_request(name, f"{value!r} is not a valid UID")
    return value


def _refuse_unsupported(query: QueryParams) -> None:
    if single(query, "anonymize") is not None:
        raise bad_request(
            "anonymize",
            "de-identification on retrieval is not offered; the teaching collection serves "
            "de-identified copies",
        )
    for name in ("presentationUID", "presentationSeriesUID"):
        if single(query, name) is not None:
            raise bad_request(name, "presentation states are not applied by this server")


def choose_media(request: Request, default: str) -> str:
    """``contentType`` (a media type list, §9.1.2), else the Accept header; ``*/*`` and an
    absent value mean the category's default. WADO-URI answers one part, never multipart."""
    content_type = single(request.query_params, "contentType")
    parameter = "contentType" if content_type is not None else "Accept"
    text = content_type if content_type is not None else request.headers.get("accept")
    try:
        accepted = parse_accept(text)
    except NotAcceptableHeader as exc:
        raise bad_request(parameter, str(exc)) from exc
    for acceptable in accepted:
        if acceptable.multipart or acceptable.transfer_syntax is not None:
            continue
        if acceptable.essence == "*/*":
            return default
        for media in (default, *URI_MEDIA_TYPES):
            if acceptable.matches(media):
                return media
    raise not_acceptable(f"{parameter}: the URI service answers {', '.join(URI_MEDIA_TYPES)}")


def _window(query: QueryParams) -> Window | None:
    center, width = single(query, "windowCenter"), single(query, "windowWidth")
    if center is None and width is None:
        return None
    if center is None or width is None:
        missing = "windowCenter" if center is None else "windowWidth"
        raise bad_request(missing, "windowCenter and windowWidth go together")
    window = Window(
        decimal(center, "windowCenter", "center"), decimal(width, "windowWidth", "width")
    )
    problem = window.problem()
    if problem:
        raise bad_request("windowWidth", problem)
    return window


def _region(text: str) -> FractionRegion:
    """``region=xmin,ymin,xmax,ymax``, fractions of the image (0.0 to 1.0); an ill-defined
    region is a 400 (PS3.18 §9, "Region of the Image")."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) != 4:
        raise bad_request("region", f"{text!r} must be four numbers xmin,ymin,xmax,ymax")
    left, top, right, bottom = (decimal(part, "region", "coordinate") for part in parts)
    if not all(0.0 <= v <= 1.0 for v in (left, top, right, bottom)):
        raise bad_request("region", "coordinates are fractions of the image, 0.0 to 1.0")
    if not (left < right and top < bottom):
        raise bad_request("region", "xmin must be below xmax and ymin below ymax")
    return FractionRegion(left, top, right, bottom)


def render_params(query: QueryParams) -> RenderParams:
    rows, columns = single(query, "rows"), single(query, "columns")
    region = single(query, "region")
    quality = single(query, "imageQuality")
    annotation = single(query, "annotation")
    return RenderParams(
        window=_window(query),
        region=_region(region) if region is not None else None,
        width=dimension(columns, "columns", "columns") if columns is not None else None,
        height=dimension(rows, "rows", "rows") if rows is not None else None,
        quality=parse_quality(quality, "imageQuality") if quality is not None else DEFAULT_QUALITY,
        annotations=parse_annotation(annotation) if annotation is not None else (),
    )


def _frame_number(query: QueryParams, instance: StoredInstance) -> int | None:
    """``frameNumber`` (PS3.18 §9.5.2): one positive integer no larger than the number of
    frames, and only for a multi-frame image; a 400 otherwise."""
    text = single(query, "frameNumber")
    if text is None:
        return None
    number = integer(text, "frameNumber", "frame number")
    count = instance.number_of_frames
    if count < 2:
        raise bad_request("frameNumber", "the instance is not a multi-frame image")
    if not 1 <= number <= count:
        raise bad_request("frameNumber", f"{number} is not a frame number 1..{count}")
    return number


async def retrieve(request: Request) -> Response:
    """GET /wado (PS3.18 §9.4 Retrieve DICOM Instance, §9.5 Retrieve Rendered Instance)."""
    check_query_encoding(request)
    query = request.query_params
    request_type = single(query, "requestType")
    if request_type != "WADO":
        shown = "missing" if request_type is None else f"{request_type!r} is not supported"
        raise bad_request("requestType", f"{shown}; the URI service takes requestType=WADO")
    study_uid, series_uid, sop_uid = (
        _uid(query, "studyUID"),
        _uid(query, "seriesUID"),
        _uid(query, "objectUID"),
    )
    _refuse_unsupported(query)
    single(query, "charset")  # text rendering only; accepted once
    syntax = single(query, "transferSyntax")
    params = render_params(query)
    service: Service = request.app.state.service
    archive = service.archive_for(request)
    (instance,) = await in_thread(archive.instances, study_uid, series_uid, sop_uid)
    frame = _frame_number(query, instance)
    single_frame_image = instance.frames is not None and (
        instance.number_of_frames == 1 or frame is not None
    )
    media = choose_media(request, JPEG if single_frame_image else DICOM)
    if media == DICOM:
        for name in RENDERING_PARAMETERS:
            if single(query, name) is not None:
                raise bad_request(name, "applies to rendered media types, not application/dicom")
        return await _dicom(request, archive, instance, syntax)
    if syntax is not None:
        raise bad_request("transferSyntax", "applies to contentType=application/dicom only")
    return await _rendered(request, archive, instance, frame, media, params)


def _target_syntax(text: str | None) -> str:
    """``transferSyntax`` (PS3.18 §9.4.2.4): a transfer syntax UID (400 otherwise); absent,
    Explicit VR Little Endian."""
    if text is None:
        return EXPLICIT_VR_LITTLE_ENDIAN
    if not is_valid_uid(text) or not UID(text).is_transfer_syntax:
        raise bad_request("transferSyntax", f"{text!r} is not a transfer syntax UID")
    return text


async def _dicom(
    request: Request, archive: Archive, instance: StoredInstance, requested: str | None
) -> Response:
    service: Service = request.app.state.service
    target = _target_syntax(requested)
    stored = instance.transfer_syntax
    problem = transcode_problem(instance, target)
    if problem is not None:
        if requested is not None:
            raise not_acceptable(f"transferSyntax {target}: the instance is {problem}")
        target = stored
    tag = entity_tag("wado-uri", instance.sha256, "dicom", target)
    headers = {"ETag": str(tag), "Cache-Control": IMMUTABLE, "Vary": "Accept"}
    cached = precondition(request, tag, headers)
    if cached is not None:
        return cached
    if target == stored:
        stored_bytes = await primed(service.blobs.iterate(archive.stream(instance)))
        return StreamingResponse(stored_bytes, media_type=DICOM, headers=headers)
    data = await service.blobs.run(archive.read, instance)
    try:
        body = await in_thread(to_explicit_little_endian, data)
    except Unavailable as exc:
        if requested is not None:
            raise not_acceptable(str(exc)) from exc
        return Response(data, media_type=DICOM, headers=headers)
    return Response(body, media_type=DICOM, headers=headers)


async def _rendered(
    request: Request,
    archive: Archive,
    instance: StoredInstance,
    frame: int | None,
    media: str,
    params: RenderParams,
) -> Response:
    count = renderable(instance).number_of_frames
    if frame is not None:
        numbers = [frame]
    elif media == GIF and count > 1:
        numbers = list(range(1, count + 1))
    else:
        numbers = [1]
    choice = RenderedChoice(media, multipart=False, animated=len(numbers) > 1)
    tag = entity_tag(
        "wado-uri", instance.sha256, ",".join(map(str, numbers)), choice.key(), params.key()
    )
    headers = {"ETag": str(tag), "Cache-Control": IMMUTABLE, "Vary": "Accept"}
    cached = precondition(request, tag, headers)
    if cached is not None:
        return cached
    documents = await in_thread(
        archive.documents, instance.study_uid, instance.series_uid, instance.sop_uid
    )
    renderer = InstanceRenderer(archive, instance, documents[0])
    service: Service = request.app.state.service
    body = await service.blobs.run(renderer.encoded, numbers, params, media)
    return Response(body, media_type=media, headers=headers)
