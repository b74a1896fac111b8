"""The DICOMweb ASGI application: routes of PS3.18 §10 (Studies Service) over an Archive.

``create_app(archive, options)`` is all the composition root needs; the app keeps no global
state and opens nothing itself (the archive's stores are opened by whoever owns them).
"""

from __future__ import annotations

import logging
import uuid

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dicomweb import delete, frames, metadata, qido, rendered, stow, thumbnail, wado, wado_uri
from dicomweb.compression import GzipJsonMiddleware
from dicomweb.context import DicomwebOptions, Service
from dicomweb.errors import HttpError, archive_error_handler, http_error_handler, request_id
from dicomweb.lanes import BlobLane
from storage.archive import Archive
from storage.errors import ArchiveError

log = logging.getLogger(__name__)

STUDY = "/studies/{study}"
SERIES = STUDY + "/series/{series}"
INSTANCE = SERIES + "/instances/{instance}"

EXPOSED_HEADERS = [
    "Content-Type",
    "Content-Length",
    "Content-Location",
    "ETag",
    "Warning",
    "Location",
    "Link",
    "Content-Range",
    "Accept-Ranges",
    "Content-Encoding",
    "Vary",
    "X-Request-ID",
    "Retry-After",
]


def routes(*, read_only: bool = False) -> list[Route]:
    """The PS3.18 resources; a read-only root (the teaching collection) has no STOW-RS or
    DELETE route at all, so those methods are answered 405 before any handler runs."""
    get, post, delete_ = ["GET"], ["POST"], ["DELETE"]
    every = [
        Route("/studies", qido.search_studies, methods=get),
        Route("/studies", stow.store, methods=post),
        Route("/series", qido.search_series, methods=get),
        Route("/instances", qido.search_instances, methods=get),
        Route(STUDY, wado.retrieve, methods=get),
        Route(STUDY, stow.store, methods=post),
        Route(STUDY, delete.delete, methods=delete_),
        Route(STUDY + "/metadata", metadata.metadata, methods=get),
        Route(STUDY + "/series", qido.search_series, methods=get),
        Route(STUDY + "/instances", qido.search_instances, methods=get),
        Route(SERIES, wado.retrieve, methods=get),
        Route(SERIES, delete.delete, methods=delete_),
        Route(SERIES + "/metadata", metadata.metadata, methods=get),
        Route(SERIES + "/instances", qido.search_instances, methods=get),
        Route(INSTANCE, wado.retrieve, methods=get),
        Route(INSTANCE, delete.delete, methods=delete_),
        Route(INSTANCE + "/metadata", metadata.metadata, methods=get),
        Route(INSTANCE + "/frames/{frames}", frames.retrieve_frames, methods=get),
        Route(INSTANCE + "/bulk/{path:path}", frames.retrieve_bulk, methods=get),
        Route(STUDY + "/rendered", rendered.collection_rendered, methods=get),
        Route(SERIES + "/rendered", rendered.collection_rendered, methods=get),
        Route(INSTANCE + "/rendered", rendered.instance_rendered, methods=get),
        Route(INSTANCE + "/frames/{frames}/rendered", rendered.frames_rendered, methods=get),
        Route(STUDY + "/thumbnail", thumbnail.collection_thumbnail, methods=get),
        Route(SERIES + "/thumbnail", thumbnail.collection_thumbnail, methods=get),
        Route(INSTANCE + "/thumbnail", thumbnail.instance_thumbnail, methods=get),
        Route(INSTANCE + "/frames/{frames}/thumbnail", thumbnail.frames_thumbnail, methods=get),
        Route("/wado", wado_uri.retrieve, methods=get),
    ]
    if read_only:
        return [route for route in every if route.methods and "GET" in route.methods]
    return every


class RequestContextMiddleware:
    """Gives every request an id (logged with internal faults, echoed as X-Request-ID) and
    marks every response ``Cross-Origin-Resource-Policy: cross-origin`` so that viewers on
    other origins under COEP can load images and bulk data."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", rid.encode()))
                headers.append((b"cross-origin-resource-policy", b"cross-origin"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("request %s failed", request_id(request), exc_info=exc)
    return _internal_error(request)


def _internal_error(request: Request) -> Response:
    return PlainTextResponse(f"Internal error (request id {request_id(request)})", status_code=500)


class InternalErrors:
    """Answers an unexpected exception's 500 inside the CORS and request-id layers, so that a
    browser on another origin can read it and it carries its X-Request-ID (Starlette answers
    it from its outermost layer, outside both); then raises it on, as Starlette does, for the
    server to log. A response already under way is only cut short."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            if not started:  # logged by Starlette's layer, which calls unexpected_error
                await _internal_error(Request(scope))(scope, receive, send)
            raise


def create_app(
    archive: Archive, options: DicomwebOptions | None = None, blobs: BlobLane | None = None
) -> Starlette:
    """``blobs``: the lane blob I/O runs in, shared by the roots over the same stores (one
    of its own by default)."""
    options = options or DicomwebOptions()
    methods = (
        ["GET", "HEAD", "OPTIONS"]
        if options.read_only
        else ["GET", "HEAD", "POST", "DELETE", "OPTIONS"]
    )
    app = Starlette(
        routes=routes(read_only=options.read_only),
        middleware=[
            Middleware(RequestContextMiddleware),
            Middleware(
                CORSMiddleware,
                allow_origins=list(options.cors_origins),
                allow_methods=methods,
                allow_headers=["*"],
                expose_headers=EXPOSED_HEADERS,
                max_age=86400,
            ),
            Middleware(InternalErrors),
            Middleware(GzipJsonMiddleware),
        ],
        exception_handlers={
            HttpError: http_error_handler,
            ArchiveError: archive_error_handler,
            Exception: unexpected_error,
        },
    )
    app.state.service = Service(archive, options, blobs or BlobLane())
    return app
