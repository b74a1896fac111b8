"""What the quiz, spaced-repetition and progress endpoints read and write (pydantic).

A learner's view of a case before answering (:class:`UnknownCase`) is a separate model from
the case itself, built field by field: the title, diagnosis, findings, discussion,
differential and free tags are simply not in it, so no serialisation path can leak them.
They arrive as :class:`RevealedCase` once every question of the case in the session has been
answered.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from teaching.cases.models import Category, KeyImage, Level, Modality, Strict, Tags
from teaching.learning.questions import Answer, Key, QuestionPrompt

CaseId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{24}$")]
Username = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


def _timezone(value: str) -> str:
    if value not in available_timezones() and value != "UTC":
        raise ValueError("not an IANA time zone name (e.g. Europe/Paris)")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone: {exc}") from None
    return value


class ProgramSettings(Strict):
    """A residency program's (institution's) learning settings."""

    desired_retention: float = Field(
        default=0.9, ge=0.7, le=0.99, description="FSRS target probability of recall at review time"
    )
    new_per_day: int = Field(
        default=20, ge=0, le=1000, description="new cards a learner meets a day"
    )
    reviews_per_day: int = Field(
        default=200, ge=0, le=10000, description="due reviews served a day"
    )
    fast_answer_seconds: float = Field(
        default=20,
        gt=0,
        le=3600,
        description="a correct answer this fast, without hint, rates Easy",
    )
    timezone: Annotated[str, AfterValidator(_timezone)] = Field(
        default="UTC", description="where the program's days (limits, streaks) begin and end"
    )


# -- groups and assignments -----------------------------------------------------------------


class GroupIn(Strict):
    name: Name
    members: list[Username] = Field(default_factory=list, max_length=2000)


class Group(BaseModel):
    id: str
    name: str
    members: list[str]
    created_by: str
    created_at: datetime


class AssignmentIn(Strict):
    title: Name
    case_ids: list[CaseId] = Field(min_length=1, max_length=500)
    due_at: datetime | None = None


class Assignment(BaseModel):
    id: str
    group_id: str
    title: str
    case_ids: list[str]
    due_at: datetime | None
    created_by: str
    created_at: datetime


# -- quiz sessions ----------------------------------------------------------------------------


class TagFilter(Strict):
    category: Category | None = None
    level: Level | None = None
    modality: Modality | None = None
    anatomy: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None


class FromTags(Strict):
    source: Literal["tags"] = "tags"
    filter: TagFilter = Field(default_factory=TagFilter)
    limit: int = Field(default=20, ge=1, le=200, description="questions in the session")


class FromDue(Strict):
    source: Literal["due"] = "due"
    limit: int = Field(default=50, ge=1, le=500)


class FromAssignment(Strict):
    source: Literal["assignment"] = "assignment"
    assignment_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{24}$")]


SessionStart = Annotated[FromTags | FromDue | FromAssignment, Field(discriminator="source")]


class ItemState(BaseModel):
    position: int
    case_id: str
    question_id: str
    answered: bool
    correct: bool | None = None


class SessionView(BaseModel):
    id: str
    source: str
    created_at: datetime
    items: list[ItemState]
    next_position: int | None = Field(description="the first unanswered item, None when done")


class UnknownCase(BaseModel):
    """A case presented as an unknown: what a radiologist gets before reading the images."""

    id: str
    history: str
    categories: list[str]
    level: str | None
    modalities: list[str]
    anatomy: list[str]
    teaching_study_instance_uid: str = Field(description="open it through /teaching/dicomweb")
    key_images: list[KeyImage] = Field(description="the images to look at (notes removed)")


class RevealedCase(BaseModel):
    id: str
    title: str
    diagnosis: str
    findings: str
    discussion: str
    differential: list[str]
    tags: Tags
    key_images: list[KeyImage]


class CardView(BaseModel):
    state: str
    stability: float | None
    difficulty: float | None
    due: datetime
    last_review: datetime | None


class ItemView(BaseModel):
    position: int
    case: UnknownCase
    question: QuestionPrompt
    presented_at: datetime
    answered: bool
    hinted: bool = False
    hint: str | None = Field(default=None, description="the hint, once asked for")
    result: AnswerResult | None = None
    revealed: RevealedCase | None = None


class AnswerResult(BaseModel):
    correct: bool
    rating: str = Field(description="the FSRS rating the answer earned: again, good or easy")
    duration_ms: int | None
    hinted: bool
    answer: Answer | None = Field(default=None, description="what the learner answered")
    feedback: str
    solution: Key
    card: CardView
    revealed: RevealedCase | None = Field(
        default=None, description="the case, once every question of it in the session is answered"
    )
    next_position: int | None


class Hint(BaseModel):
    hint: str


# -- progress ---------------------------------------------------------------------------------


class Tally(BaseModel):
    """Answers, cards and recall for one slice (all, a category, a modality, a level)."""

    key: str
    reviews: int = 0
    correct: int = 0
    accuracy: float | None = None
    cards: int = 0
    retention: float | None = Field(default=None, description="mean FSRS retrievability now")
    due_now: int = 0


class Streak(BaseModel):
    current: int
    longest: int
    active_days: int


class DueDay(BaseModel):
    day: date = Field(description="a day of the program's time zone")
    due: int = Field(description="reviews due that day (today: overdue ones included)")


class DayFigures(BaseModel):
    day: date
    reviews: int
    correct: int
    accuracy: float | None = Field(description="correct / answers that day; None without any")
    retention: float | None = Field(
        description="mean FSRS probability of recall at the day's end, over the cards reviewed"
    )


class LearnerProgress(BaseModel):
    learner: str
    as_of: datetime
    overall: Tally
    due_today: int
    new_available: int
    new_left_today: int
    streak: Streak
    by_category: list[Tally]
    by_modality: list[Tally]
    by_level: list[Tally]
    due_forecast: list[DueDay] = Field(
        default_factory=list, description="reviews due on each of the next 14 days, today first"
    )


class ReviewEntry(BaseModel):
    id: int
    learner: str
    reviewed_at: datetime
    case_id: str
    question_id: str
    session_id: str
    kind: str
    correct: bool
    rating: str
    duration_ms: int | None
    hinted: bool
    state_before: dict[str, object] | None
    state_after: dict[str, object]
    answer: dict[str, object] | None = Field(
        default=None, description="what the learner answered, as sent"
    )


class ReviewPage(BaseModel):
    total: int
    limit: int
    offset: int
    reviews: list[ReviewEntry]


class LearnerSummary(BaseModel):
    learner: str
    overall: Tally
    streak: Streak


class MissedCase(BaseModel):
    case_id: str
    title: str
    reviews: int
    wrong: int
    miss_rate: float


class CaseDifficulty(BaseModel):
    """How hard a case measured out for the learners who met it, from the review log."""

    case_id: str
    title: str
    learners: int = Field(description="members who answered a question of the case")
    reviews: int
    wrong: int
    error_rate: float = Field(description="wrong answers / answers")
    difficulty: float | None = Field(
        description="mean over those learners of the FSRS difficulty (1 easiest to 10 hardest) "
        "of their cards of the case after their latest answer to each"
    )


class CohortProgress(BaseModel):
    group_id: str
    as_of: datetime
    learners: list[LearnerSummary]
    overall: Tally
    by_category: list[Tally]
    by_modality: list[Tally]
    by_level: list[Tally]
    most_missed: list[MissedCase]
    by_case: list[CaseDifficulty] = Field(
        default_factory=list,
        description="every case the members answered, hardest first (FSRS difficulty, then "
        "error rate)",
    )


ItemView.model_rebuild()
