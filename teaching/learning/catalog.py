"""Which cases and questions are quizzed: the published cases, and their questions.

Only published cases are quizzed: a draft can change, and may hold images still awaiting the
burned-in text review. New cards come in the cases' order of change, oldest first.
"""

from __future__ import annotations

from dataclasses import dataclass

from teaching.cases.models import CaseStatus, CaseSummary
from teaching.cases.store import CaseFilter, CaseStore
from teaching.learning.questions import Question
from teaching.learning.stores.questions import QuestionStore

PAGE = 500


@dataclass(frozen=True)
class Catalog:
    cases: CaseStore
    questions: QuestionStore

    def cases_matching(self, tenant: str, where: CaseFilter) -> dict[str, CaseSummary]:
        """Every case matching ``where``, oldest change first (the order new cards come in)."""
        found: list[CaseSummary] = []
        while True:
            total, page = self.cases.search(tenant, where, PAGE, len(found))
            found += page
            if not page or len(found) >= total:
                break
        return {c.id: c for c in reversed(found)}

    def published(self, tenant: str, where: CaseFilter | None = None) -> dict[str, CaseSummary]:
        """The published cases matching the tags of ``where`` (its status is ignored)."""
        base = where or CaseFilter()
        return self.cases_matching(
            tenant,
            CaseFilter(
                status=CaseStatus.PUBLISHED,
                category=base.category,
                level=base.level,
                modality=base.modality,
                anatomy=base.anatomy,
            ),
        )

    def live_questions(self, tenant: str, cases: dict[str, CaseSummary]) -> list[Question]:
        """The questions of ``cases``, in the cases' order, each case's by position."""
        by_case: dict[str, list[Question]] = {}
        for question in self.questions.questions(tenant, list(cases)):
            by_case.setdefault(question.case_id, []).append(question)
        return [q for case_id in cases for q in by_case.get(case_id, [])]
