"""What educators write: the questions of each case, and the institution's program settings
(desired retention, daily limits, fast-answer time, time zone)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from teaching.cases.errors import InvalidField, NotFound
from teaching.cases.models import Case
from teaching.cases.service import CaseService
from teaching.learning.models import ProgramSettings
from teaching.learning.questions import LocateKey, Question, QuestionIn
from teaching.learning.stores.questions import QuestionStore


@dataclass(frozen=True)
class AuthoringService:
    store: QuestionStore
    cases: CaseService
    clock: Callable[[], datetime]
    """The time, in UTC."""

    # -- questions ------------------------------------------------------------------------

    def questions(self, tenant: str, case_id: str) -> list[Question]:
        self.cases.get(tenant, case_id)
        return self.store.questions(tenant, [case_id])

    def add_question(self, tenant: str, case_id: str, body: QuestionIn) -> Question:
        _check_key(self.cases.get(tenant, case_id), body)
        question_id = self.store.add_question(tenant, case_id, body, self.clock())
        return self._question(tenant, question_id)

    def replace_question(
        self, tenant: str, case_id: str, question_id: str, body: QuestionIn
    ) -> Question:
        _check_key(self.cases.get(tenant, case_id), body)
        if not self.store.replace_question(tenant, case_id, question_id, body, self.clock()):
            raise NotFound("question")
        return self._question(tenant, question_id)

    def delete_question(self, tenant: str, case_id: str, question_id: str) -> None:
        if not self.store.delete_question(tenant, case_id, question_id):
            raise NotFound("question")

    def forget_case(self, tenant: str, case_id: str) -> None:
        """A deleted case's questions go; its cards and review log stay as history."""
        self.store.delete_case_questions(tenant, case_id)

    def _question(self, tenant: str, question_id: str) -> Question:
        question = self.store.question(tenant, question_id)
        if question is None:
            raise NotFound("question")
        return question

    # -- program settings -----------------------------------------------------------------

    def program(self, tenant: str) -> ProgramSettings:
        return self.store.program(tenant)

    def set_program(self, tenant: str, settings: ProgramSettings) -> ProgramSettings:
        self.store.set_program(tenant, settings, self.clock())
        return settings


def _check_key(case: Case, body: QuestionIn) -> None:
    """A locate-the-finding key names an instance of the case itself."""
    key = body.key
    if isinstance(key, LocateKey):
        members = {i.sop_instance_uid for i in case.instances}
        if key.sop_instance_uid not in members:
            raise InvalidField(
                ("key", "sop_instance_uid"),
                f"instance {key.sop_instance_uid} is not part of the case",
            )
