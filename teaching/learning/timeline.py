"""A learner's figures over time: accuracy and retention day by day, and the reviews coming
due in the days ahead. Computed, like every progress figure, from the review log and the
cards read in one :class:`~teaching.learning.progress.Snapshot`.

- accuracy of a day: that day's correct answers / that day's answers (None without answers);
- retention at the end of a day: FSRS's probability of recall at that moment, averaged over
  the cards reviewed by then, each as its last review before that moment left it (the log
  keeps every card state after each answer, so the past is rebuilt, not approximated);
- due forecast: the cards of live questions falling due on each of the coming days; what is
  already overdue counts on today, where the learner will meet it.

Days are the program's (its time zone), as for the daily limits and the streaks.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, time, timedelta
from typing import Any

from fsrs import Card, State

from teaching.learning.models import DayFigures, DueDay
from teaching.learning.progress import Snapshot
from teaching.learning.scheduling import STATE_NAMES

STATES = {name: state for state, name in STATE_NAMES.items()}
FORECAST_DAYS = 14
TIMELINE_DAYS = 30


def due_forecast(snap: Snapshot, learner: str, days: int = FORECAST_DAYS) -> list[DueDay]:
    """Reviews due on each of the ``days`` days from today (today first, overdue included)."""
    tz = snap.tz()
    today = snap.at.astimezone(tz).date()
    live = set(snap.live_questions)
    counts: Counter[int] = Counter()
    for row in snap.cards.get(learner, []):
        if row.question_id not in live:
            continue
        offset = max(0, (row.card.due.astimezone(tz).date() - today).days)
        if offset < days:
            counts[offset] += 1
    return [DueDay(day=today + timedelta(days=n), due=counts[n]) for n in range(days)]


def _card(state: dict[str, Any]) -> Card | None:
    """The card a logged state describes, enough for its retrievability; None when the
    entry lacks what the forgetting curve needs."""
    stability, last = state.get("stability"), state.get("last_review")
    if not isinstance(stability, int | float) or not isinstance(last, str):
        return None
    return Card(
        state=STATES.get(str(state.get("state")), State.Review),
        stability=float(stability),
        difficulty=_number(state.get("difficulty")),
        due=datetime.fromisoformat(str(state["due"])),
        last_review=datetime.fromisoformat(last),
    )


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def timeline(snap: Snapshot, learner: str, days: int = TIMELINE_DAYS) -> list[DayFigures]:
    """Accuracy and retention of each of the last ``days`` days, today last."""
    tz = snap.tz()
    today = snap.at.astimezone(tz).date()
    first = today - timedelta(days=days - 1)
    reviews = sorted(
        (r for r in snap.reviews if r.learner == learner), key=lambda r: (r.reviewed_at, r.id)
    )
    scheduler = snap.scheduling.scheduler()
    latest: dict[str, Card] = {}
    answers: Counter[date] = Counter()
    correct: Counter[date] = Counter()
    out: list[DayFigures] = []
    index = 0
    for n in range(days):
        day = first + timedelta(days=n)
        end = datetime.combine(day + timedelta(days=1), time(), tz)
        moment = min(end, snap.at)
        while index < len(reviews) and reviews[index].reviewed_at <= moment:
            review = reviews[index]
            index += 1
            local = review.reviewed_at.astimezone(tz).date()
            answers[local] += 1
            correct[local] += int(review.correct)
            card = _card(review.state_after)
            if card is not None:
                latest[review.question_id] = card
        recall = [float(scheduler.get_card_retrievability(c, moment)) for c in latest.values()]
        out.append(
            DayFigures(
                day=day,
                reviews=answers[day],
                correct=correct[day],
                accuracy=correct[day] / answers[day] if answers[day] else None,
                retention=sum(recall) / len(recall) if recall else None,
            )
        )
    return out
