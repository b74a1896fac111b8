"""The program's settings page (``/teach/program``): desired retention, daily limits, the
fast-answer threshold and the time zone, validated by the API's own model
(:class:`~teaching.learning.models.ProgramSettings`, as ``PUT /api/program`` is) and audited
before they change.

The settings are the institution's: every learner's schedule (FSRS's desired retention),
queue (the daily limits), Easy ratings and day boundaries follow them from the next answer.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import available_timezones

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from radcase_pacs.web.admin.accounts import parsed
from radcase_pacs.web.changes import record_change
from radcase_pacs.web.context import Web, who
from radcase_pacs.web.forms import field, submitted
from teaching.learning.models import ProgramSettings

SAVED = "Settings saved. They apply from each learner's next answer."
FIELDS = ("desired_retention", "new_per_day", "reviews_per_day", "fast_answer_seconds", "timezone")
TIMEZONES = sorted(available_timezones() | {"UTC"})


def program_routes(web: Web) -> list[Route]:
    authoring = web.deployment.learning.authoring

    async def page(
        request: Request, extra: dict[str, Any] | None = None, status: int = 200
    ) -> Response:
        current = await run_in_threadpool(authoring.program, who(request).tenant)
        saved = request.query_params.get("notice") == "saved"
        context: dict[str, Any] = {
            "given": current.model_dump(),
            "timezones": TIMEZONES,
            "errors": [],
            "notice": "Settings saved. They apply from each learner's next answer."
            if saved
            else "",
            **(extra or {}),
        }
        return web.pages.render(request, "teach_program.html", context, status_code=status)

    async def show(request: Request) -> Response:
        return await page(request)

    async def change(request: Request) -> Response:
        form = await submitted(request, web.signing_key)
        given = {name: field(form, name, limit=64).strip() for name in FIELDS}
        body, errors = parsed(ProgramSettings, given)
        if errors:
            return await page(request, {"errors": errors, "given": given}, 400)
        settings: ProgramSettings = body
        detail = " ".join(f"{k}={v}" for k, v in settings.model_dump().items())
        await record_change(web, request, "program.update", detail)
        await run_in_threadpool(authoring.set_program, who(request).tenant, settings)
        return RedirectResponse("/teach/program?notice=saved", 303)

    return [
        Route("/teach/program", show, methods=["GET"]),
        Route("/teach/program", change, methods=["POST"]),
    ]
