"""A case's measured difficulty over a small review log written out by hand: the error rate
over a group's answers, and the mean over the learners who met the case of the FSRS
difficulty of their cards of it after their latest answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from teaching.cases.models import CaseStatus, CaseSummary, Tags
from teaching.learning.models import ProgramSettings, ReviewEntry
from teaching.learning.progress import Snapshot, case_difficulty, cohort_progress
from teaching.learning.scheduling import Scheduling

AT = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def summary(case_id: str, title: str) -> CaseSummary:
    return CaseSummary(
        id=case_id,
        title=title,
        status=CaseStatus.PUBLISHED,
        author="edu",
        tags=Tags(),
        teaching_study_instance_uid="1.2.3",
        pending_reviews=0,
        updated_at=AT,
    )


def log(*answers: tuple[str, str, str, bool, float]) -> list[ReviewEntry]:
    """(learner, case, question, correct, FSRS difficulty after) in the order answered."""
    return [
        ReviewEntry(
            id=n,
            learner=learner,
            reviewed_at=AT - timedelta(hours=len(answers) - n),
            case_id=case_id,
            question_id=question_id,
            session_id="s",
            kind="free_text",
            correct=correct,
            rating="good" if correct else "again",
            duration_ms=None,
            hinted=False,
            state_before=None,
            state_after={"state": "review", "difficulty": difficulty},
        )
        for n, (learner, case_id, question_id, correct, difficulty) in enumerate(answers)
    ]


def snapshot(reviews: list[ReviewEntry]) -> Snapshot:
    return Snapshot(
        at=AT,
        program=ProgramSettings(),
        scheduling=Scheduling(),
        cases={"a": summary("a", "Case A"), "b": summary("b", "Case B")},
        live_questions=[],
        cards={},
        reviews=reviews,
        introduced_today={},
    )


KNOWN = log(
    ("ann", "a", "q1", False, 7.0),
    ("ann", "a", "q1", True, 6.0),  # ann's latest on q1: 6
    ("ann", "a", "q2", True, 3.0),  # ann on case a: (6 + 3) / 2 = 4.5
    ("bob", "a", "q1", False, 8.0),  # bob on case a: 8
    ("ann", "b", "q3", True, 2.0),
    ("carl", "b", "q3", False, 9.0),  # not a member: not counted
    ("bob", "c", "q4", False, 5.0),  # a case deleted since
)


def test_error_rate_and_mean_difficulty_per_case_hardest_first() -> None:
    found = case_difficulty(snapshot(KNOWN), ["ann", "bob"])
    assert [c.case_id for c in found] == ["a", "c", "b"]
    a, c, b = found
    assert (a.title, a.learners, a.reviews, a.wrong) == ("Case A", 2, 4, 2)
    assert a.error_rate == 0.5
    assert a.difficulty == pytest.approx((4.5 + 8.0) / 2)
    assert (c.title, c.learners, c.error_rate, c.difficulty) == ("(deleted case)", 1, 1.0, 5.0)
    assert (b.learners, b.reviews, b.wrong, b.error_rate, b.difficulty) == (1, 1, 0, 0.0, 2.0)


def test_the_latest_answer_sets_a_cards_difficulty_whatever_the_log_order() -> None:
    shuffled = list(reversed(KNOWN))
    found = {c.case_id: c for c in case_difficulty(snapshot(shuffled), ["ann", "bob"])}
    assert found["a"].difficulty == pytest.approx(6.25)


def test_a_review_without_a_difficulty_counts_in_the_error_rate_only() -> None:
    reviews = log(("ann", "a", "q1", False, 7.0))
    reviews[0].state_after["difficulty"] = None
    (only,) = case_difficulty(snapshot(reviews), ["ann"])
    assert (only.error_rate, only.difficulty, only.learners) == (1.0, None, 1)


def test_the_cohort_report_carries_the_per_case_difficulty() -> None:
    report = cohort_progress(snapshot(KNOWN), "g", ["ann", "bob"])
    assert [c.case_id for c in report.by_case] == ["a", "c", "b"]
    assert case_difficulty(snapshot(KNOWN), []) == []
