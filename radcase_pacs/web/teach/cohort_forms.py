"""Reading the educators' group and assignment forms (and the ids in their paths) into the
API's models.

A form carries text; these turn it into :class:`~teaching.learning.models.GroupIn` and
:class:`~teaching.learning.models.AssignmentIn`, or into sentences naming the field that is
wrong, so the pages accept exactly what the JSON API accepts and never fail on input.

An assignment's due date is typed as the program's wall-clock time (a ``datetime-local``
value carries no zone) and stored in UTC. A tag set is resolved to the published cases
carrying those tags when the assignment is made: the assignment is a fixed list of cases, as
the API has it, and a case published later is not added to it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request

from radcase_pacs.web.admin.accounts import parsed
from radcase_pacs.web.forms import field
from teaching.cases.codes import CATEGORIES, LEVELS
from teaching.cases.models import CaseSummary
from teaching.learning.models import AssignmentIn, GroupIn

MAX_CHOSEN = 2000
TAG_KINDS = ("category", "modality", "level")
STORED_ID = re.compile(r"[0-9a-f]{24}")


def checked_id(request: Request, name: str, what: str) -> str:
    """A path's group or assignment id, or the 404 page: an id of another shape names
    nothing."""
    value = str(request.path_params[name])
    if STORED_ID.fullmatch(value) is None:
        raise HTTPException(404, f"There is no such {what}.")
    return value


def chosen(form: FormData, name: str, *, limit: int = 64) -> list[str]:
    """The ticked values of a group of checkboxes, each cut to ``limit``, in form order,
    without repeats."""
    values = [v[:limit] for v in form.getlist(name)[:MAX_CHOSEN] if isinstance(v, str)]
    return list(dict.fromkeys(values))


def group_in(form: FormData, known: set[str]) -> tuple[GroupIn | None, list[str]]:
    """The group a form describes; ``known`` are the usernames of the institution."""
    members = chosen(form, "members")
    body, errors = parsed(GroupIn, {"name": field(form, "name", limit=300), "members": members})
    unknown = [name for name in members if name not in known]
    if unknown:
        errors.append(f"Members: no user {', '.join(unknown)} in the institution.")
    return (None if errors else body), errors


def due_at(text: str, timezone: str) -> datetime | None:
    """A ``datetime-local`` value read in the program's time zone, in UTC; ValueError when it
    is not a date and time."""
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(timezone))
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class TagSet:
    """The tags an assignment by tags asks for (None: any)."""

    category: str | None
    modality: str | None
    level: str | None

    def empty(self) -> bool:
        return self.category is None and self.modality is None and self.level is None

    def matches(self, case: CaseSummary) -> bool:
        tags = case.tags
        return (
            (self.category is None or self.category in tags.categories)
            and (self.modality is None or self.modality in tags.modalities)
            and (self.level is None or self.level == tags.level)
        )

    def describe(self) -> str:
        parts = []
        if self.category:
            parts.append(CATEGORIES.get(self.category, self.category))
        if self.modality:
            parts.append(self.modality)
        if self.level:
            parts.append(LEVELS.get(self.level, self.level))
        return " · ".join(parts)


def tag_set(form: FormData, modalities: set[str]) -> tuple[TagSet | None, list[str]]:
    """The tag set of an assignment form; each tag must be one the published cases carry."""
    given = {kind: field(form, kind, limit=32) or None for kind in TAG_KINDS}
    errors = []
    if given["category"] and given["category"] not in CATEGORIES:
        errors.append("Category: not an IHE TCE category code.")
    if given["level"] and given["level"] not in LEVELS:
        errors.append("Level: not an IHE TCE level code.")
    if given["modality"] and given["modality"] not in modalities:
        errors.append("Modality: no published case has that modality.")
    tags = TagSet(given["category"], given["modality"], given["level"])
    if not errors and tags.empty():
        errors.append("Tags: choose at least a category, a modality or a level.")
    return (None if errors else tags), errors


def assignment_in(
    form: FormData, published: Mapping[str, CaseSummary], timezone: str
) -> tuple[AssignmentIn | None, list[str]]:
    """The assignment a form describes: chosen published cases, or those a tag set matches
    now (``published`` in the order the catalog gives, oldest first)."""
    errors: list[str] = []
    due: datetime | None = None
    due_text = field(form, "due_at", limit=64).strip()
    try:
        due = due_at(due_text, timezone)
    except ValueError:
        errors.append(f"Due: not a date and time ({due_text!r}).")
    source = field(form, "source", limit=20)
    case_ids: list[str] = []
    if source == "cases":
        case_ids = chosen(form, "case_ids")
        strangers = [c for c in case_ids if c not in published]
        if strangers:
            errors.append(f"Cases: {len(strangers)} of the chosen cases are not published here.")
        elif not case_ids:
            errors.append("Cases: choose at least one published case.")
    elif source == "tags":
        modalities = {m for case in published.values() for m in case.tags.modalities}
        tags, problems = tag_set(form, modalities)
        errors += problems
        if tags is not None:
            case_ids = [c.id for c in published.values() if tags.matches(c)]
            if not case_ids:
                errors.append(f"Tags: no published case is tagged {tags.describe()}.")
    else:
        errors.append("Cases: choose the cases, or a set of tags.")
    values = {"title": field(form, "title", limit=300), "case_ids": case_ids, "due_at": due}
    body, problems = parsed(AssignmentIn, values)
    said = any(e.startswith(("Cases:", "Tags:")) for e in errors)
    errors += [p for p in problems if not (said and p.startswith("Case ids"))]
    return (None if errors else body), errors
