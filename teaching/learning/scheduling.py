"""Spaced repetition with FSRS (the ``fsrs`` package, version pinned in pyproject.toml).

One card per learner per question. The learner never rates themselves: the server turns the
graded answer into the rating, so a card's schedule follows what the learner actually did:

- wrong → Again (never Hard: a wrong answer is a lapse, not a difficult success);
- right → Good;
- right, without the hint, within the program's "fast answer" time → Easy.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fsrs import Card, Rating, Scheduler, State

STATE_NAMES = {State.Learning: "learning", State.Review: "review", State.Relearning: "relearning"}
RATING_NAMES = {
    Rating.Again: "again",
    Rating.Hard: "hard",
    Rating.Good: "good",
    Rating.Easy: "easy",
}


def rating_for(correct: bool, hinted: bool, duration_ms: int | None, fast_ms: int) -> Rating:
    """The FSRS rating of a graded answer. Easy needs a measured duration: an answer whose
    question was never shown (no presentation time) cannot prove it was fast."""
    if not correct:
        return Rating.Again
    if not hinted and duration_ms is not None and duration_ms <= fast_ms:
        return Rating.Easy
    return Rating.Good


def start_of_day(at: datetime, timezone: str) -> datetime:
    """Midnight of ``at``'s day in the program's time zone, in UTC: where the daily limits of
    new cards and reviews start counting."""
    local = at.astimezone(ZoneInfo(timezone))
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


def card_number(learner: str, question_id: str) -> int:
    """A stable FSRS ``card_id`` (the optimiser groups review logs by it): 53 bits of a hash,
    so it survives JSON round trips through any client."""
    digest = hashlib.sha256(f"{learner}\x00{question_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 11


def new_card(learner: str, question_id: str, now: datetime) -> Card:
    return Card(card_id=card_number(learner, question_id), due=now)


def card_state(card: Card) -> dict[str, Any]:
    """The card as the review log and the API show it."""
    return {
        "state": STATE_NAMES[card.state],
        "step": card.step,
        "stability": card.stability,
        "difficulty": card.difficulty,
        "due": card.due.isoformat(),
        "last_review": card.last_review.isoformat() if card.last_review else None,
    }


@dataclass(frozen=True)
class Scheduling:
    """FSRS with a program's desired retention."""

    desired_retention: float = 0.9

    def scheduler(self) -> Scheduler:
        return Scheduler(desired_retention=self.desired_retention)

    def review(self, card: Card, rating: Rating, at: datetime, duration_ms: int | None) -> Card:
        reviewed, _ = self.scheduler().review_card(
            card, rating, review_datetime=at, review_duration=duration_ms
        )
        return reviewed

    def retrievability(self, card: Card, at: datetime) -> float | None:
        """The probability of recall now (FSRS's forgetting curve); None for a card never
        reviewed."""
        if card.last_review is None:
            return None
        return float(self.scheduler().get_card_retrievability(card, at))
