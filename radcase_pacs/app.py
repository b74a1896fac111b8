"""App assembly: mount the protocol apps over an open :class:`~radcase_pacs.deployment.Deployment`.

Mounted routes: ``/dicomweb`` (clinical DICOMweb root), ``/teaching/dicomweb`` (the teaching
collection, read-only), ``/api`` (the teaching JSON API), ``/healthz`` (readiness, and
liveness with ``?probe=live``: :mod:`radcase_pacs.health`), ``/metrics``, and the web app for
people at ``/`` (after the others, which it never shadows). The
app builds no store: the deployment is opened before it (``serve``, the tests) or by the
worker's lifespan (:func:`app_from_environment`), so ``/healthz`` answers only once the server
can serve.

The clinical root is wrapped in the audit middleware: each request on it is recorded in the
audit log before it is served, or refused with 503 when the entry cannot be written. Both
DICOMweb roots share one lane of worker threads for blob I/O (:mod:`dicomweb.lanes`), and
what their outer layers answer themselves carries CORS headers (:mod:`dicomweb.cors`). The
teaching root and the API serve no clinical data and are not audited; the teaching root is
wrapped in the learner view, which keeps learners to published cases.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

from dicomweb.app import EXPOSED_HEADERS
from dicomweb.app import create_app as create_dicomweb_app
from dicomweb.context import DicomwebOptions
from dicomweb.cors import CorsFallback
from dicomweb.lanes import BlobLane
from radcase_pacs.audit.api import audit_router
from radcase_pacs.audit.changes import ChangeAuditMiddleware
from radcase_pacs.audit.middleware import AuditMiddleware
from radcase_pacs.auth.layer import login_recorder
from radcase_pacs.auth.middleware import AuthMiddleware
from radcase_pacs.auth.principal import principal_of
from radcase_pacs.deployment import Deployment, open_deployment
from radcase_pacs.learner_view import LearnerView
from radcase_pacs.metrics import IngestEdge, MetricsMiddleware
from radcase_pacs.mode.http import RetryAfterMiddleware
from radcase_pacs.settings import Settings, load_settings
from radcase_pacs.web.app import create_web_app
from teaching.api import Caller, create_api

log = logging.getLogger(__name__)
DICOMWEB_ROOTS = ("/dicomweb", "/teaching/dicomweb")


def dicomweb_options(settings: Settings, root: str = "/dicomweb") -> DicomwebOptions:
    return DicomwebOptions(
        base_url=f"{settings.base_url.rstrip('/')}{root}" if settings.base_url else None,
        cors_origins=settings.cors_origin_list,
        max_results=settings.qido_max_results,
        max_request_bytes=settings.max_request_bytes,
        max_part_bytes=settings.max_part_bytes,
        read_only=root != "/dicomweb",
    )


def create_app(
    deployment: Deployment, *, draining: Callable[[], bool] = lambda: False
) -> Starlette:
    """The whole server over an open deployment. ``draining`` tells whether the process is
    shutting down (:mod:`radcase_pacs.drain`): ``/healthz`` then answers 503 so that a load
    balancer stops sending it work while it still serves what comes."""
    settings = deployment.settings
    audit = deployment.audit
    cases = deployment.cases
    api = create_api(cases, deployment.learning, identify=identify(settings))
    api.include_router(deployment.auth.router(login_recorder(audit, settings.tenant)))
    api.include_router(audit_router(audit, lambda request: request.state.tenant))

    lane = BlobLane(settings.blob_threads, budget=settings.s3_budget)
    health = deployment.health

    async def healthz(request: Request) -> JSONResponse:
        """Readiness (the default) or liveness (``?probe=live``): see radcase_pacs.health.
        A draining process is alive but not ready: the balancer stops sending it work."""
        probe = request.query_params.get("probe", "ready")
        if probe == "live":
            return JSONResponse({"status": "ok", "blob_threads": lane.statistics()})
        if probe != "ready":
            return JSONResponse({"detail": "probe: ready (the default) or live"}, 400)
        if draining():
            return JSONResponse({"status": "draining"}, status_code=503)
        report = await health.report()
        body = {**report.as_json(), "blob_threads": lane.statistics()}
        return JSONResponse(body, status_code=200 if report.ready else 503)

    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", deployment.metrics.endpoint(), methods=["GET"]),
            Mount(
                "/dicomweb",
                app=AuditMiddleware(
                    create_dicomweb_app(
                        deployment.clinical_via(IngestEdge.STOW_RS),
                        dicomweb_options(settings),
                        blobs=lane,
                    ),
                    audit,
                    settings.tenant,
                ),
            ),
            Mount(
                "/teaching/dicomweb",
                app=LearnerView(
                    create_dicomweb_app(
                        deployment.teaching,
                        dicomweb_options(settings, "/teaching/dicomweb"),
                        blobs=lane,
                    ),
                    cases.store.published_study_uids,
                ),
            ),
            Mount("/api", app=ChangeAuditMiddleware(api, audit, settings.tenant)),
            Mount("", app=create_web_app(deployment)),
        ],
        middleware=[
            # Outermost: what the audit log and the learner view answer themselves (a 503
            # when their database fails) is readable by a viewer on another origin.
            Middleware(
                CorsFallback,
                origins=settings.cors_origin_list,
                exposed=EXPOSED_HEADERS,
                paths=DICOMWEB_ROOTS,
            ),
            Middleware(RetryAfterMiddleware, gate=deployment.gate),
            Middleware(MetricsMiddleware, metrics=deployment.metrics),
            Middleware(
                AuthMiddleware,
                authenticator=deployment.auth.authenticator,
                home_tenant=settings.tenant,
                open_tenant=deployment.auth.open_tenant,
                cors_origins=settings.cors_origin_list,
            ),
        ],
    )
    app.state.deployment = deployment
    app.state.metrics = deployment.metrics
    app.state.audit = audit
    app.state.auth = deployment.auth
    return app


def identify(settings: Settings) -> Callable[[Request], Caller]:
    """Who calls the teaching API: the user and institution an authentication layer put on
    the request, else the server's own institution."""

    def caller(request: Request) -> Caller:
        state = request.state
        principal = principal_of(request.scope)
        return Caller(
            user=getattr(state, "user", None) or "anonymous",
            tenant=getattr(state, "tenant", None) or settings.tenant,
            role=principal.role.value if principal else None,
        )

    return caller


class DeploymentApp:
    """The app of one worker process of ``serve --workers N``: its lifespan opens the
    process's own deployment, from the settings the supervising process exported, then serves
    :func:`create_app` over it until shutdown."""

    def __init__(self, settings: Settings, draining: Callable[[], bool] = lambda: False) -> None:
        self.settings = settings
        self.draining = draining
        self.app: Starlette | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if self.app is None:
            await PlainTextResponse("starting", 503, {"Retry-After": "1"})(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        with ExitStack() as stack:
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    try:
                        opened = open_deployment(self.settings)
                        deployment = await run_in_threadpool(stack.enter_context, opened)
                    except Exception as exc:
                        log.exception("the deployment could not be opened")
                        await send({"type": "lifespan.startup.failed", "message": str(exc)})
                        return
                    self.app = create_app(deployment, draining=self.draining)
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    self.app = None
                    await run_in_threadpool(stack.close)
                    await send({"type": "lifespan.shutdown.complete"})
                    return


def app_from_environment(draining: Callable[[], bool] = lambda: False) -> DeploymentApp:
    """The app of a worker process of ``serve --workers N``."""
    return DeploymentApp(load_settings(None), draining)
