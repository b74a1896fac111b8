"""FSRS cards, quiz sessions and the review log, and the answer transaction joining them.

Answering is one transaction that claims the session item, moves the card and appends to the
review log: an answer is never half recorded, and never recorded twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fsrs import Card, Rating

from storage.database.base import Cursor, Database
from storage.database.ids import new_id
from storage.database.timestamps import from_text, to_text
from teaching.learning.models import ItemState, ReviewEntry
from teaching.learning.scheduling import RATING_NAMES

REVIEW_COLUMNS = (
    "id, learner, reviewed_at, case_id, question_id, session_id, kind, correct, rating, "
    "duration_ms, hinted, state_before, state_after, answer"
)


class RaceLost(Exception):
    """Another answer moved the same card first: the caller runs the answer again."""


class AlreadyAnswered(Exception):
    pass


@dataclass(frozen=True)
class CardRow:
    question_id: str
    case_id: str
    card: Card
    reps: int
    introduced_at: datetime


@dataclass(frozen=True)
class SessionItem:
    position: int
    question_id: str
    case_id: str
    presented_at: datetime | None
    hinted: bool
    answered_at: datetime | None
    review_id: int | None
    correct: bool | None

    def state(self) -> ItemState:
        return ItemState(
            position=self.position,
            case_id=self.case_id,
            question_id=self.question_id,
            answered=self.answered_at is not None,
            correct=self.correct,
        )


@dataclass(frozen=True)
class QuizSession:
    pk: int
    session_id: str
    learner: str
    source: str
    detail: dict[str, Any]
    created_at: datetime
    items: list[SessionItem]


@dataclass(frozen=True)
class Claim:
    """What answering an item found when it claimed it."""

    presented_at: datetime | None
    hinted: bool
    card: CardRow | None


@dataclass(frozen=True)
class AnswerOutcome:
    """What answering decided: the card after, and the log entry."""

    card: Card
    correct: bool
    rating: int
    duration_ms: int | None
    answer: dict[str, Any]
    state_before: dict[str, Any] | None
    state_after: dict[str, Any]


@dataclass(frozen=True)
class ReviewStore:
    db: Database

    # -- cards ----------------------------------------------------------------------------

    def cards(self, tenant: str, learners: Sequence[str]) -> dict[str, list[CardRow]]:
        """Every card of each learner."""
        out: dict[str, list[CardRow]] = {learner: [] for learner in learners}
        if not learners:
            return out
        marks = ", ".join("?" for _ in learners)
        with self.db.read() as cur:
            rows = cur.execute(
                "SELECT learner, question_id, case_id, card, reps, introduced_at FROM cards "
                f"WHERE tenant = ? AND learner IN ({marks}) ORDER BY due, question_id",
                [tenant, *learners],
            ).fetchall()
        for row in rows:
            out[row[0]].append(_card(row[1:]))
        return out

    def count_introduced(self, tenant: str, learner: str, since: datetime) -> int:
        with self.db.read() as cur:
            row = cur.execute(
                "SELECT COUNT(*) FROM cards WHERE tenant = ? AND learner = ? "
                "AND introduced_at >= ?",
                (tenant, learner, to_text(since)),
            ).fetchone()
        return int(row[0])

    def count_reviews_of_seen_cards(self, tenant: str, learner: str, since: datetime) -> int:
        """Reviews since ``since`` of cards met before (the daily review limit counts these;
        a card's first answer counts against the new-card limit instead)."""
        with self.db.read() as cur:
            row = cur.execute(
                "SELECT COUNT(*) FROM reviews WHERE tenant = ? AND learner = ? "
                "AND reviewed_at >= ? AND state_before IS NOT NULL",
                (tenant, learner, to_text(since)),
            ).fetchone()
        return int(row[0])

    # -- quiz sessions --------------------------------------------------------------------

    def create_session(
        self,
        tenant: str,
        learner: str,
        source: str,
        detail: dict[str, Any],
        items: Sequence[tuple[str, str]],
        at: datetime,
    ) -> str:
        """A session of ``items`` (question id, case id), in order."""
        session_id = new_id()
        with self.db.transaction() as cur:
            (pk,) = cur.execute(
                "INSERT INTO quiz_sessions (tenant, session_id, learner, source, detail, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (tenant, session_id, learner, source, json.dumps(detail), to_text(at)),
            ).fetchone()
            for position, (question_id, case_id) in enumerate(items, start=1):
                cur.execute(
                    "INSERT INTO session_items (session_pk, position, question_id, case_id, "
                    "hinted) VALUES (?, ?, ?, ?, 0)",
                    (int(pk), position, question_id, case_id),
                )
        return session_id

    def session(self, tenant: str, learner: str, session_id: str) -> QuizSession | None:
        """A learner's own session (another learner's is "not found")."""
        with self.db.read() as cur:
            row = cur.execute(
                "SELECT id, session_id, learner, source, detail, created_at FROM quiz_sessions "
                "WHERE tenant = ? AND learner = ? AND session_id = ?",
                (tenant, learner, session_id),
            ).fetchone()
            if row is None:
                return None
            items = cur.execute(
                "SELECT i.position, i.question_id, i.case_id, i.presented_at, i.hinted, "
                "i.answered_at, i.review_pk, r.correct FROM session_items i "
                "LEFT JOIN reviews r ON r.id = i.review_pk "
                "WHERE i.session_pk = ? ORDER BY i.position",
                (int(row[0]),),
            ).fetchall()
        return QuizSession(
            pk=int(row[0]),
            session_id=row[1],
            learner=row[2],
            source=row[3],
            detail=json.loads(row[4]),
            created_at=from_text(row[5]),
            items=[
                SessionItem(
                    position=int(i[0]),
                    question_id=i[1],
                    case_id=i[2],
                    presented_at=from_text(i[3]) if i[3] else None,
                    hinted=bool(i[4]),
                    answered_at=from_text(i[5]) if i[5] else None,
                    review_id=None if i[6] is None else int(i[6]),
                    correct=None if i[7] is None else bool(i[7]),
                )
                for i in items
            ],
        )

    def present(self, session_pk: int, position: int, at: datetime) -> datetime:
        """The time the item was first shown (set now if it never was)."""
        with self.db.transaction() as cur:
            cur.execute(
                "UPDATE session_items SET presented_at = ? WHERE session_pk = ? AND position = ? "
                "AND presented_at IS NULL",
                (to_text(at), session_pk, position),
            )
            (shown,) = cur.execute(
                "SELECT presented_at FROM session_items WHERE session_pk = ? AND position = ?",
                (session_pk, position),
            ).fetchone()
        return from_text(shown)

    def mark_hinted(self, session_pk: int, position: int) -> bool:
        """False when the item was already answered (a hint after the answer changes nothing)."""
        with self.db.transaction() as cur:
            row = cur.execute(
                "UPDATE session_items SET hinted = 1 WHERE session_pk = ? AND position = ? "
                "AND answered_at IS NULL RETURNING position",
                (session_pk, position),
            ).fetchone()
        return row is not None

    # -- answering ------------------------------------------------------------------------

    def record_answer(
        self,
        tenant: str,
        session: QuizSession,
        item: SessionItem,
        kind: str,
        at: datetime,
        decide: Callable[[Claim], AnswerOutcome],
    ) -> AnswerOutcome:
        """Claim the item, move the learner's card as ``decide`` says and log the review, in
        one transaction. Raises AlreadyAnswered, or RaceLost when another answer moved the
        card between the read and the write (the caller runs it again)."""
        with self.db.transaction() as cur:
            claimed = cur.execute(
                "UPDATE session_items SET answered_at = ? WHERE session_pk = ? AND position = ? "
                "AND answered_at IS NULL RETURNING presented_at, hinted",
                (to_text(at), session.pk, item.position),
            ).fetchone()
            if claimed is None:
                raise AlreadyAnswered
            row = cur.execute(
                "SELECT question_id, case_id, card, reps, introduced_at FROM cards "
                "WHERE tenant = ? AND learner = ? AND question_id = ?",
                (tenant, session.learner, item.question_id),
            ).fetchone()
            before = None if row is None else _card(row)
            outcome = decide(
                Claim(
                    presented_at=from_text(claimed[0]) if claimed[0] else None,
                    hinted=bool(claimed[1]),
                    card=before,
                )
            )
            _save_card(cur, tenant, session.learner, item, before, outcome.card, at)
            (review_pk,) = cur.execute(
                "INSERT INTO reviews (tenant, learner, question_id, case_id, session_id, kind, "
                "reviewed_at, correct, rating, duration_ms, hinted, answer, state_before, "
                "state_after) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    tenant,
                    session.learner,
                    item.question_id,
                    item.case_id,
                    session.session_id,
                    kind,
                    to_text(at),
                    int(outcome.correct),
                    outcome.rating,
                    outcome.duration_ms,
                    int(claimed[1]),
                    json.dumps(outcome.answer),
                    json.dumps(outcome.state_before) if outcome.state_before else None,
                    json.dumps(outcome.state_after),
                ),
            ).fetchone()
            cur.execute(
                "UPDATE session_items SET review_pk = ? WHERE session_pk = ? AND position = ?",
                (int(review_pk), session.pk, item.position),
            )
        return outcome

    # -- the review log -------------------------------------------------------------------

    def reviews(
        self,
        tenant: str,
        *,
        learners: Sequence[str] | None = None,
        since: datetime | None = None,
        review_id: int | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> tuple[int, list[ReviewEntry]]:
        """The review log, oldest first: of the given learners (everyone's when None)."""
        where = "tenant = ?"
        params: list[Any] = [tenant]
        if learners is not None:
            if not learners:
                return 0, []
            where += f" AND learner IN ({', '.join('?' for _ in learners)})"
            params += list(learners)
        if since is not None:
            where += " AND reviewed_at >= ?"
            params.append(to_text(since))
        if review_id is not None:
            where += " AND id = ?"
            params.append(review_id)
        page = "" if limit is None else f" LIMIT {int(limit)} OFFSET {int(offset)}"
        with self.db.read() as cur:
            (total,) = cur.execute(f"SELECT COUNT(*) FROM reviews WHERE {where}", params).fetchone()
            rows = cur.execute(
                f"SELECT {REVIEW_COLUMNS} FROM reviews WHERE {where} ORDER BY id{page}", params
            ).fetchall()
        return int(total), [_review(row) for row in rows]


def _save_card(
    cur: Cursor,
    tenant: str,
    learner: str,
    item: SessionItem,
    before: CardRow | None,
    card: Card,
    at: datetime,
) -> None:
    """Insert the learner's first card of the question, or move the card read before; raise
    RaceLost when another answer got there first."""
    if before is None:
        saved = cur.execute(
            "INSERT INTO cards (tenant, learner, question_id, case_id, card, due, reps, "
            "introduced_at) VALUES (?, ?, ?, ?, ?, ?, 1, ?) "
            "ON CONFLICT (tenant, learner, question_id) DO NOTHING RETURNING reps",
            (
                tenant,
                learner,
                item.question_id,
                item.case_id,
                card.to_json(),
                to_text(card.due),
                to_text(at),
            ),
        ).fetchone()
    else:
        saved = cur.execute(
            "UPDATE cards SET card = ?, due = ?, reps = reps + 1 WHERE tenant = ? "
            "AND learner = ? AND question_id = ? AND reps = ? RETURNING reps",
            (card.to_json(), to_text(card.due), tenant, learner, item.question_id, before.reps),
        ).fetchone()
    if saved is None:
        raise RaceLost


def _card(row: Sequence[Any]) -> CardRow:
    return CardRow(
        question_id=row[0],
        case_id=row[1],
        card=Card.from_json(row[2]),
        reps=int(row[3]),
        introduced_at=from_text(row[4]),
    )


def _review(row: Sequence[Any]) -> ReviewEntry:
    return ReviewEntry(
        id=int(row[0]),
        learner=row[1],
        reviewed_at=from_text(row[2]),
        case_id=row[3],
        question_id=row[4],
        session_id=row[5],
        kind=row[6],
        correct=bool(row[7]),
        rating=RATING_NAMES[Rating(int(row[8]))],
        duration_ms=None if row[9] is None else int(row[9]),
        hinted=bool(row[10]),
        state_before=json.loads(row[11]) if row[11] else None,
        state_after=json.loads(row[12]),
        answer=json.loads(row[13]) if row[13] else None,
    )
