"""Progress: accuracy and retention over the last 30 days as charts (each with its table),
the same figures by category, modality and level, the reviews due in the next 14 days, the
streaks, and the review history, newest first, a page at a time, with its CSV download.

Every figure comes from one snapshot of the learner's review log and cards
(:meth:`teaching.learning.reports.ReportService.overview`); the history page is one more
read of the log. Nothing here names a case: the history lists answers by date, kind and
result, so a case still unanswered in another session keeps its secrets.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from radcase_pacs.web.context import Web, who
from radcase_pacs.web.learn.charts import Point, bar_chart, percent_chart
from teaching.cases.codes import CATEGORIES, LEVELS
from teaching.learning.models import ReviewEntry, Tally

PAGE_SIZE = 20
KINDS = {"multiple_choice": "Multiple choice", "free_text": "Free text", "locate": "Locate"}


@dataclass(frozen=True)
class Row:
    """A slice of the progress tables, labelled."""

    label: str
    tally: Tally


@dataclass(frozen=True)
class HistoryLine:
    review: ReviewEntry
    kind: str
    due: datetime | None


def percent(value: float | None) -> str:
    return "–" if value is None else f"{round(value * 100)}%"


def _due(review: ReviewEntry) -> datetime | None:
    value = review.state_after.get("due")
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _page_number(text: str, pages: int) -> int:
    return min(max(1, int(text)), pages) if text.isdigit() and len(text) < 7 else 1


def progress_route(web: Web) -> Route:
    reports = web.deployment.learning.reports

    def gather(tenant: str, user: str, page_text: str) -> dict[str, Any]:
        progress, days = reports.overview(tenant, user)
        total = progress.overall.reviews
        pages = max(1, -(-total // PAGE_SIZE))
        page = _page_number(page_text, pages)
        # The log reads oldest first: page 1 (the newest) is its end.
        end = total - (page - 1) * PAGE_SIZE
        start = max(0, end - PAGE_SIZE)
        rows = reports.history(tenant, user, end - start, start).reviews if end > 0 else []
        accuracy = [Point(d.day.strftime("%d %b"), d.accuracy) for d in days]
        retention = [Point(d.day.strftime("%d %b"), d.retention) for d in days]
        forecast = [Point(d.day.strftime("%a %d"), d.due) for d in progress.due_forecast]
        return {
            "progress": progress,
            "days": days,
            "accuracy_chart": percent_chart(
                "Accuracy by day",
                "Share of right answers each day of the last 30 days; gaps are days "
                "without answers. The table below gives the figures.",
                accuracy,
            ),
            "retention_chart": percent_chart(
                "Retention by day",
                "Estimated probability of recalling your reviewed questions at the end of "
                "each day of the last 30 days. The table below gives the figures.",
                retention,
            ),
            "forecast_chart": bar_chart(
                "Reviews due in the next 14 days",
                "Number of reviews coming due each day, today first. The table below gives "
                "the figures.",
                forecast,
            ),
            "by_category": [Row(CATEGORIES.get(t.key, t.key), t) for t in progress.by_category],
            "by_modality": [Row(t.key, t) for t in progress.by_modality],
            "by_level": [Row(LEVELS.get(t.key, t.key), t) for t in progress.by_level],
            "history": [HistoryLine(r, KINDS.get(r.kind, r.kind), _due(r)) for r in reversed(rows)],
            "page": page,
            "pages": pages,
            "total": total,
        }

    async def progress(request: Request) -> Response:
        principal = who(request)
        page = request.query_params.get("page", "1")
        context = await run_in_threadpool(gather, principal.tenant, principal.user, page)
        context["percent"] = percent
        return web.pages.render(request, "progress.html", context)

    return Route("/progress", progress, methods=["GET"])
