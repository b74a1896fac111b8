"""Today: what a resident should do now, and the way into a quiz.

The page shows the due reviews and the new questions left within the program's daily limits
(the same queue ``POST /api/quiz/sessions`` with ``source: due`` starts), the assignments of
the learner's groups with their due dates, the streak, and practice by the IHE TCE category,
the modality or the level of the published cases. Every start is a form post creating a
quiz session, then the session's first unanswered question.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from radcase_pacs.web.context import Web, who
from radcase_pacs.web.forms import field, submitted
from teaching.cases.codes import CATEGORIES, LEVELS
from teaching.cases.errors import CaseError
from teaching.learning.models import (
    FromAssignment,
    FromDue,
    FromTags,
    SessionStart,
    TagFilter,
)


@dataclass(frozen=True)
class Choice:
    """One practice filter: its value, its label and how many published cases carry it."""

    value: str
    label: str
    cases: int


def _choices(counts: Counter[str], labels: dict[str, str]) -> list[Choice]:
    return [Choice(value, labels.get(value, value), n) for value, n in sorted(counts.items())]


def item_url(session_id: str, position: int) -> str:
    return f"/sessions/{session_id}/items/{position}"


def today_routes(web: Web) -> list[Route]:
    learning = web.deployment.learning

    def gather(tenant: str, user: str) -> dict[str, object]:
        progress = learning.reports.progress(tenant, user)
        reviews, fresh = learning.quiz.queue_parts(tenant, user, learning.quiz.clock())
        assignments = sorted(
            learning.cohorts.assignments(tenant, member=user),
            key=lambda a: (a.due_at is None, a.due_at, a.title),
        )
        published = learning.quiz.catalog.published(tenant)
        categories: Counter[str] = Counter()
        modalities: Counter[str] = Counter()
        levels: Counter[str] = Counter()
        for case in published.values():
            categories.update(case.tags.categories)
            modalities.update(case.tags.modalities)
            if case.tags.level:
                levels[case.tags.level] += 1
        return {
            "progress": progress,
            "reviews_due": len(reviews),
            "new_due": len(fresh),
            "assignments": assignments,
            "categories": _choices(categories, CATEGORIES),
            "modalities": _choices(modalities, {}),
            "levels": _choices(levels, LEVELS),
        }

    async def today(request: Request) -> Response:
        principal = who(request)
        context = await run_in_threadpool(gather, principal.tenant, principal.user)
        context["notice"] = request.query_params.get("notice", "")[:200]
        return web.pages.render(request, "today.html", context)

    async def start(request: Request) -> Response:
        """Starts a session from the form's source (due, assignment or tags) and opens its
        first question; back to Today saying so when nothing is there to answer."""
        principal = who(request)
        form = await submitted(request, web.signing_key)
        body = _session_start(
            field(form, "source", limit=20),
            field(form, "assignment_id", limit=64),
            field(form, "filter", limit=80),
        )
        if body is None:
            return RedirectResponse("/?notice=unknown", 303)
        try:
            session = await run_in_threadpool(
                learning.quiz.start, principal.tenant, principal.user, body
            )
        except CaseError:
            return RedirectResponse("/?notice=unknown", 303)
        if session.next_position is None:
            return RedirectResponse("/?notice=empty", 303)
        return RedirectResponse(item_url(session.id, session.next_position), 303)

    return [Route("/", today, methods=["GET"]), Route("/review", start, methods=["POST"])]


def _session_start(source: str, assignment_id: str, chosen: str) -> SessionStart | None:
    """The session a Today form asks for; ``chosen`` is ``kind:value`` (``category:TCE302``,
    ``modality:CT``, ``level:TCE201``). None when the form names nothing valid."""
    try:
        if source == "due":
            return FromDue()
        if source == "assignment":
            return FromAssignment(assignment_id=assignment_id)
        if source == "tags":
            kind, _, value = chosen.partition(":")
            if kind not in ("category", "modality", "level") or not value:
                return None
            return FromTags(filter=TagFilter.model_validate({kind: value}))
    except ValueError:
        return None
    return None
