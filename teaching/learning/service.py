"""The learning use cases over one teaching database, as the API mounts them: questions and
program settings (:mod:`~teaching.learning.authoring`), quiz sessions
(:mod:`~teaching.learning.quiz`), cohorts (:mod:`~teaching.learning.cohorts`) and reports
(:mod:`~teaching.learning.reports`). Callers use the parts; this only builds them over one
database and opens and closes its tables.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from storage.database.base import Database
from storage.database.timestamps import utc_now
from teaching.cases.service import CaseService
from teaching.cases.store import CaseStore
from teaching.learning.authoring import AuthoringService
from teaching.learning.catalog import Catalog
from teaching.learning.cohorts import CohortService
from teaching.learning.quiz import QuizService
from teaching.learning.reports import ReportService
from teaching.learning.schema import LearningTables
from teaching.learning.stores.cohorts import CohortStore
from teaching.learning.stores.questions import QuestionStore
from teaching.learning.stores.reviews import ReviewStore

__all__ = ["LearningService", "utc_now"]


@dataclass(frozen=True)
class LearningService:
    tables: LearningTables
    authoring: AuthoringService
    quiz: QuizService
    cohorts: CohortService
    reports: ReportService

    @classmethod
    def over(
        cls,
        db: Database,
        cases: CaseService,
        *,
        clock: Callable[[], datetime] = utc_now,
        unknown_users: Callable[[str, Sequence[str]], list[str]] | None = None,
        analytics: Database | None = None,
    ) -> LearningService:
        """The parts over ``db``. ``clock`` is the teaching layer's time (a test moves it);
        ``unknown_users`` says which usernames have no account in an institution (None: group
        members are not checked); ``analytics`` is what the reports (progress, a group's
        progress, the review log, xAPI) read the same tables through, a read replica's
        routing say (None: ``db``), opened and closed by its owner."""

        def now() -> datetime:
            return clock().astimezone(UTC)

        questions, cohorts, reviews = QuestionStore(db), CohortStore(db), ReviewStore(db)
        catalog = Catalog(cases.store, questions)
        if analytics is None:
            reports = ReportService(catalog, questions, reviews, now)
        else:
            read = QuestionStore(analytics)
            reports = ReportService(
                Catalog(CaseStore(analytics), read), read, ReviewStore(analytics), now
            )
        return cls(
            tables=LearningTables(db),
            authoring=AuthoringService(questions, cases, now),
            quiz=QuizService(catalog, questions, cohorts, reviews, cases, now),
            cohorts=CohortService(cohorts, cases, reports, now, unknown_users),
            reports=reports,
        )

    def open(self) -> None:
        self.tables.open()

    def close(self) -> None:
        self.tables.close()
