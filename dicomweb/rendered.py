"""Rendered resources (PS3.18 §10.4.1.1.3), over the pipeline of :mod:`dicomweb.rendering`;
thumbnails (:mod:`dicomweb.thumbnail`) render through the same :class:`InstanceRenderer`.

Representations, by the number of images a target holds:

* one image (a single-frame instance, one frame): a bare image body;
* several images (a study or series: every frame of every instance with pixel data, in
  display order; a multi-frame instance; a frame list): ``multipart/related`` of image parts,
  each with a Content-Location naming its frame, when the client accepts it
  (``multipart/related; type="image/jpeg"`` or ``*/*``). A client that accepts a single
  image only gets, for one instance or frame list, an animated GIF when it asked for
  ``image/gif`` (the Multi-frame Image category of PS3.18 Table 8.7.4-1), and otherwise, for
  a multi-frame instance, its first frame (as the Single Frame Image category it asked for);
  a study, series or frame list then answers 406.

The default media type is image/jpeg; image/png and image/gif are offered too (Table 8.7.4-1);
ranges carrying a transfer-syntax are skipped (§8.7.4 forbids it on rendered media types).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from PIL import Image
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from dicomweb import multipart, uri
from dicomweb.context import Service
from dicomweb.errors import HttpError, not_acceptable
from dicomweb.frames import parse_frame_list
from dicomweb.httpcache import IMMUTABLE, REVALIDATE, entity_tag, precondition
from dicomweb.lanes import BlobLane, in_thread
from dicomweb.negotiation import Acceptable
from dicomweb.presentation import presentation
from dicomweb.render_params import rendered_params
from dicomweb.rendering import GIF, MEDIA_TYPES, RenderParams, encode, render_image
from dicomweb.requests import acceptables, instance_uids, path_uids
from storage.archive import Archive
from storage.errors import ArchiveError, NotFound, Unavailable
from storage.json_values import Document
from storage.pixels import PixelDescription
from storage.records import StoredInstance

log = logging.getLogger(__name__)

MAX_ANIMATED_FRAMES = 1000
"""An animated GIF is built in memory: longer loops are offered as multipart only."""


@dataclass(frozen=True)
class RenderedChoice:
    """How to answer: the image media type, multipart or not, and for a single-part answer
    to several images, an animated GIF of them all or the first image alone."""

    media_type: str
    multipart: bool
    animated: bool = False
    first_only: bool = False

    def key(self) -> str:
        return f"{self.media_type}|{int(self.multipart)}{int(self.animated)}{int(self.first_only)}"


def image_type(acceptable: Acceptable) -> str | None:
    """The first of our rendered media types the range covers (JPEG first: the default)."""
    if acceptable.transfer_syntax is not None:
        return None
    return next((m for m in MEDIA_TYPES if acceptable.matches(m)), None)


def choose_rendered(accepted: Iterable[Acceptable], count: int, *, scope: str) -> RenderedChoice:
    """The first acceptable way to send ``count`` images of a ``scope`` ("instance",
    "frames" or "many": a study or series); see the module docstring."""
    for acceptable in accepted:
        media = image_type(acceptable)
        if media is None:
            continue
        if acceptable.multipart or (acceptable.any_container and count > 1):
            return RenderedChoice(media, multipart=True)
        if count == 1:
            return RenderedChoice(media, multipart=False)
        if (
            acceptable.essence == GIF
            and scope in ("instance", "frames")
            and count <= MAX_ANIMATED_FRAMES
        ):
            return RenderedChoice(GIF, multipart=False, animated=True)
        if scope == "instance":
            return RenderedChoice(media, multipart=False, first_only=True)
    raise not_acceptable(
        f"{count} rendered image{'s' if count != 1 else ''}: ask for image/jpeg, image/png or "
        'image/gif, or for several images multipart/related; type="image/jpeg" (or png, gif)'
    )


# -- rendering work (runs in the thread pool) ------------------------------------------------


class InstanceRenderer:
    """Renders frames of one instance from its stored JSON and its frames, nothing else."""

    def __init__(self, archive: Archive, instance: StoredInstance, document: Document) -> None:
        self.archive = archive
        self.instance = instance
        self.document = document
        self.description = PixelDescription.from_json(document)

    def _read_bulk(self, path: str) -> bytes:
        i = self.instance
        value = self.archive.bulk(i.study_uid, i.series_uid, i.sop_uid, path).value
        if value is None:
            raise Unavailable(f"bulk data {path} is not a plain value")
        return value

    def check(self, params: RenderParams) -> None:
        """Refuse (400) a source region that does not fit, before decoding anything."""
        if params.region is not None:
            params.region.box(self.description.rows, self.description.columns)

    def image(self, number: int, params: RenderParams) -> tuple[Image.Image, float]:
        """Frame ``number`` rendered, and the frame time for animations (ms)."""
        i = self.instance
        decoded = self.archive.decoded_frame(
            i.study_uid, i.series_uid, i.sop_uid, number, self.description
        )
        try:
            pres = presentation(
                self.document, number, decoded.photometric_interpretation, self._read_bulk
            )
            return render_image(decoded, pres, params), pres.frame_time_ms
        except (ValueError, TypeError, IndexError, OverflowError) as exc:
            # Stored attributes that contradict the pixel data (a LUT shorter than its
            # descriptor says, a sample count the photometric does not have...).
            log.warning("frame %d of %s cannot be rendered", number, i.sop_uid, exc_info=exc)
            raise Unavailable(f"frame {number} cannot be rendered: {exc}") from exc

    def encoded(self, numbers: list[int], params: RenderParams, media_type: str) -> bytes:
        """One body: a single image, or an animated GIF of ``numbers``."""
        self.check(params)
        rendered = [self.image(n, params) for n in numbers]
        return encode([img for img, _ in rendered], media_type, params.quality, rendered[0][1])


def instance_document(archive: Archive, instance: StoredInstance) -> Document:
    (document,) = archive.documents(instance.study_uid, instance.series_uid, instance.sop_uid)
    return document


def renderable(instance: StoredInstance) -> StoredInstance:
    """The instance when its frames can be read; the reason otherwise."""
    if instance.frames is None or instance.number_of_frames < 1:
        if instance.frames_problem:
            raise Unavailable(f"the instance cannot be rendered: {instance.frames_problem}")
        raise NotFound(f"instance {instance.sop_uid} has no pixel data to render")
    return instance


def check_frames(instance: StoredInstance, numbers: list[int]) -> None:
    count = instance.number_of_frames
    for number in numbers:
        if number > count:
            raise NotFound(
                f"frame {number} does not exist: the instance has {count} "
                f"frame{'s' if count != 1 else ''}"
            )


# -- responses -------------------------------------------------------------------------------


def _frame_url(root: str, instance: StoredInstance, number: int, suffix: str) -> str:
    base = uri.instance_url(root, instance.study_uid, instance.series_uid, instance.sop_uid)
    return f"{base}/frames/{number}/{suffix}"


class Parts:
    """Rendered parts of several frames, lazily. A frame that fails after the first part
    was sent is left out (and logged), since the status line is already on its way; the
    failures are kept so that a target none of whose frames renders can say why."""

    def __init__(
        self,
        archive: Archive,
        targets: Iterable[tuple[StoredInstance, list[int]]],
        params: RenderParams,
        media_type: str,
        root: str,
    ) -> None:
        self.archive = archive
        self.targets = targets
        self.params = params
        self.media_type = media_type
        self.root = root
        self.failures: list[Exception] = []

    def __iter__(self) -> Iterator[tuple[dict[str, str], list[bytes]]]:
        for instance, numbers in self.targets:
            try:
                renderer = InstanceRenderer(
                    self.archive, instance, instance_document(self.archive, instance)
                )
                renderer.check(self.params)
            except (ArchiveError, HttpError) as exc:
                self._failed(instance, exc)
                continue
            for number in numbers:
                try:
                    image, frame_time = renderer.image(number, self.params)
                    body = encode([image], self.media_type, self.params.quality, frame_time)
                except ArchiveError as exc:
                    self._failed(instance, exc)
                    break
                headers = {
                    "Content-Type": self.media_type,
                    "Content-Location": _frame_url(self.root, instance, number, "rendered"),
                }
                yield headers, [body]

    def _failed(self, instance: StoredInstance, exc: Exception) -> None:
        log.warning("rendered image of %s left out: %s", instance.sop_uid, exc)
        self.failures.append(exc)


async def _multipart(lane: BlobLane, parts: Parts, headers: dict[str, str]) -> Response:
    """The first part is rendered before the response starts, so a target none of whose
    images renders gets a 4xx saying why rather than an empty 200 (and a store that does
    not answer, a 503). Rendering reads blobs: every part is made in the blob lane."""
    iterator = iter(parts)
    first = await lane.run(next, iterator, None)
    if first is None:
        raise parts.failures[0] if parts.failures else NotFound("nothing to render")

    def chained() -> Iterator[tuple[dict[str, str], list[bytes]]]:
        yield first
        yield from iterator

    boundary = multipart.new_boundary()
    return StreamingResponse(
        lane.iterate(multipart.iter_multipart(boundary, chained())),
        media_type=multipart.content_type(boundary, parts.media_type),
        headers=headers,
    )


async def _single(
    lane: BlobLane,
    archive: Archive,
    instance: StoredInstance,
    numbers: list[int],
    choice: RenderedChoice,
    params: RenderParams,
    headers: dict[str, str],
) -> Response:
    """One body: one image, or an animated GIF of ``numbers``."""
    document = await in_thread(instance_document, archive, instance)
    renderer = InstanceRenderer(archive, instance, document)
    body = await lane.run(renderer.encoded, numbers, params, choice.media_type)
    return Response(body, media_type=choice.media_type, headers=headers)


async def _render_instance(
    request: Request,
    archive: Archive,
    instance: StoredInstance,
    numbers: list[int],
    choice: RenderedChoice,
    params: RenderParams,
) -> Response:
    tag = entity_tag(
        "rendered",
        instance.sha256,
        ",".join(map(str, numbers)),
        choice.key(),
        params.key(),
        weak=choice.multipart,
    )
    headers = {"ETag": str(tag), "Cache-Control": IMMUTABLE, "Vary": "Accept"}
    cached = precondition(request, tag, headers)
    if cached is not None:
        return cached
    service: Service = request.app.state.service
    if not choice.multipart:
        return await _single(service.blobs, archive, instance, numbers, choice, params, headers)
    root = service.root(request)
    return await _multipart(
        service.blobs,
        Parts(archive, [(instance, numbers)], params, choice.media_type, root),
        headers,
    )


async def instance_rendered(request: Request) -> Response:
    """GET .../instances/{instance}/rendered (PS3.18 §10.4.1.1.3)."""
    service: Service = request.app.state.service
    study_uid, series_uid, sop_uid = instance_uids(request)
    params = rendered_params(request.query_params)
    accepted = acceptables(request)
    archive = service.archive_for(request)
    (instance,) = await in_thread(archive.instances, study_uid, series_uid, sop_uid)
    count = renderable(instance).number_of_frames
    choice = choose_rendered(accepted, count, scope="instance")
    numbers = [1] if choice.first_only else list(range(1, count + 1))
    return await _render_instance(request, archive, instance, numbers, choice, params)


async def frames_rendered(request: Request) -> Response:
    """GET .../instances/{instance}/frames/{frames}/rendered (PS3.18 §10.4.1.1.3)."""
    service: Service = request.app.state.service
    study_uid, series_uid, sop_uid = instance_uids(request)
    numbers = parse_frame_list(request.path_params["frames"])
    params = rendered_params(request.query_params)
    accepted = acceptables(request)
    archive = service.archive_for(request)
    (instance,) = await in_thread(archive.instances, study_uid, series_uid, sop_uid)
    check_frames(renderable(instance), numbers)
    choice = choose_rendered(accepted, len(numbers), scope="frames")
    return await _render_instance(request, archive, instance, numbers, choice, params)


async def collection_rendered(request: Request) -> Response:
    """GET /studies/{study}[/series/{series}]/rendered (PS3.18 §10.4.1.1.3): every frame of
    every instance with pixel data, in display order (series number, instance number);
    instances without pixel data (reports, for instance) have no rendered image."""
    service: Service = request.app.state.service
    study_uid, series_uid, _ = path_uids(request)
    params = rendered_params(request.query_params)
    accepted = acceptables(request)
    archive = service.archive_for(request)
    found = await in_thread(archive.instances, study_uid, series_uid)
    images = [i for i in found if i.frames is not None and i.number_of_frames > 0]
    what = f"series {series_uid}" if series_uid else f"study {study_uid}"
    if not images:
        raise NotFound(f"{what} has no instances with pixel data to render")
    count = sum(i.number_of_frames for i in images)
    choice = choose_rendered(accepted, count, scope="many")
    tag = entity_tag(
        "rendered-collection",
        *sorted(i.sha256 for i in images),
        choice.key(),
        params.key(),
        weak=choice.multipart,
    )
    headers = {"ETag": str(tag), "Cache-Control": REVALIDATE, "Vary": "Accept"}
    cached = precondition(request, tag, headers)
    if cached is not None:
        return cached
    targets = [(i, list(range(1, i.number_of_frames + 1))) for i in images]
    if not choice.multipart:
        instance, numbers = targets[0]
        return await _single(service.blobs, archive, instance, numbers, choice, params, headers)
    parts = Parts(archive, targets, params, choice.media_type, service.root(request))
    return await _multipart(service.blobs, parts, headers)
