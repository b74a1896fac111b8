"""The web app's assembly: its routes over an open deployment, mounted at ``/`` after the
protocol roots (``/dicomweb``, ``/teaching/dicomweb``, ``/api``), which it never shadows.

Who may open which page is the deployment's access policy (:mod:`radcase_pacs.auth.policy`,
the page rules), applied by the auth middleware in front of everything; the handlers here
scope what they read by the signed-in person's institution and name.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from radcase_pacs.deployment import Deployment
from radcase_pacs.web.admin.accounts import admin_routes
from radcase_pacs.web.admin.audit import audit_routes
from radcase_pacs.web.admin.status import status_routes
from radcase_pacs.web.context import Web
from radcase_pacs.web.learn.quiz_pages import learner_routes
from radcase_pacs.web.learn.today import today_routes
from radcase_pacs.web.signin import signin_routes
from radcase_pacs.web.teach.cases import case_routes
from radcase_pacs.web.teach.cohorts import cohort_routes
from radcase_pacs.web.teach.questions import question_routes
from radcase_pacs.web.teach.review import review_routes
from radcase_pacs.web.teach.studies import study_routes
from radcase_pacs.web.templating import Pages, StaticFiles
from storage.errors import ReadOnly
from teaching.cases.errors import NotFound


def create_web_app(deployment: Deployment) -> Starlette:
    static = StaticFiles()
    pages = Pages(
        static,
        lambda: deployment.auth.sessions.signing_key,
        auth_on=deployment.settings.auth == "on",
        home_tenant=deployment.settings.tenant,
    )
    web = Web(deployment, pages)

    async def static_file(request: Request) -> Response:
        return static.response(request)

    async def refused(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        detail = exc.detail if isinstance(exc, HTTPException) else "There is no such page."
        return pages.render(request, "error.html", {"message": detail}, status_code=status)

    async def read_only(request: Request, exc: Exception) -> Response:
        """A page that would write during a switch to other stores: 503, which the server
        sends with Retry-After (:mod:`radcase_pacs.mode.http`)."""
        assert isinstance(exc, ReadOnly)
        message = f"The server is busy for a moment. Try again in {exc.retry_after} seconds."
        return pages.render(request, "error.html", {"message": message}, status_code=503)

    return Starlette(
        routes=[
            Route("/static/{path:path}", static_file, methods=["GET"]),
            *signin_routes(web),
            *today_routes(web),
            *admin_routes(web),
            *audit_routes(web),
            *status_routes(web),
            *learner_routes(web),
            *cohort_routes(web),
            *study_routes(web),
            *case_routes(web),
            *review_routes(web),
            *question_routes(web),
        ],
        exception_handlers={HTTPException: refused, NotFound: refused, ReadOnly: read_only},
    )
