"""App assembly: build the stores from settings and mount the protocol apps.

Mounted routes: ``/dicomweb`` (clinical DICOMweb root), ``/teaching/dicomweb`` (the teaching
collection, read-only), ``/api`` (the teaching JSON API), ``/healthz`` and ``/metrics``. The
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
from radcase_pacs.teaching_layer import build_case_service, identify, with_intake
from storage.archive import Archive
from storage.errors import ArchiveError
from storage.urls import open_blobs, open_cache, open_index
from teaching.api import create_api


def build_archive(settings: Settings) -> Archive:
    return Archive(
        index=open_index(settings.resolved_index_url),
        blobs=open_blobs(settings.resolved_blob_url, s3_endpoint_url=settings.s3_endpoint_url),
        cache=open_cache(settings.cache_url),
        tenant=settings.tenant,
    )


def dicomweb_options(settings: Settings, root: str = "/dicomweb") -> DicomwebOptions:
    return DicomwebOptions(
        base_url=f"{settings.base_url.rstrip('/')}{root}" if settings.base_url else None,
        cors_origins=settings.cors_origin_list,
        max_results=settings.qido_max_results,
        max_request_bytes=settings.max_request_bytes,
        max_part_bytes=settings.max_part_bytes,
        read_only=root != "/dicomweb",
    )


def create_app(settings: Settings, archive: Archive | None = None) -> Starlette:
    metrics = Metrics.create()
    clinical = archive or build_archive(settings)
    cases = build_case_service(settings, clinical)
    archive = measured(with_intake(clinical, cases), metrics)
    ready = {"value": False}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await run_in_threadpool(archive.open)
        await run_in_threadpool(cases.open)
        ready["value"] = True
        try:
            yield
        finally:
            ready["value"] = False
            await run_in_threadpool(cases.close)
            await run_in_threadpool(archive.close)

    async def healthz(request: Request) -> JSONResponse:
        if not ready["value"]:
            return JSONResponse({"status": "starting"}, status_code=503)
        try:
            await run_in_threadpool(archive.ping)
            await run_in_threadpool(cases.store.ping)
        except ArchiveError as exc:
            return JSONResponse({"status": "unavailable", "reason": str(exc)}, status_code=503)
        return JSONResponse({"status": "ok"})

    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics.endpoint(), methods=["GET"]),
            Mount("/dicomweb", app=create_dicomweb_app(archive, dicomweb_options(settings))),
            Mount(
                "/teaching/dicomweb",
                app=create_dicomweb_app(
                    cases.teaching, dicomweb_options(settings, "/teaching/dicomweb")
                ),
            ),
            Mount("/api", app=create_api(cases, identify=identify(settings))),
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
