"""The figures over time (teaching/learning/timeline.py): the due forecast by program day,
accuracy by day, and retention rebuilt from the card states the review log keeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fsrs import Card, Rating

from teaching.learning.models import ProgramSettings, ReviewEntry
from teaching.learning.progress import Snapshot
from teaching.learning.scheduling import Scheduling, card_state, new_card
from teaching.learning.stores.reviews import CardRow
from teaching.learning.timeline import due_forecast, timeline

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
SCHEDULING = Scheduling(0.9)


def row(question: str, due: datetime) -> CardRow:
    return CardRow(question, "c" * 24, Card(due=due), reps=1, introduced_at=NOW)


def snapshot(
    cards: list[CardRow], reviews: list[ReviewEntry] | None = None, timezone: str = "UTC"
) -> Snapshot:
    return Snapshot(
        at=NOW,
        program=ProgramSettings(timezone=timezone),
        scheduling=SCHEDULING,
        cases={},
        live_questions=["q1", "q2", "q3", "q4"],
        cards={"ann": cards},
        reviews=reviews or [],
        introduced_today={},
    )


def test_the_forecast_counts_each_coming_day_and_overdue_ones_today() -> None:
    cards = [
        row("q1", NOW - timedelta(days=3)),  # overdue: today
        row("q2", NOW + timedelta(hours=2)),  # later today
        row("q3", NOW + timedelta(days=2)),
        row("q4", NOW + timedelta(days=20)),  # beyond the forecast
        row("withdrawn", NOW),  # not a live question
    ]
    forecast = due_forecast(snapshot(cards), "ann")
    assert len(forecast) == 14
    assert forecast[0].day == NOW.date() and forecast[13].day == NOW.date() + timedelta(days=13)
    assert [d.due for d in forecast[:4]] == [2, 0, 1, 0]
    assert sum(d.due for d in forecast) == 3


def test_the_forecast_days_are_the_programs() -> None:
    # 12:00 UTC on 10 March is 01:00 on 11 March in Auckland (UTC+13): a card due at
    # 00:30 UTC on 11 March is due tomorrow in UTC but today there.
    cards = [row("q1", NOW + timedelta(hours=12, minutes=30))]
    assert [d.due for d in due_forecast(snapshot(cards), "ann")[:2]] == [0, 1]
    forecast = due_forecast(snapshot(cards, timezone="Pacific/Auckland"), "ann")
    assert forecast[0].day == datetime(2026, 3, 11).date()
    assert [d.due for d in forecast[:2]] == [1, 0]


def answered(
    question: str, at: datetime, rating: Rating, card: Card, n: int
) -> tuple[ReviewEntry, Card]:
    after = SCHEDULING.review(card, rating, at, 5000)
    entry = ReviewEntry(
        id=n,
        learner="ann",
        reviewed_at=at,
        case_id="c" * 24,
        question_id=question,
        session_id="s" * 24,
        kind="free_text",
        correct=rating is not Rating.Again,
        rating="good" if rating is not Rating.Again else "again",
        duration_ms=5000,
        hinted=False,
        state_before=None,
        state_after=card_state(after),
    )
    return entry, after


def test_accuracy_by_day_and_retention_from_the_logged_card_states() -> None:
    day1 = NOW - timedelta(days=2)
    r1, c1 = answered("q1", day1, Rating.Good, new_card("ann", "q1", day1), 1)
    r2, c2 = answered(
        "q2", day1 + timedelta(minutes=1), Rating.Again, new_card("ann", "q2", day1), 2
    )
    r3, c3 = answered("q1", NOW - timedelta(hours=1), Rating.Good, c1, 3)
    days = timeline(snapshot([], [r1, r2, r3]), "ann", days=5)
    assert [d.day for d in days] == [NOW.date() - timedelta(days=n) for n in (4, 3, 2, 1, 0)]
    assert [d.reviews for d in days] == [0, 0, 2, 0, 1]
    assert days[0].accuracy is None and days[0].retention is None
    assert days[2].accuracy == 0.5 and days[4].accuracy == 1.0
    # Retention never exceeds 1, falls while no review comes, and today it is the mean of
    # the two cards' recall now, q1 as its second review left it.
    assert days[2].retention is not None and days[3].retention is not None
    assert 0 < days[3].retention < days[2].retention <= 1
    scheduler = SCHEDULING.scheduler()
    expected = [scheduler.get_card_retrievability(card, NOW) for card in (c3, c2)]
    assert days[4].retention is not None
    assert abs(days[4].retention - sum(expected) / 2) < 1e-9
    assert timeline(snapshot([], [r1, r2, r3]), "bob", days=3)[-1].retention is None
