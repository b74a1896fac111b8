"""Thumbnail resources (PS3.18 §10.4.1.1.4: "the origin server determines the pixel content").

A thumbnail is one small image: of an instance, its middle frame; of a frame list, its first
frame; of a series or study, see :func:`representative`. It is rendered by
:class:`dicomweb.rendered.InstanceRenderer` and kept as bytes in the archive's cache of
derived bytes (:meth:`storage.archive.Archive.cached`), keyed by the instance's SHA-256: a
stored instance never changes, so the key can never be stale.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.requests import Request
from starlette.responses import Response

from dicomweb.context import Service
from dicomweb.errors import not_acceptable
from dicomweb.frames import parse_frame_list
from dicomweb.httpcache import IMMUTABLE, REVALIDATE, entity_tag, precondition
from dicomweb.lanes import in_thread
from dicomweb.negotiation import Acceptable
from dicomweb.render_params import thumbnail_params
from dicomweb.rendered import (
    InstanceRenderer,
    check_frames,
    image_type,
    instance_document,
    renderable,
)
from dicomweb.rendering import RenderParams
from dicomweb.requests import acceptables, instance_uids, path_uids
from storage.archive import Archive
from storage.errors import NotFound
from storage.records import StoredInstance

THUMBNAIL_TTL = 30 * 24 * 3600.0


def choose_thumbnail(accepted: Iterable[Acceptable]) -> str:
    """A thumbnail is one image (PS3.18 §10.4.1.1.4): the first acceptable single-part
    rendered media type."""
    for acceptable in accepted:
        media = image_type(acceptable)
        if media is not None and not acceptable.multipart:
            return media
    raise not_acceptable("a thumbnail is available as image/jpeg, image/png or image/gif")


def representative(instances: list[StoredInstance]) -> tuple[StoredInstance, int]:
    """The instance and frame that stand for a study or series in its thumbnail.

    The series holding the most frames (the first in display order on a tie), then its
    middle instance by Instance Number, then that instance's middle frame. Why: localizers
    and scouts are short series that usually come first, so "the first series" often shows a
    scout; the largest series is the main acquisition, and the middle of a stack or loop
    shows anatomy where its first and last images often show its edge.
    """
    images = [i for i in instances if i.frames is not None and i.number_of_frames > 0]
    if not images:
        raise NotFound("no instance with pixel data to make a thumbnail of")
    series: dict[str, list[StoredInstance]] = {}
    for instance in images:  # already in display order (series number, instance number)
        series.setdefault(instance.series_uid, []).append(instance)
    chosen = max(series.values(), key=lambda group: sum(i.number_of_frames for i in group))
    instance = chosen[(len(chosen) - 1) // 2]
    return instance, (instance.number_of_frames + 1) // 2


def _thumbnail_bytes(
    archive: Archive, instance: StoredInstance, number: int, params: RenderParams, media: str
) -> bytes:
    """Frame ``number`` of ``instance`` as a ``media`` thumbnail, keyed by everything that
    changes the output."""

    def render() -> bytes:
        renderer = InstanceRenderer(archive, instance, instance_document(archive, instance))
        return renderer.encoded([number], params, media)

    parts = (instance.sha256, str(number), media, params.key())
    return archive.cached("thumb", parts, render, THUMBNAIL_TTL)


async def _thumbnail(
    request: Request,
    archive: Archive,
    instance: StoredInstance,
    number: int,
    cache_control: str,
) -> Response:
    params = thumbnail_params(request.query_params)
    media = choose_thumbnail(acceptables(request))
    tag = entity_tag("thumbnail", instance.sha256, str(number), media, params.key())
    headers = {"ETag": str(tag), "Cache-Control": cache_control, "Vary": "Accept"}
    cached = precondition(request, tag, headers)
    if cached is not None:
        return cached
    service: Service = request.app.state.service
    body = await service.blobs.run(_thumbnail_bytes, archive, instance, number, params, media)
    return Response(body, media_type=media, headers=headers)


async def collection_thumbnail(request: Request) -> Response:
    """GET /studies/{study}[/series/{series}]/thumbnail (PS3.18 §10.4.1.1.4). The choice
    of image can change when instances are added, so caches revalidate (no-cache) against an
    ETag derived from the chosen instance."""
    service: Service = request.app.state.service
    study_uid, series_uid, _ = path_uids(request)
    archive = service.archive_for(request)
    found = await in_thread(archive.instances, study_uid, series_uid)
    instance, number = representative(found)
    return await _thumbnail(request, archive, instance, number, REVALIDATE)


async def instance_thumbnail(request: Request) -> Response:
    """GET .../instances/{instance}/thumbnail (PS3.18 §10.4.1.1.4): the middle frame."""
    service: Service = request.app.state.service
    study_uid, series_uid, sop_uid = instance_uids(request)
    archive = service.archive_for(request)
    (instance,) = await in_thread(archive.instances, study_uid, series_uid, sop_uid)
    number = (renderable(instance).number_of_frames + 1) // 2
    return await _thumbnail(request, archive, instance, number, IMMUTABLE)


async def frames_thumbnail(request: Request) -> Response:
    """GET .../frames/{frames}/thumbnail (PS3.18 §10.4.1.1.4): the first frame listed."""
    service: Service = request.app.state.service
    study_uid, series_uid, sop_uid = instance_uids(request)
    numbers = parse_frame_list(request.path_params["frames"])
    archive = service.archive_for(request)
    (instance,) = await in_thread(archive.instances, study_uid, series_uid, sop_uid)
    check_frames(renderable(instance), numbers)
    return await _thumbnail(request, archive, instance, numbers[0], IMMUTABLE)
