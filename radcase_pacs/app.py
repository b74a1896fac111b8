"""App assembly: build the stores from settings and mount the protocol apps.

Mounted routes: ``/dicomweb`` (clinical DICOMweb root), ``/teaching/dicomweb`` (the teaching
collection, read-only), ``/api`` (the teaching JSON API), ``/healthz`` and ``/metrics``. The
stores are opened in the lifespan, so ``/healthz`` answers 200 only once the server can serve.

The clinical root is wrapped in the audit middleware: each request on it is recorded in the
audit log (``app.state.audit``, kept in the clinical index's database) before it is served,
or refused with 503 when the entry cannot be written. The teaching root and the API serve no
clinical data and are not audited; the teaching root is wrapped in the learner view, which
keeps learners to published cases.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from dicomweb.app import create_app as create_dicomweb_app
from dicomweb.context import DicomwebOptions
from radcase_pacs.audit.api import audit_router
from radcase_pacs.audit.changes import ChangeAuditMiddleware
from radcase_pacs.audit.middleware import AuditMiddleware
from radcase_pacs.audit.store import AuditLog
from radcase_pacs.auth.layer import AuthLayer, login_recorder
from radcase_pacs.auth.middleware import AuthMiddleware
from radcase_pacs.learner_view import LearnerView
from radcase_pacs.metrics import Metrics, MetricsMiddleware, measured
from radcase_pacs.settings import Settings, load_settings
from radcase_pacs.teaching_layer import (
    build_case_service,
    build_learning_service,
    identify,
    with_intake,
)
from storage.archive import Archive
from storage.errors import ArchiveError
from storage.urls import open_blobs, open_cache, open_database, open_index
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


def build_audit_log(settings: Settings) -> AuditLog:
    """The audit log, in the clinical index's database (not opened)."""
    return AuditLog(open_database(settings.resolved_index_url))


def create_app(
    settings: Settings,
    archive: Archive | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Starlette:
    """The whole server. ``clock`` is the teaching layer's time (quiz answer times, review
    schedules): tests pass their own to move through days without waiting."""
    metrics = Metrics.create()
    clinical = archive or build_archive(settings)
    cases = build_case_service(settings, clinical)
    archive = measured(with_intake(clinical, cases), metrics)
    audit = build_audit_log(settings)
    auth = AuthLayer.build(settings, clinical.cache)
    learning = build_learning_service(settings, cases, auth.users, clock)
    api = create_api(cases, learning, identify=identify(settings))
    api.include_router(auth.router(login_recorder(audit, settings.tenant)))
    api.include_router(audit_router(audit, lambda request: request.state.tenant))
    ready = {"value": False}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # The audit log first and closed last: nothing is served while it cannot record.
        await run_in_threadpool(audit.open)
        await run_in_threadpool(archive.open)
        await run_in_threadpool(auth.open)
        await run_in_threadpool(cases.open)
        await run_in_threadpool(learning.open)
        ready["value"] = True
        try:
            yield
        finally:
            ready["value"] = False
            await run_in_threadpool(learning.close)
            await run_in_threadpool(cases.close)
            await run_in_threadpool(auth.close)
            await run_in_threadpool(archive.close)
            await run_in_threadpool(audit.close)

    async def healthz(request: Request) -> JSONResponse:
        if not ready["value"]:
            return JSONResponse({"status": "starting"}, status_code=503)
        try:
            await run_in_threadpool(audit.ping)
            await run_in_threadpool(archive.ping)
            await run_in_threadpool(cases.store.ping)
        except ArchiveError as exc:
            return JSONResponse({"status": "unavailable", "reason": str(exc)}, status_code=503)
        return JSONResponse({"status": "ok"})

    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics.endpoint(), methods=["GET"]),
            Mount(
                "/dicomweb",
                app=AuditMiddleware(
                    create_dicomweb_app(archive, dicomweb_options(settings)),
                    audit,
                    settings.tenant,
                ),
            ),
            Mount(
                "/teaching/dicomweb",
                app=LearnerView(
                    create_dicomweb_app(
                        cases.teaching, dicomweb_options(settings, "/teaching/dicomweb")
                    ),
                    cases.store.published_study_uids,
                ),
            ),
            Mount("/api", app=ChangeAuditMiddleware(api, audit, settings.tenant)),
        ],
        middleware=[
            Middleware(MetricsMiddleware, metrics=metrics),
            Middleware(
                AuthMiddleware,
                authenticator=auth.authenticator,
                home_tenant=settings.tenant,
                open_tenant=auth.open_tenant,
                cors_origins=settings.cors_origin_list,
            ),
        ],
        lifespan=lifespan,
    )
    app.state.metrics = metrics
    app.state.audit = audit
    app.state.auth = auth
    return app


def app_from_environment() -> Starlette:
    """The app of one worker process of ``serve --workers N`` (uvicorn imports it by name):
    settings from the environment the supervising process exported."""
    return create_app(load_settings(None))
