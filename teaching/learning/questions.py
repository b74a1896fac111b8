"""Questions attached to a teaching case, as educators write them and learners answer them.

Three kinds, told apart by ``kind``:

- ``multiple_choice``: options, one or several of them correct; an answer is right only when
  it selects exactly the correct set (a partial selection is wrong).
- ``free_text``: a diagnosis typed by the learner, right when it matches an accepted answer
  or a synonym after normalising case, accents, punctuation and word order.
- ``locate``: the learner points at the finding on an image of the teaching copy; right when
  the point (pixel coordinates of that frame) lies inside or on the border of the stored
  region, a polygon or an ellipse.

What a learner sees before answering is :class:`QuestionPrompt`: the prompt, the options,
the image to point on, never the key or the feedback.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints, model_validator

from teaching.cases.models import Strict, Uid

Prompt = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
Feedback = Annotated[str, StringConstraints(max_length=5000)]
AnswerText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
OptionId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
Coordinate = Annotated[float, Field(ge=-1e6, le=1e6, allow_inf_nan=False)]


class Option(Strict):
    id: OptionId
    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class MultipleChoiceKey(Strict):
    kind: Literal["multiple_choice"] = "multiple_choice"
    options: list[Option] = Field(min_length=2, max_length=26)
    correct: list[OptionId] = Field(min_length=1, max_length=26)

    @model_validator(mode="after")
    def _consistent(self) -> MultipleChoiceKey:
        ids = [o.id for o in self.options]
        if len(set(ids)) != len(ids):
            raise ValueError("option ids must be unique")
        unknown = [c for c in self.correct if c not in ids]
        if unknown:
            raise ValueError(f"correct names unknown option(s): {', '.join(unknown)}")
        if len(set(self.correct)) != len(self.correct):
            raise ValueError("correct lists an option twice")
        return self

    @property
    def multiple(self) -> bool:
        """Several options are correct: the learner is told to select all that apply."""
        return len(self.correct) > 1


class FreeTextKey(Strict):
    kind: Literal["free_text"] = "free_text"
    accepted: list[AnswerText] = Field(
        min_length=1, max_length=20, description="the answer(s), shown as the answer afterwards"
    )
    synonyms: list[AnswerText] = Field(
        default_factory=list, max_length=100, description="also accepted, never shown"
    )


class Polygon(Strict):
    shape: Literal["polygon"] = "polygon"
    points: list[tuple[Coordinate, Coordinate]] = Field(min_length=3, max_length=1000)

    @model_validator(mode="after")
    def _has_area(self) -> Polygon:
        """An outline with no area (its points all on one line) cannot hold a finding."""
        if not spans_area(self.points):
            raise ValueError("the polygon has no area: its points are all on one line")
        return self


def spans_area(points: list[tuple[float, float]]) -> bool:
    """Some three of the points are not on one line."""
    (x0, y0) = points[0]
    direction = next(((x, y) for x, y in points if (x, y) != (x0, y0)), None)
    if direction is None:
        return False
    dx, dy = direction[0] - x0, direction[1] - y0
    return any(abs(dx * (y - y0) - dy * (x - x0)) > 1e-9 for x, y in points)


class Ellipse(Strict):
    """Axis-aligned ellipse: centre and semi-axes, in pixels (column ``x``, row ``y``)."""

    shape: Literal["ellipse"] = "ellipse"
    cx: Coordinate
    cy: Coordinate
    rx: Annotated[float, Field(gt=0, le=1e6)]
    ry: Annotated[float, Field(gt=0, le=1e6)]


Region = Annotated[Polygon | Ellipse, Field(discriminator="shape")]


class LocateKey(Strict):
    """Where the finding is: a region on one frame of one instance of the teaching copy,
    in that frame's pixel coordinates (``x`` the column, ``y`` the row, from the top-left
    corner: the coordinates of the rendered image at full size)."""

    kind: Literal["locate"] = "locate"
    sop_instance_uid: Uid
    frame: int = Field(default=1, ge=1)
    region: Region


Key = Annotated[MultipleChoiceKey | FreeTextKey | LocateKey, Field(discriminator="kind")]


class QuestionIn(Strict):
    """``POST /api/cases/{id}/questions`` (and ``PUT`` to replace one)."""

    prompt: Prompt
    key: Key
    feedback: Feedback = ""
    hint: Feedback = ""
    position: int | None = Field(None, ge=0, le=10000, description="order within the case")


class Question(BaseModel):
    """A question as educators read it: the key and the feedback included."""

    id: str
    case_id: str
    position: int
    prompt: str
    key: Key
    feedback: str
    hint: str
    created_at: datetime
    updated_at: datetime


class QuestionPrompt(BaseModel):
    """A question as a learner sees it before answering: nothing that gives the answer."""

    id: str
    kind: Literal["multiple_choice", "free_text", "locate"]
    prompt: str
    options: list[Option] | None = None
    select_all_that_apply: bool | None = None
    sop_instance_uid: str | None = Field(default=None, description="locate: the image to point on")
    frame: int | None = None
    has_hint: bool = False

    @classmethod
    def of(cls, question: Question) -> QuestionPrompt:
        key = question.key
        shown = cls(
            id=question.id, kind=key.kind, prompt=question.prompt, has_hint=bool(question.hint)
        )
        if isinstance(key, MultipleChoiceKey):
            shown.options = key.options
            shown.select_all_that_apply = key.multiple
        elif isinstance(key, LocateKey):
            shown.sop_instance_uid = key.sop_instance_uid
            shown.frame = key.frame
        return shown


class MultipleChoiceAnswer(Strict):
    kind: Literal["multiple_choice"] = "multiple_choice"
    selected: list[OptionId] = Field(max_length=26)


class FreeTextAnswer(Strict):
    kind: Literal["free_text"] = "free_text"
    text: Annotated[str, StringConstraints(max_length=300)]


class LocateAnswer(Strict):
    kind: Literal["locate"] = "locate"
    sop_instance_uid: Uid
    frame: int = Field(default=1, ge=1)
    x: Coordinate
    y: Coordinate


Answer = Annotated[
    MultipleChoiceAnswer | FreeTextAnswer | LocateAnswer, Field(discriminator="kind")
]
