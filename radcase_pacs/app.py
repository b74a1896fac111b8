"""App assembly: build the stores from settings and mount the protocol apps.

Mounted routes: ``/dicomweb`` (clinical DICOMweb root), ``/healthz`` and ``/metrics``. The
stores are opened in the lifespan, so ``/healthz`` answers 200 only once the server can serve.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from dicomweb.app import create_app as create_dicomweb_app
from dicomweb.context import DicomwebOptions
from radcase_pacs.metrics import Metrics, MetricsMiddleware, measured
from radcase_pacs.settings import Settings, load_settings
from storage.archive import Archive
from storage.errors import ArchiveError
from storage.urls import open_blobs, open_cache, open_index


def build_archive(settings: Settings) -> Archive:
    return Archive(
        index=open_index(settings.resolved_index_url),
        blobs=open_blobs(settings.resolved_blob_url, s3_endpoint_url=settings.s3_endpoint_url),
        cache=open_cache(settings.cache_url),
        tenant=settings.tenant,
    )


def dicomweb_options(settings: Settings) -> DicomwebOptions:
    return DicomwebOptions(
        base_url=f"{settings.base_url.rstrip('/')}/dicomweb" if settings.base_url else None,
        cors_origins=settings.cors_origin_list,
        max_results=settings.qido_max_results,
        max_request_bytes=settings.max_request_bytes,
        max_part_bytes=settings.max_part_bytes,
    )


def create_app(settings: Settings, archive: Archive | None = None) -> Starlette:
    metrics = Metrics.create()
    archive = measured(archive or build_archive(settings), metrics)
    ready = {"value": False}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await run_in_threadpool(archive.open)
        ready["value"] = True
        try:
            yield
        finally:
            ready["value"] = False
            await run_in_threadpool(archive.close)

    async def healthz(request: Request) -> JSONResponse:
        if not ready["value"]:
            return JSONResponse({"status": "starting"}, status_code=503)
        try:
            await run_in_threadpool(archive.ping)
        except ArchiveError as exc:
            return JSONResponse({"status": "unavailable", "reason": str(exc)}, status_code=503)
        return JSONResponse({"status": "ok"})

    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics.endpoint(), methods=["GET"]),
            Mount("/dicomweb", app=create_dicomweb_app(archive, dicomweb_options(settings))),
        ],
        middleware=[Middleware(MetricsMiddleware, metrics=metrics)],
        lifespan=lifespan,
    )
    app.state.metrics = metrics
    return app


def app_from_environment() -> Starlette:
    """The app of one worker process of ``serve --workers N`` (uvicorn imports it by name):
    settings from the environment the supervising process exported."""
    return create_app(load_settings(None))
