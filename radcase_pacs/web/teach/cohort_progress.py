"""A group's progress page (``/teach/groups/{group_id}/progress``): per learner, per case
with each case's measured difficulty, the most missed cases, and the CSV export of the
members' review logs (``/api/groups/{group_id}/progress.csv``, which the session cookie
reaches).

The figures are the JSON API's (:class:`~teaching.learning.models.CohortProgress`, from the
same cohort service), computed from the review log at the time of asking. The case table is
sorted on the server (``?sort=``), so it sorts without scripts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from radcase_pacs.web.context import Web, who
from radcase_pacs.web.teach.cohort_forms import checked_id
from teaching.cases.errors import NotFound
from teaching.learning.models import CaseDifficulty

SORTS: dict[str, tuple[str, Callable[[CaseDifficulty], Any]]] = {
    "difficulty": (
        "FSRS difficulty, hardest first",
        lambda c: (-(c.difficulty or 0.0), -c.error_rate, c.title),
    ),
    "error_rate": ("error rate, highest first", lambda c: (-c.error_rate, -c.wrong, c.title)),
    "reviews": ("answers, most first", lambda c: (-c.reviews, c.title)),
    "learners": ("learners, most first", lambda c: (-c.learners, c.title)),
    "title": ("title, A to Z", lambda c: (c.title.casefold(), c.case_id)),
}


def progress_routes(web: Web) -> list[Route]:
    cohorts = web.deployment.learning.cohorts

    async def progress(request: Request) -> Response:
        group_id = checked_id(request, "group_id", "group")
        tenant = who(request).tenant
        sort = request.query_params.get("sort", "difficulty")
        if sort not in SORTS:
            sort = "difficulty"
        try:
            group = await run_in_threadpool(cohorts.group, tenant, group_id)
            report = await run_in_threadpool(cohorts.cohort, tenant, group_id)
        except NotFound:
            raise HTTPException(404, "There is no such group.") from None
        label, key = SORTS[sort]
        context = {
            "group": group,
            "report": report,
            "cases": sorted(report.by_case, key=key),
            "sort": sort,
            "sort_label": label,
            "sorts": SORTS,
            "export": f"/api/groups/{group_id}/progress.csv",
        }
        return web.pages.render(request, "teach_progress.html", context)

    return [Route("/teach/groups/{group_id}/progress", progress, methods=["GET"])]
