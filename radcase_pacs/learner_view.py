"""Learners reach the published teaching cases only.

The teaching collection holds the de-identified copy of every case of an institution, but a
case is meant for learners only once an educator has published it: until then it can carry
unreviewed material (instances waiting for the burned-in text review, a diagnosis pathology
has not confirmed). Educators, administrators and service accounts keep seeing every case of
their institution; with authentication off every request acts as an admin.

For a learner, this middleware in front of the teaching DICOMweb root puts the published
studies in the request's state (``visible_studies``); the DICOMweb layer then reads through an
archive view restricted to them, which the index applies as one SQL condition on every read.
Every resource (QIDO-RS, WADO-RS, rendered, thumbnails, WADO-URI) therefore answers for a draft
exactly as for a study that does not exist, without this module knowing any URL.

The published set is read on each learner request, so publishing or deleting a case takes
effect at once. When it cannot be read the request is refused (503): a learner is never
served a study because the check failed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from dicomweb.errors import retry_after
from radcase_pacs.auth.principal import Role, principal_of
from storage.errors import BackendFailure

log = logging.getLogger(__name__)

Published = Callable[[str], frozenset[str]]
"""The teaching study UIDs of a tenant's published cases."""

UNAVAILABLE = "The teaching collection could not complete the request (nothing was served).\n"


class LearnerView:
    """Wraps the teaching DICOMweb app; ``published(tenant)`` (called in a worker thread: it
    reads a database) gives the studies a learner of that tenant may reach."""

    def __init__(self, app: ASGIApp, published: Published) -> None:
        self.app = app
        self.published = published
        # The route table (access rules, the authorization matrix) reaches the mounted app's
        # routes through the wrapping middleware.
        self.routes: list[BaseRoute] = list(getattr(app, "routes", ()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal = principal_of(scope)
        if scope["type"] != "http" or principal is None or principal.role is not Role.LEARNER:
            await self.app(scope, receive, send)
            return
        try:
            published = await run_in_threadpool(self.published, principal.tenant)
        except BackendFailure as exc:
            log.error(
                "published teaching studies of %s could not be read: %s", principal.tenant, exc
            )
            await PlainTextResponse(UNAVAILABLE, 503, retry_after(exc))(scope, receive, send)
            return
        scope.setdefault("state", {})["visible_studies"] = published
        await self.app(scope, receive, send)
