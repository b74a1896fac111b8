"""The question editor's form: its fields to a :class:`QuestionIn`, a question back to its
fields, and validation errors as sentences naming the field as the form labels it.

The form is flat (it works without scripts): options are rows ``option-text-N`` with a
checkbox ``correct`` whose value is N, free-text answers are one per line, a locate region is
either an ellipse's ``cx``/``cy``/``rx``/``ry`` or a polygon's ``points``, one ``x, y`` a line.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import FormData

from radcase_pacs.web.forms import field as text_field
from teaching.learning.questions import (
    Ellipse,
    FreeTextKey,
    LocateKey,
    MultipleChoiceKey,
    Question,
    QuestionIn,
)

KINDS = {
    "multiple_choice": "Multiple choice",
    "free_text": "Free-text diagnosis",
    "locate": "Locate the finding",
}
MAX_OPTIONS = 26
NUMBER = re.compile(r"^-?\d{1,7}(\.\d{1,6})?$")
LABELS = {
    "prompt": "Prompt",
    "feedback": "Feedback",
    "hint": "Hint",
    "options": "Options",
    "correct": "Correct options",
    "accepted": "Accepted answers",
    "synonyms": "Synonyms",
    "sop_instance_uid": "Image",
    "frame": "Frame",
    "region": "Region",
    "points": "Polygon points",
    "cx": "Ellipse centre column (cx)",
    "cy": "Ellipse centre row (cy)",
    "rx": "Ellipse half-width (rx)",
    "ry": "Ellipse half-height (ry)",
}
TAGS = {"multiple_choice", "free_text", "locate", "polygon", "ellipse", "key"}


@dataclass
class Draft:
    """What the form shows: the fields as typed (kept on an error), by kind."""

    kind: str
    prompt: str = ""
    feedback: str = ""
    hint: str = ""
    options: list[dict[str, Any]] = field(default_factory=list)
    accepted: str = ""
    synonyms: str = ""
    sop: str = ""
    frame: str = "1"
    region_shape: str = "ellipse"
    cx: str = ""
    cy: str = ""
    rx: str = ""
    ry: str = ""
    points: str = ""


def blank(kind: str) -> Draft:
    draft = Draft(kind=kind)
    if kind == "multiple_choice":
        draft.options = [{"id": letter, "text": "", "correct": False} for letter in "abcd"]
    return draft


def from_question(question: Question) -> Draft:
    key = question.key
    draft = Draft(
        kind=key.kind, prompt=question.prompt, feedback=question.feedback, hint=question.hint
    )
    if isinstance(key, MultipleChoiceKey):
        draft.options = [
            {"id": o.id, "text": o.text, "correct": o.id in key.correct} for o in key.options
        ]
    elif isinstance(key, FreeTextKey):
        draft.accepted = "\n".join(key.accepted)
        draft.synonyms = "\n".join(key.synonyms)
    elif isinstance(key, LocateKey):
        draft.sop, draft.frame = key.sop_instance_uid, str(key.frame)
        region = key.region
        if isinstance(region, Ellipse):
            draft.region_shape = "ellipse"
            draft.cx, draft.cy = _shown(region.cx), _shown(region.cy)
            draft.rx, draft.ry = _shown(region.rx), _shown(region.ry)
        else:
            draft.region_shape = "polygon"
            draft.points = "\n".join(f"{_shown(x)}, {_shown(y)}" for x, y in region.points)
    return draft


def from_form(form: FormData, kind: str) -> Draft:
    """The draft as posted; option rows renumbered in order, empty ones kept for the form."""
    draft = Draft(
        kind=kind,
        prompt=text_field(form, "prompt", limit=2100),
        feedback=text_field(form, "feedback", limit=5100),
        hint=text_field(form, "hint", limit=5100),
    )
    if kind == "multiple_choice":
        correct = {v for v in form.getlist("correct") if isinstance(v, str)}
        rows = sorted(
            {int(m.group(1)) for n in form if (m := re.fullmatch(r"option-text-(\d{1,2})", n))}
        )
        for row in rows[:MAX_OPTIONS]:
            draft.options.append(
                {
                    "id": text_field(form, f"option-id-{row}", limit=32),
                    "text": text_field(form, f"option-text-{row}", limit=600),
                    "correct": str(row) in correct,
                }
            )
    elif kind == "free_text":
        draft.accepted = text_field(form, "accepted", limit=10000)
        draft.synonyms = text_field(form, "synonyms", limit=40000)
    elif kind == "locate":
        draft.sop = text_field(form, "sop", limit=64)
        draft.frame = text_field(form, "frame", limit=10).strip()
        shape = text_field(form, "region_shape", limit=10)
        draft.region_shape = shape if shape in ("ellipse", "polygon") else "ellipse"
        for name in ("cx", "cy", "rx", "ry"):
            setattr(draft, name, text_field(form, name, limit=20).strip())
        draft.points = text_field(form, "points", limit=40000)
    return draft


def to_question(draft: Draft) -> tuple[QuestionIn | None, list[str]]:
    """The draft as a question, or the sentences saying what is wrong with it."""
    errors: list[str] = []
    key: dict[str, Any] = {"kind": draft.kind}
    if draft.kind == "multiple_choice":
        filled = [o for o in draft.options if o["text"].strip()]
        ids = _option_ids(filled)
        key["options"] = [{"id": i, "text": o["text"]} for i, o in zip(ids, filled, strict=True)]
        key["correct"] = [i for i, o in zip(ids, filled, strict=True) if o["correct"]]
        if len(filled) < 2:
            errors.append("Options: write at least two options.")
        elif not key["correct"]:
            errors.append("Correct options: tick the option (or options) that are right.")
    elif draft.kind == "free_text":
        key["accepted"] = _lines(draft.accepted)
        key["synonyms"] = _lines(draft.synonyms)
        if not key["accepted"]:
            errors.append("Accepted answers: write the answer, one per line.")
    elif draft.kind == "locate":
        key["sop_instance_uid"] = draft.sop
        if not draft.sop:
            errors.append("Image: choose the image the finding is on.")
        if not draft.frame.isdigit():
            errors.append("Frame: enter a whole number, 1 or more.")
        else:
            key["frame"] = int(draft.frame)
        key["region"] = _region(draft, errors)
    if errors:
        return None, errors
    body = {"prompt": draft.prompt, "key": key, "feedback": draft.feedback, "hint": draft.hint}
    try:
        return QuestionIn.model_validate(body), []
    except ValidationError as exc:
        return None, sentences(exc)


def sentences(error: ValidationError) -> list[str]:
    """Each validation error as "Field: what is wrong." with the field as the form names it
    (the union's tag names left out of the path)."""
    out = []
    for item in error.errors():
        parts = [p for p in item["loc"] if p not in TAGS]
        names = [str(p) for p in parts if isinstance(p, str)]
        numbers = [p for p in parts if isinstance(p, int)]
        label = LABELS.get(names[-1], names[-1].replace("_", " ").capitalize()) if names else "Key"
        if numbers and names and names[0] == "options":
            label = f"Option {numbers[0] + 1}"
        elif numbers and names and names[-1] in ("accepted", "synonyms"):
            label = f"{label}, line {numbers[0] + 1}"
        message = str(item["msg"]).removeprefix("Value error, ")
        out.append(f"{label}: {message[0].lower() + message[1:]}.")
    return out


def _option_ids(options: list[dict[str, Any]]) -> list[str]:
    """Each option keeps its id; a new one gets the first free letter."""
    taken = {o["id"] for o in options if re.fullmatch(r"[A-Za-z0-9_-]{1,32}", o["id"] or "")}
    free = (c for c in string.ascii_lowercase + string.ascii_uppercase if c not in taken)
    ids, seen = [], set()
    for option in options:
        ident = option["id"]
        if ident not in taken or ident in seen:
            ident = next(free)
        seen.add(ident)
        ids.append(ident)
    return ids


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _region(draft: Draft, errors: list[str]) -> dict[str, Any]:
    if draft.region_shape == "ellipse":
        region: dict[str, Any] = {"shape": "ellipse"}
        for name in ("cx", "cy", "rx", "ry"):
            value = getattr(draft, name)
            if not NUMBER.match(value):
                errors.append(f"{LABELS[name]}: enter a number of pixels.")
            else:
                region[name] = float(value)
        return region
    points = []
    for number, line in enumerate(_lines(draft.points), start=1):
        parts = [p for p in re.split(r"[\s,;]+", line) if p]
        if len(parts) != 2 or not all(NUMBER.match(p) for p in parts):
            errors.append(f"Polygon points, line {number}: write a column and a row, as 120, 85.")
            continue
        points.append((float(parts[0]), float(parts[1])))
    if not _lines(draft.points):
        errors.append("Polygon points: draw the outline, or write its points, one per line.")
    return {"shape": "polygon", "points": points}


def _shown(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
