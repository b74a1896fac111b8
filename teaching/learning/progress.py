"""Progress figures, computed from the review log and the cards (no figure is stored, so the
figures always agree with the log they come from).

- accuracy: correct answers / answers, over the review log;
- retention: FSRS's probability of recall now, averaged over the cards reviewed at least once;
- due counts: cards of live (published) questions due now, and before the day ends;
- streaks: consecutive days, in the program's time zone, with at least one answer; today
  counts once answered, and a streak is still current until a whole day passes without one;
- a case's measured difficulty: its error rate over a group's answers, and the FSRS difficulty
  of the learners' cards of it after their latest answers (FSRS moves a card's difficulty up
  at each Again and down at each Easy, so its mean says how hard the case was for these
  learners, beyond one wrong answer).

Every figure is also given per IHE TCE category, modality and level, by the case's tags now.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from teaching.cases.models import CaseSummary
from teaching.learning.models import (
    CaseDifficulty,
    CohortProgress,
    LearnerProgress,
    LearnerSummary,
    MissedCase,
    ProgramSettings,
    ReviewEntry,
    Streak,
    Tally,
)
from teaching.learning.scheduling import Scheduling
from teaching.learning.stores.reviews import CardRow

MOST_MISSED = 10


@dataclass(frozen=True)
class Snapshot:
    """Everything the figures of some learners are computed from, read at one moment."""

    at: datetime
    program: ProgramSettings
    scheduling: Scheduling
    cases: dict[str, CaseSummary]
    live_questions: list[str]
    cards: dict[str, list[CardRow]]
    reviews: list[ReviewEntry]
    introduced_today: dict[str, int]

    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.program.timezone)


def slices(case: CaseSummary | None) -> Iterable[tuple[str, str]]:
    """The (dimension, key) pairs a case's answers count under."""
    if case is None:
        return
    for code in case.tags.categories:
        yield "category", code
    for modality in case.tags.modalities:
        yield "modality", modality
    if case.tags.level:
        yield "level", case.tags.level


class Tallies:
    """Running tallies for the whole and for every slice."""

    def __init__(self) -> None:
        self.reviews: Counter[tuple[str, str]] = Counter()
        self.correct: Counter[tuple[str, str]] = Counter()
        self.cards: Counter[tuple[str, str]] = Counter()
        self.due: Counter[tuple[str, str]] = Counter()
        self.recall: defaultdict[tuple[str, str], list[float]] = defaultdict(list)

    def add_review(self, keys: list[tuple[str, str]], correct: bool) -> None:
        for key in keys:
            self.reviews[key] += 1
            self.correct[key] += int(correct)

    def add_card(self, keys: list[tuple[str, str]], recall: float | None, due: bool) -> None:
        for key in keys:
            self.cards[key] += 1
            self.due[key] += int(due)
            if recall is not None:
                self.recall[key].append(recall)

    def tally(self, key: tuple[str, str]) -> Tally:
        reviews, correct, recall = self.reviews[key], self.correct[key], self.recall[key]
        return Tally(
            key=key[1],
            reviews=reviews,
            correct=correct,
            accuracy=correct / reviews if reviews else None,
            cards=self.cards[key],
            retention=sum(recall) / len(recall) if recall else None,
            due_now=self.due[key],
        )

    def dimension(self, name: str) -> list[Tally]:
        keys = {k for k in (*self.reviews, *self.cards) if k[0] == name}
        return [self.tally(k) for k in sorted(keys)]


OVERALL = ("all", "all")


def _tallies(snap: Snapshot, learners: Sequence[str]) -> Tallies:
    wanted = set(learners)
    live = set(snap.live_questions)
    tallies = Tallies()
    for review in snap.reviews:
        if review.learner in wanted:
            keys = [OVERALL, *slices(snap.cases.get(review.case_id))]
            tallies.add_review(keys, review.correct)
    for learner in learners:
        for row in snap.cards.get(learner, []):
            keys = [OVERALL, *slices(snap.cases.get(row.case_id))]
            due = row.question_id in live and row.card.due <= snap.at
            tallies.add_card(keys, snap.scheduling.retrievability(row.card, snap.at), due)
    return tallies


def streak(snap: Snapshot, learner: str) -> Streak:
    tz = snap.tz()
    days = sorted(
        {r.reviewed_at.astimezone(tz).date() for r in snap.reviews if r.learner == learner}
    )
    longest = run = 0
    previous: date | None = None
    for day in days:
        run = run + 1 if previous is not None and day - previous == timedelta(days=1) else 1
        longest = max(longest, run)
        previous = day
    today = snap.at.astimezone(tz).date()
    current = run if previous is not None and today - previous <= timedelta(days=1) else 0
    return Streak(current=current, longest=longest, active_days=len(days))


