"""Quiz sessions: starting one, showing an item, the hint, and answering.

Answers are graded here, on the server, from the stored key; the client only ever sends what
the learner chose. Time comes from ``clock`` (injected, so a test can run a learner through
90 days without sleeping): an item's answer time is the time between the server first showing
it and the server receiving the answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import TypeAdapter, ValidationError

from teaching.cases.errors import Conflict, InvalidField, NotFound
from teaching.cases.models import Case
from teaching.cases.service import CaseService
from teaching.cases.store import CaseFilter
from teaching.learning.catalog import Catalog
from teaching.learning.grading import grade
from teaching.learning.models import (
    AnswerResult,
    CardView,
    FromAssignment,
    FromDue,
    FromTags,
    Hint,
    ItemView,
    RevealedCase,
    ReviewEntry,
    SessionStart,
    SessionView,
    UnknownCase,
)
from teaching.learning.questions import Answer, Question, QuestionPrompt
from teaching.learning.scheduling import (
    Scheduling,
    card_state,
    new_card,
    rating_for,
    start_of_day,
)
from teaching.learning.stores.cohorts import CohortStore
from teaching.learning.stores.questions import QuestionStore
from teaching.learning.stores.reviews import (
    AlreadyAnswered,
    AnswerOutcome,
    Claim,
    QuizSession,
    RaceLost,
    ReviewStore,
    SessionItem,
)

RACE_ATTEMPTS = 5
ANSWER: TypeAdapter[Answer] = TypeAdapter(Answer)


@dataclass(frozen=True)
class QuizService:
    catalog: Catalog
    questions: QuestionStore
    cohorts: CohortStore
    reviews: ReviewStore
    cases: CaseService
    clock: Callable[[], datetime]
    """The time, in UTC."""

    # -- starting a session ---------------------------------------------------------------

    def start(self, tenant: str, learner: str, body: SessionStart) -> SessionView:
        at = self.clock()
        if isinstance(body, FromDue):
            items = self.due_queue(tenant, learner, at)[: body.limit]
        elif isinstance(body, FromTags):
            items = self._tag_items(tenant, learner, body)
        else:
            items = self._assignment_items(tenant, learner, body)
        session_id = self.reviews.create_session(
            tenant, learner, body.source, body.model_dump(mode="json"), items, at
        )
        return self.session(tenant, learner, session_id)

    def due_queue(self, tenant: str, learner: str, at: datetime) -> list[tuple[str, str]]:
        """What the learner should answer now: due cards by due time, then new questions,
        each within what the program's daily limits leave for today."""
        reviews, fresh = self.queue_parts(tenant, learner, at)
        return reviews + fresh

    def queue_parts(
        self, tenant: str, learner: str, at: datetime
    ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """The due queue's two parts, (question id, case id) each: the reviews due now and
        the new questions, within what the daily limits leave for today."""
        program = self.questions.program(tenant)
        day_start = start_of_day(at, program.timezone)
        live = self.catalog.live_questions(tenant, self.catalog.published(tenant))
        live_ids = {q.id for q in live}
        cards = self.reviews.cards(tenant, [learner])[learner]
        seen = {c.question_id for c in cards}
        reviews_left = max(
            0,
            program.reviews_per_day
            - self.reviews.count_reviews_of_seen_cards(tenant, learner, day_start),
        )
        new_left = max(
            0, program.new_per_day - self.reviews.count_introduced(tenant, learner, day_start)
        )
        due = sorted(
            (c for c in cards if c.question_id in live_ids and c.card.due <= at),
            key=lambda c: (c.card.due, c.question_id),
        )
        fresh = [q for q in live if q.id not in seen]
        return (
            [(c.question_id, c.case_id) for c in due[:reviews_left]],
            [(q.id, q.case_id) for q in fresh[:new_left]],
        )

    def _tag_items(self, tenant: str, learner: str, body: FromTags) -> list[tuple[str, str]]:
        """Questions of the published cases matching the tags: those never met first, then
        the longest-due; a case's questions stay together, in order."""
        f = body.filter
        cases = self.catalog.published(
            tenant,
            CaseFilter(category=f.category, level=f.level, modality=f.modality, anatomy=f.anatomy),
        )
        questions = self.catalog.live_questions(tenant, cases)
        due = {c.question_id: c.card.due for c in self.reviews.cards(tenant, [learner])[learner]}
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
        found = self.cohorts.assignments(tenant, assignment_id=body.assignment_id, member=learner)
        if not found:
            raise NotFound("assignment")
        published = self.catalog.published(tenant)
        cases = {c: published[c] for c in found[0].case_ids if c in published}
        return [(q.id, q.case_id) for q in self.catalog.live_questions(tenant, cases)]

    # -- a session and its items ----------------------------------------------------------

    def _session(self, tenant: str, learner: str, session_id: str) -> QuizSession:
        session = self.reviews.session(tenant, learner, session_id)
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

    def item(self, tenant: str, learner: str, session_id: str, position: int) -> ItemView:
        """The item as an unknown case and a question; showing it starts its answer time."""
        session = self._session(tenant, learner, session_id)
        item = _item(session, position)
        question = self._quizzed(tenant, item)
        case = self.cases.get(tenant, item.case_id)
        shown = self.reviews.present(session.pk, position, self.clock())
        view = ItemView(
            position=position,
            case=unknown(case),
            question=QuestionPrompt.of(question),
            presented_at=shown,
            answered=item.answered_at is not None,
            hinted=item.hinted,
            hint=question.hint if item.hinted and question.hint else None,
        )
        if item.review_id is not None:
            review = self._review(tenant, learner, item.review_id)
            view.result = _result(question, review, session, case)
            view.revealed = view.result.revealed
        return view

    def _quizzed(self, tenant: str, item: SessionItem) -> Question:
        question = self.questions.question(tenant, item.question_id)
        if question is None:
            raise NotFound("question (it was withdrawn)")
        return question

    def hint(self, tenant: str, learner: str, session_id: str, position: int) -> Hint:
        """The question's hint; asking for it before answering rules out an Easy rating."""
        session = self._session(tenant, learner, session_id)
        item = _item(session, position)
        question = self._quizzed(tenant, item)
        if not question.hint:
            raise Conflict("this question has no hint")
        self.reviews.present(session.pk, position, self.clock())
        self.reviews.mark_hinted(session.pk, position)
        return Hint(hint=question.hint)

    # -- answering ------------------------------------------------------------------------

    def answer(
        self, tenant: str, learner: str, session_id: str, position: int, answer: Answer
    ) -> AnswerResult:
        session = self._session(tenant, learner, session_id)
        item = _item(session, position)
        question = self._quizzed(tenant, item)
        if answer.kind != question.key.kind:
            raise InvalidField(("kind",), f"this question takes a {question.key.kind} answer")
        case = self.cases.get(tenant, item.case_id)
        program = self.questions.program(tenant)
        scheduling = Scheduling(program.desired_retention)
        correct = grade(question.key, answer)
        fast_ms = round(program.fast_answer_seconds * 1000)

        for _ in range(RACE_ATTEMPTS):
            at = self.clock()

            def decide(claim: Claim, at: datetime = at) -> AnswerOutcome:
                duration = (
                    None
                    if claim.presented_at is None
                    else max(0, round((at - claim.presented_at).total_seconds() * 1000))
                )
                rating = rating_for(correct, claim.hinted, duration, fast_ms)
                before = claim.card.card if claim.card else new_card(learner, question.id, at)
                after = scheduling.review(before, rating, at, duration)
                return AnswerOutcome(
                    card=after,
                    correct=correct,
                    rating=int(rating),
                    duration_ms=duration,
                    answer=answer.model_dump(mode="json"),
                    state_before=card_state(claim.card.card) if claim.card else None,
                    state_after=card_state(after),
                )

            try:
                self.reviews.record_answer(tenant, session, item, question.key.kind, at, decide)
                break
            except AlreadyAnswered:
                raise Conflict("this item is already answered") from None
            except RaceLost:
                continue
        else:
            raise Conflict("the card kept changing under this answer; try again")
        session = self._session(tenant, learner, session_id)
        review_id = _item(session, position).review_id
        assert review_id is not None
        return _result(question, self._review(tenant, learner, review_id), session, case)

    def _review(self, tenant: str, learner: str, review_id: int) -> ReviewEntry:
        _, rows = self.reviews.reviews(tenant, learners=[learner], review_id=review_id)
        if not rows:
            raise NotFound("review")
        return rows[0]


def _item(session: QuizSession, position: int) -> SessionItem:
    for item in session.items:
        if item.position == position:
            return item
    raise NotFound("item")


def _result(
    question: Question, review: ReviewEntry, session: QuizSession, case: Case
) -> AnswerResult:
    """The graded answer; the case is revealed once every item of it in the session is
    answered."""
    done = all(i.answered_at is not None for i in session.items if i.case_id == case.id)
    return AnswerResult(
        correct=review.correct,
        rating=review.rating,
        duration_ms=review.duration_ms,
        hinted=review.hinted,
        answer=_given(review),
        feedback=question.feedback,
        solution=question.key,
        card=CardView.model_validate(review.state_after),
        revealed=revealed(case) if done else None,
        next_position=next_unanswered(session),
    )


def _given(review: ReviewEntry) -> Answer | None:
    """The learner's answer as logged (None for a log entry that predates keeping it)."""
    if review.answer is None:
        return None
    try:
        return ANSWER.validate_python(review.answer)
    except ValidationError:
        return None


def next_unanswered(session: QuizSession) -> int | None:
    return next((i.position for i in session.items if i.answered_at is None), None)


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
