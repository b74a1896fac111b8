"""What the review log tells: a learner's progress, the log itself (a page, or CSV) and xAPI
statements for a learning record store. Every figure is computed from the log and the cards
at the time of asking (:mod:`teaching.learning.progress`)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from teaching.cases.models import CaseStatus
from teaching.cases.store import CaseFilter
from teaching.learning.catalog import Catalog
from teaching.learning.models import DayFigures, LearnerProgress, ReviewEntry, ReviewPage
from teaching.learning.progress import Snapshot, learner_progress
from teaching.learning.scheduling import Scheduling, start_of_day
from teaching.learning.stores.questions import QuestionStore
from teaching.learning.stores.reviews import ReviewStore
from teaching.learning.timeline import TIMELINE_DAYS, due_forecast, timeline
from teaching.learning.xapi import statement_result

CSV_COLUMNS = (
    "reviewed_at",
    "learner",
    "case_id",
    "question_id",
    "session_id",
    "kind",
    "correct",
    "rating",
    "duration_ms",
    "hinted",
    "state_before",
    "stability_before",
    "difficulty_before",
    "state_after",
    "stability_after",
    "difficulty_after",
    "due_after",
)


@dataclass(frozen=True)
class ReportService:
    catalog: Catalog
    questions: QuestionStore
    reviews: ReviewStore
    clock: Callable[[], datetime]
    """The time, in UTC."""

    def snapshot(self, tenant: str, learners: Sequence[str]) -> Snapshot:
        """What the figures of ``learners`` are computed from, read now."""
        at = self.clock()
        program = self.questions.program(tenant)
        everything = self.catalog.cases_matching(tenant, CaseFilter())
        published = {k: v for k, v in everything.items() if v.status is CaseStatus.PUBLISHED}
        _, reviews = self.reviews.reviews(tenant, learners=learners)
        return Snapshot(
            at=at,
            program=program,
            scheduling=Scheduling(program.desired_retention),
            cases=everything,
            live_questions=[q.id for q in self.catalog.live_questions(tenant, published)],
            cards=self.reviews.cards(tenant, learners),
            reviews=reviews,
            introduced_today={
                learner: self.reviews.count_introduced(
                    tenant, learner, start_of_day(at, program.timezone)
                )
                for learner in learners
            },
        )

    def progress(self, tenant: str, learner: str) -> LearnerProgress:
        return self.overview(tenant, learner, days=0)[0]

    def overview(
        self, tenant: str, learner: str, days: int = TIMELINE_DAYS
    ) -> tuple[LearnerProgress, list[DayFigures]]:
        """The learner's progress with its due forecast, and the last ``days`` days'
        accuracy and retention, from one snapshot."""
        snap = self.snapshot(tenant, [learner])
        progress = learner_progress(snap, learner)
        progress.due_forecast = due_forecast(snap, learner)
        return progress, timeline(snap, learner, days) if days else []

    def history(self, tenant: str, learner: str, limit: int, offset: int) -> ReviewPage:
        total, rows = self.reviews.reviews(tenant, learners=[learner], limit=limit, offset=offset)
        return ReviewPage(total=total, limit=limit, offset=offset, reviews=rows)

    def history_csv(self, tenant: str, learners: Sequence[str] | None) -> Iterator[str]:
        """The review log as CSV rows: one per answer, with the card before and after."""
        _, rows = self.reviews.reviews(tenant, learners=learners)
        return csv_rows(rows)

    def statements(
        self,
        tenant: str,
        learners: Sequence[str] | None,
        since: datetime | None,
        limit: int,
        offset: int,
        base: str,
        more: Callable[[int], str],
    ) -> dict[str, Any]:
        """xAPI statements of the review log (see :mod:`teaching.learning.xapi`); ``more``
        makes the address of the page at an offset."""
        total, rows = self.reviews.reviews(
            tenant, learners=learners, since=since, limit=limit, offset=offset
        )
        cases = self.catalog.cases_matching(tenant, CaseFilter())
        following = offset + len(rows)
        return statement_result(rows, cases, base, more(following) if following < total else "")


def spreadsheet_safe(text: str) -> str:
    """A cell a spreadsheet will not run as a formula (OWASP CSV injection)."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_rows(rows: Sequence[ReviewEntry]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(CSV_COLUMNS)
    yield flush()
    for r in rows:
        before = r.state_before or {}
        after = r.state_after
        writer.writerow(
            [
                r.reviewed_at.isoformat(),
                spreadsheet_safe(r.learner),
                r.case_id,
                r.question_id,
                r.session_id,
                r.kind,
                int(r.correct),
                r.rating,
                "" if r.duration_ms is None else r.duration_ms,
                int(r.hinted),
                before.get("state", "new"),
                before.get("stability", ""),
                before.get("difficulty", ""),
                after["state"],
                after["stability"],
                after["difficulty"],
                after["due"],
            ]
        )
        yield flush()
