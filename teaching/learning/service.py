"""Quizzes, spaced repetition and progress on top of the teaching cases.

Answers are graded here, on the server, from the stored key; the client only ever sends what
the learner chose. Time comes from ``clock`` (injected, so a test can run a learner through
90 days without sleeping): an item's answer time is the time between the server first showing
it and the server receiving the answer.

Only published cases are quizzed: a draft can change, and may hold images still awaiting the
burned-in text review.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from teaching.cases.errors import CaseNotFound, Conflict, InvalidField, NotFound
from teaching.cases.models import Case, CaseStatus, CaseSummary
from teaching.cases.service import CaseService
from teaching.cases.store import CaseFilter
from teaching.learning.grading import grade
from teaching.learning.models import (
    AnswerResult,
    Assignment,
    AssignmentIn,
    CardView,
    CohortProgress,
    FromAssignment,
    FromDue,
    FromTags,
    Group,
    GroupIn,
    Hint,
    ItemView,
    LearnerProgress,
    ProgramSettings,
    RevealedCase,
    ReviewEntry,
    ReviewPage,
    SessionStart,
    SessionView,
    UnknownCase,
)
from teaching.learning.progress import Snapshot, cohort_progress, learner_progress
from teaching.learning.questions import Answer, LocateKey, Question, QuestionIn, QuestionPrompt
from teaching.learning.scheduling import (
    Scheduling,
    card_state,
    new_card,
    rating_for,
)
from teaching.learning.store import (
    AlreadyAnswered,
    Claim,
    LearningStore,
    Outcome,
    QuizSession,
    RaceLost,
    SessionItem,
)
from teaching.learning.xapi import statement_result

PAGE = 500
RACE_ATTEMPTS = 5


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class LearningService:
    store: LearningStore
    cases: CaseService
    clock: Callable[[], datetime] = utc_now
    unknown_users: Callable[[str, Sequence[str]], list[str]] | None = None
    """Which of these usernames have no account in the institution (None: not checked)."""

    def open(self) -> None:
        self.store.open()

    def close(self) -> None:
        self.store.close()

    def now(self) -> datetime:
        return self.clock().astimezone(UTC)

    # -- questions (educators) ------------------------------------------------------------

    def questions(self, tenant: str, case_id: str) -> list[Question]:
        self.cases.get(tenant, case_id)
        return self.store.questions(tenant, [case_id])

    def add_question(self, tenant: str, case_id: str, body: QuestionIn) -> Question:
        self._check_key(self.cases.get(tenant, case_id), body)
        question_id = self.store.add_question(tenant, case_id, body, self.now())
        return self._question(tenant, question_id)

    def replace_question(
        self, tenant: str, case_id: str, question_id: str, body: QuestionIn
    ) -> Question:
        self._check_key(self.cases.get(tenant, case_id), body)
        if not self.store.replace_question(tenant, case_id, question_id, body, self.now()):
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

    @staticmethod
    def _check_key(case: Case, body: QuestionIn) -> None:
        key = body.key
        if isinstance(key, LocateKey):
            members = {i.sop_instance_uid for i in case.instances}
            if key.sop_instance_uid not in members:
                raise InvalidField(
                    ("key", "sop_instance_uid"),
                    f"instance {key.sop_instance_uid} is not part of the case",
                )

    # -- program settings -----------------------------------------------------------------

    def program(self, tenant: str) -> ProgramSettings:
        return self.store.program(tenant)

    def set_program(self, tenant: str, settings: ProgramSettings) -> ProgramSettings:
        self.store.set_program(tenant, settings, self.now())
        return settings

    # -- groups and assignments (educators) -----------------------------------------------

    def groups(self, tenant: str) -> list[Group]:
        return self.store.groups(tenant)

    def group(self, tenant: str, group_id: str) -> Group:
        found = self.store.groups(tenant, group_id=group_id)
        if not found:
            raise NotFound("group")
        return found[0]

    def create_group(self, tenant: str, body: GroupIn, by: str) -> Group:
        self._check_members(tenant, body.members)
        return self.group(tenant, self.store.create_group(tenant, body, by, self.now()))

    def replace_group(self, tenant: str, group_id: str, body: GroupIn) -> Group:
        self._check_members(tenant, body.members)
        if not self.store.replace_group(tenant, group_id, body):
            raise NotFound("group")
        return self.group(tenant, group_id)

    def delete_group(self, tenant: str, group_id: str) -> None:
        if not self.store.delete_group(tenant, group_id):
            raise NotFound("group")

    def _check_members(self, tenant: str, members: Sequence[str]) -> None:
        if self.unknown_users is None:
            return
        unknown = set(self.unknown_users(tenant, members))
        for index, name in enumerate(members):
            if name in unknown:
                raise InvalidField(("members", index), f"no user {name!r} in the institution")

    def assign(self, tenant: str, group_id: str, body: AssignmentIn, by: str) -> Assignment:
        self.group(tenant, group_id)
        for index, case_id in enumerate(body.case_ids):
            try:
                self.cases.get(tenant, case_id)
            except CaseNotFound:
                raise InvalidField(("case_ids", index), f"no case {case_id}") from None
        assignment_id = self.store.add_assignment(tenant, group_id, body, by, self.now())
        if assignment_id is None:
            raise NotFound("group")
        return self.store.assignments(tenant, assignment_id=assignment_id)[0]

    def assignments(
        self, tenant: str, *, group_id: str | None = None, member: str | None = None
    ) -> list[Assignment]:
        if group_id is not None:
            self.group(tenant, group_id)
        return self.store.assignments(tenant, group_id=group_id, member=member)

    def delete_assignment(self, tenant: str, assignment_id: str) -> None:
        if not self.store.delete_assignment(tenant, assignment_id):
            raise NotFound("assignment")

    # -- which cases are quizzed ----------------------------------------------------------

    def _cases(self, tenant: str, where: CaseFilter) -> dict[str, CaseSummary]:
        """Every case matching ``where``, oldest change first (the order new cards come in)."""
        found: list[CaseSummary] = []
        while True:
            total, page = self.cases.store.search(tenant, where, PAGE, len(found))
            found += page
            if not page or len(found) >= total:
                break
        return {c.id: c for c in reversed(found)}

    def _published(self, tenant: str, where: CaseFilter | None = None) -> dict[str, CaseSummary]:
        base = where or CaseFilter()
        return self._cases(
            tenant,
            CaseFilter(
                status=CaseStatus.PUBLISHED,
                category=base.category,
                level=base.level,
                modality=base.modality,
                anatomy=base.anatomy,
            ),
        )

    def _live_questions(self, tenant: str, cases: dict[str, CaseSummary]) -> list[Question]:
        """The questions of ``cases``, in the cases' order, each case's by position."""
        by_case: dict[str, list[Question]] = {}
        for question in self.store.questions(tenant, list(cases)):
            by_case.setdefault(question.case_id, []).append(question)
        return [q for case_id in cases for q in by_case.get(case_id, [])]

    # -- quiz sessions --------------------------------------------------------------------

    def start(self, tenant: str, learner: str, body: SessionStart) -> SessionView:
        at = self.now()
        if isinstance(body, FromDue):
            items = self.due_queue(tenant, learner, at)[: body.limit]
        elif isinstance(body, FromTags):
            items = self._tag_items(tenant, learner, body)
        else:
            items = self._assignment_items(tenant, learner, body)
        session_id = self.store.create_session(
            tenant, learner, body.source, body.model_dump(mode="json"), items, at
        )
        return self.session(tenant, learner, session_id)

    def due_queue(self, tenant: str, learner: str, at: datetime) -> list[tuple[str, str]]:
        """What the learner should answer now: due cards by due time, then new questions,
        each within what the program's daily limits leave for today."""
        program = self.store.program(tenant)
        day_start = start_of_day(at, program.timezone)
        live = self._live_questions(tenant, self._published(tenant))
        live_ids = {q.id for q in live}
        cards = self.store.cards(tenant, [learner])[learner]
        seen = {c.question_id for c in cards}
        reviews_left = max(
            0,
            program.reviews_per_day
            - self.store.count_reviews_of_seen_cards(tenant, learner, day_start),
        )
        new_left = max(
            0, program.new_per_day - self.store.count_introduced(tenant, learner, day_start)
        )
        due = sorted(
            (c for c in cards if c.question_id in live_ids and c.card.due <= at),
            key=lambda c: (c.card.due, c.question_id),
        )
        fresh = [q for q in live if q.id not in seen]
        return [(c.question_id, c.case_id) for c in due[:reviews_left]] + [
            (q.id, q.case_id) for q in fresh[:new_left]
        ]

    def _tag_items(self, tenant: str, learner: str, body: FromTags) -> list[tuple[str, str]]:
        """Questions of the published cases matching the tags: those never met first, then
        the longest-due; a case's questions stay together, in order."""
        f = body.filter
        cases = self._published(
            tenant,
            CaseFilter(category=f.category, level=f.level, modality=f.modality, anatomy=f.anatomy),
        )
        questions = self._live_questions(tenant, cases)
        due = {c.question_id: c.card.due for c in self.store.cards(tenant, [learner])[learner]}
        never = datetime.min.replace(tzinfo=UTC)
        first: dict[str, datetime] = {}
        for q in questions:
            when = due.get(q.id, never)
            first[q.case_id] = min(first.get(q.case_id, when), when)
        ordered = sorted(questions, key=lambda q: (first[q.case_id], q.case_id, q.position))
        return [(q.id, q.case_id) for q in ordered[: body.limit]]

    def _assignment_items(
        self, tenant: str, learner: str, body: FromAssignment
    ) -> list[tuple[str, str]]:
        found = self.store.assignments(tenant, assignment_id=body.assignment_id, member=learner)
        if not found:
            raise NotFound("assignment")
        published = self._published(tenant)
        cases = {c: published[c] for c in found[0].case_ids if c in published}
        return [(q.id, q.case_id) for q in self._live_questions(tenant, cases)]

    def _session(self, tenant: str, learner: str, session_id: str) -> QuizSession:
        session = self.store.session(tenant, learner, session_id)
        if session is None:
            raise NotFound("session")
        return session

    def session(self, tenant: str, learner: str, session_id: str) -> SessionView:
        session = self._session(tenant, learner, session_id)
        return SessionView(
            id=session.session_id,
            source=session.source,
            created_at=session.created_at,
            items=[i.state() for i in session.items],
            next_position=next_unanswered(session),
        )

    def _item(self, session: QuizSession, position: int) -> SessionItem:
        for item in session.items:
            if item.position == position:
                return item
        raise NotFound("item")

    def item(self, tenant: str, learner: str, session_id: str, position: int) -> ItemView:
        """The item as an unknown case and a question; showing it starts its answer time."""
        session = self._session(tenant, learner, session_id)
        item = self._item(session, position)
        question = self._quizzed(tenant, item)
        case = self.cases.get(tenant, item.case_id)
        shown = self.store.present(session.pk, position, self.now())
        view = ItemView(
            position=position,
            case=unknown(case),
            question=QuestionPrompt.of(question),
            presented_at=shown,
            answered=item.answered_at is not None,
        )
        if item.review_id is not None:
            review = self._review(tenant, learner, item.review_id)
            view.result = self._result(question, review, session, case)
            view.revealed = view.result.revealed
        return view

    def _quizzed(self, tenant: str, item: SessionItem) -> Question:
        question = self.store.question(tenant, item.question_id)
        if question is None:
            raise NotFound("question (it was withdrawn)")
        return question

    def hint(self, tenant: str, learner: str, session_id: str, position: int) -> Hint:
        """The question's hint; asking for it before answering rules out an Easy rating."""
        session = self._session(tenant, learner, session_id)
        item = self._item(session, position)
        question = self._quizzed(tenant, item)
        if not question.hint:
            raise Conflict("this question has no hint")
        self.store.present(session.pk, position, self.now())
        self.store.mark_hinted(session.pk, position)
        return Hint(hint=question.hint)

    def answer(
        self, tenant: str, learner: str, session_id: str, position: int, answer: Answer
    ) -> AnswerResult:
        session = self._session(tenant, learner, session_id)
        item = self._item(session, position)
        question = self._quizzed(tenant, item)
        if answer.kind != question.key.kind:
            raise InvalidField(("kind",), f"this question takes a {question.key.kind} answer")
        case = self.cases.get(tenant, item.case_id)
        program = self.store.program(tenant)
        scheduling = Scheduling(program.desired_retention)
        correct = grade(question.key, answer)
        fast_ms = round(program.fast_answer_seconds * 1000)

        for _ in range(RACE_ATTEMPTS):
            at = self.now()

            def decide(claim: Claim, at: datetime = at) -> Outcome:
                duration = (
                    None
                    if claim.presented_at is None
                    else max(0, round((at - claim.presented_at).total_seconds() * 1000))
                )
                rating = rating_for(correct, claim.hinted, duration, fast_ms)
                before = claim.card.card if claim.card else new_card(learner, question.id, at)
                after = scheduling.review(before, rating, at, duration)
                return Outcome(
                    card=after,
                    correct=correct,
                    rating=int(rating),
                    duration_ms=duration,
                    answer=answer.model_dump(mode="json"),
                    state_before=card_state(claim.card.card) if claim.card else None,
                    state_after=card_state(after),
                )

            try:
                self.store.record_answer(tenant, session, item, question.key.kind, at, decide)
                break
            except AlreadyAnswered:
                raise Conflict("this item is already answered") from None
            except RaceLost:
                continue
        else:
            raise Conflict("the card kept changing under this answer; try again")
        session = self._session(tenant, learner, session_id)
        review_id = self._item(session, position).review_id
        assert review_id is not None
        return self._result(question, self._review(tenant, learner, review_id), session, case)

    def _review(self, tenant: str, learner: str, review_id: int) -> ReviewEntry:
        _, rows = self.store.reviews(tenant, learners=[learner], review_id=review_id)
        if not rows:
            raise NotFound("review")
        return rows[0]

    def _result(
        self, question: Question, review: ReviewEntry, session: QuizSession, case: Case
    ) -> AnswerResult:
        done = all(i.answered_at is not None for i in session.items if i.case_id == case.id)
        return AnswerResult(
            correct=review.correct,
            rating=review.rating,
            duration_ms=review.duration_ms,
            hinted=review.hinted,
            feedback=question.feedback,
            solution=question.key,
            card=CardView.model_validate(review.state_after),
            revealed=revealed(case) if done else None,
            next_position=next_unanswered(session),
        )

    # -- progress -------------------------------------------------------------------------

    def _snapshot(self, tenant: str, learners: Sequence[str]) -> Snapshot:
        at = self.now()
        program = self.store.program(tenant)
        everything = self._cases(tenant, CaseFilter())
        published = {k: v for k, v in everything.items() if v.status is CaseStatus.PUBLISHED}
        _, reviews = self.store.reviews(tenant, learners=learners)
        return Snapshot(
            at=at,
            program=program,
            scheduling=Scheduling(program.desired_retention),
            cases=everything,
            live_questions=[q.id for q in self._live_questions(tenant, published)],
            cards=self.store.cards(tenant, learners),
            reviews=reviews,
            introduced_today={
                learner: self.store.count_introduced(
                    tenant, learner, start_of_day(at, program.timezone)
                )
                for learner in learners
            },
        )

    def progress(self, tenant: str, learner: str) -> LearnerProgress:
        return learner_progress(self._snapshot(tenant, [learner]), learner)

    def history(self, tenant: str, learner: str, limit: int, offset: int) -> ReviewPage:
        total, rows = self.store.reviews(tenant, learners=[learner], limit=limit, offset=offset)
        return ReviewPage(total=total, limit=limit, offset=offset, reviews=rows)

    def history_csv(self, tenant: str, learners: Sequence[str] | None) -> Iterator[str]:
        """The review log as CSV rows: one per answer, with the card before and after."""
        _, rows = self.store.reviews(tenant, learners=learners)
        return csv_rows(rows)

    def cohort(self, tenant: str, group_id: str) -> CohortProgress:
        group = self.group(tenant, group_id)
        return cohort_progress(self._snapshot(tenant, group.members), group.id, group.members)

    def cohort_csv(self, tenant: str, group_id: str) -> Iterator[str]:
        return csv_rows(
            self.store.reviews(tenant, learners=self.group(tenant, group_id).members)[1]
        )

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
        total, rows = self.store.reviews(
            tenant, learners=learners, since=since, limit=limit, offset=offset
        )
        cases = self._cases(tenant, CaseFilter())
        following = offset + len(rows)
        return statement_result(rows, cases, base, more(following) if following < total else "")


def next_unanswered(session: QuizSession) -> int | None:
    return next((i.position for i in session.items if i.answered_at is None), None)


def start_of_day(at: datetime, timezone: str) -> datetime:
    """Midnight of ``at``'s day in the program's time zone, in UTC."""
    local = at.astimezone(ZoneInfo(timezone))
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


def unknown(case: Case) -> UnknownCase:
    """The case as an unknown: built field by field from what may be shown before answering."""
    return UnknownCase(
        id=case.id,
        history=case.history,
        categories=case.tags.categories,
        level=case.tags.level,
        modalities=case.tags.modalities,
        anatomy=case.tags.anatomy,
        teaching_study_instance_uid=case.teaching_study_instance_uid,
        key_images=[k.model_copy(update={"note": ""}) for k in case.key_images],
    )


def revealed(case: Case) -> RevealedCase:
    return RevealedCase(
        id=case.id,
        title=case.title,
        diagnosis=case.diagnosis,
        findings=case.findings,
        discussion=case.discussion,
        differential=case.differential,
        tags=case.tags,
        key_images=case.key_images,
    )


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