def learner_progress(snap: Snapshot, learner: str) -> LearnerProgress:
    tz = snap.tz()
    tallies = _tallies(snap, [learner])
    cards = snap.cards.get(learner, [])
    live = set(snap.live_questions)
    local = snap.at.astimezone(tz)
    day_end = local.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    seen = {c.question_id for c in cards}
    return LearnerProgress(
        learner=learner,
        as_of=snap.at,
        overall=tallies.tally(OVERALL),
        due_today=sum(1 for c in cards if c.question_id in live and c.card.due < day_end),
        new_available=len(live - seen),
        new_left_today=max(0, snap.program.new_per_day - snap.introduced_today.get(learner, 0)),
        streak=streak(snap, learner),
        by_category=tallies.dimension("category"),
        by_modality=tallies.dimension("modality"),
        by_level=tallies.dimension("level"),
    )


def most_missed(snap: Snapshot, learners: Sequence[str]) -> list[MissedCase]:
    wanted = set(learners)
    answers: Counter[str] = Counter()
    wrong: Counter[str] = Counter()
    for review in snap.reviews:
        if review.learner in wanted:
            answers[review.case_id] += 1
            wrong[review.case_id] += int(not review.correct)
    missed = [
        MissedCase(
            case_id=case_id,
            title=_title(snap, case_id),
            reviews=answers[case_id],
            wrong=wrong[case_id],
            miss_rate=wrong[case_id] / answers[case_id],
        )
        for case_id in answers
        if wrong[case_id]
    ]
    missed.sort(key=lambda m: (-m.wrong, -m.miss_rate, m.case_id))
    return missed[:MOST_MISSED]


def _title(snap: Snapshot, case_id: str) -> str:
    return snap.cases[case_id].title if case_id in snap.cases else "(deleted case)"


def case_difficulty(snap: Snapshot, learners: Sequence[str]) -> list[CaseDifficulty]:
    """Every case ``learners`` answered, hardest first: its error rate over their answers,
    and the mean over the learners who met it of the FSRS difficulty of their cards of it (a
    learner's cards of a case averaged first, so each learner counts once)."""
    wanted = set(learners)
    answers: Counter[str] = Counter()
    wrong: Counter[str] = Counter()
    latest: dict[tuple[str, str, str], float | None] = {}
    for review in sorted(snap.reviews, key=lambda r: (r.reviewed_at, r.id)):
        if review.learner not in wanted:
            continue
        answers[review.case_id] += 1
        wrong[review.case_id] += int(not review.correct)
        value = review.state_after.get("difficulty")
        number = float(value) if isinstance(value, int | float) else None
        latest[(review.case_id, review.learner, review.question_id)] = number
    per_learner: defaultdict[tuple[str, str], list[float]] = defaultdict(list)
    met: defaultdict[str, set[str]] = defaultdict(set)
    for (case_id, learner, _), number in latest.items():
        met[case_id].add(learner)
        if number is not None:
            per_learner[(case_id, learner)].append(number)
    means: defaultdict[str, list[float]] = defaultdict(list)
    for (case_id, _), numbers in per_learner.items():
        means[case_id].append(sum(numbers) / len(numbers))
    cases = [
        CaseDifficulty(
            case_id=case_id,
            title=_title(snap, case_id),
            learners=len(met[case_id]),
            reviews=answers[case_id],
            wrong=wrong[case_id],
            error_rate=wrong[case_id] / answers[case_id],
            difficulty=sum(means[case_id]) / len(means[case_id]) if means[case_id] else None,
        )
        for case_id in answers
    ]
    cases.sort(key=lambda c: (-(c.difficulty or 0.0), -c.error_rate, c.case_id))
    return cases


def cohort_progress(snap: Snapshot, group_id: str, members: Sequence[str]) -> CohortProgress:
    tallies = _tallies(snap, members)
    return CohortProgress(
        group_id=group_id,
        as_of=snap.at,
        learners=[
            LearnerSummary(
                learner=m, overall=_tallies(snap, [m]).tally(OVERALL), streak=streak(snap, m)
            )
            for m in members
        ],
        overall=tallies.tally(OVERALL),
        by_category=tallies.dimension("category"),
        by_modality=tallies.dimension("modality"),
        by_level=tallies.dimension("level"),
        most_missed=most_missed(snap, members),
        by_case=case_difficulty(snap, members),
    )
