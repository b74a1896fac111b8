"""What the question page shows, read in one go: the item as the quiz service gives it (an
unknown case before the answer, the graded answer and maybe the revealed case after), the
session around it, the viewer's manifest of the case's teaching study, and the patient's
age and sex from that study.

The no-leak rule holds by construction: before the answer the page is built from
:class:`~teaching.learning.models.ItemView` without ``result`` or ``revealed`` (the quiz
service leaves them out), the manifest carries display attributes only
(:mod:`radcase_pacs.web.stack`), and the age and sex are the two header attributes read
here. The answer key reaches the page only as ``result.solution``, after the answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from markupsafe import Markup

from radcase_pacs.auth.principal import Principal, Role
from radcase_pacs.deployment import Deployment
from radcase_pacs.web.stack import stack_manifest
from storage import json_values as jv
from storage.archive import Archive
from storage.errors import ArchiveError, NotFound
from teaching.learning.models import AnswerResult, ItemView, SessionView
from teaching.learning.questions import (
    Ellipse,
    FreeTextAnswer,
    LocateAnswer,
    LocateKey,
    MultipleChoiceAnswer,
    MultipleChoiceKey,
    Option,
)

SEXES = {"M": "male", "F": "female", "O": "other"}
AGE_UNITS = {"D": "day", "W": "week", "M": "month", "Y": "year"}
RATINGS = {
    "again": "Again: it comes back soon, until you get it right",
    "hard": "Hard",
    "good": "Good",
    "easy": "Easy: right, fast and without the hint",
}


def script_json(value: Any) -> Markup:
    """JSON to put inside ``<script type="application/json">``: ``<``, ``>`` and ``&``
    escaped, so no text in it can close the element (the browser does not decode entities
    there, so HTML escaping would corrupt it instead)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def age_text(value: str | None) -> str | None:
    """Patient's Age (PS3.5 Table 6.2-1 AS: ``nnnD/W/M/Y``) in words; None when absent or
    malformed."""
    if not value or len(value) != 4 or not value[:3].isdigit() or value[3] not in AGE_UNITS:
        return None
    number, unit = int(value[:3]), AGE_UNITS[value[3]]
    return f"{number} {unit}{'' if number == 1 else 's'}"


def teaching_archive(deployment: Deployment, principal: Principal, study: str) -> Archive:
    """The teaching archive as this person may read it through ``/teaching/dicomweb``: their
    institution's, and for a learner only published cases' studies (as
    :mod:`radcase_pacs.learner_view` does for the DICOMweb requests the viewer makes)."""
    archive = deployment.teaching.with_tenant(principal.tenant)
    if principal.role is Role.LEARNER:
        published = deployment.cases.store.published_study_uids(principal.tenant)
        archive = archive.restricted_to(published & {study})
    return archive


def patient(archive: Archive, manifest: dict[str, Any]) -> tuple[str | None, str | None]:
    """Age and sex from one instance of the study (the teaching copy keeps them: PS3.15
    E.3.7 Retain Patient's Characteristics), as words."""
    for series in manifest["series"]:
        for image in series["images"][:1]:
            try:
                (document,) = archive.documents(manifest["study"], series["uid"], image["sop"])
            except (ArchiveError, ValueError):
                return None, None
            sex = SEXES.get((jv.text(document, "00100040") or "").strip().upper())
            return age_text(jv.text(document, "00101010")), sex
    return None, None


def image_number(manifest: dict[str, Any] | None, sop: str, frame: int) -> str:
    """Where an image is, as the viewer numbers it: "image 10 of CT · series 1 · 20 images"."""
    for series in (manifest or {}).get("series", []):
        n = 0
        for image in series["images"]:
            if image["sop"] == sop:
                return f"image {n + min(frame, image['frames'])} of {series['label']}"
            n += image["frames"]
    return "an image of the study"


def locate_overlays(solution: LocateKey, given: LocateAnswer | None) -> list[dict[str, Any]]:
    """The correct region and the learner's point, in the viewer's overlay shapes."""
    where = {"sop": solution.sop_instance_uid, "frame": solution.frame, "label": "Answer"}
    region = solution.region
    if isinstance(region, Ellipse):
        shapes = [
            {**where, "kind": "ellipse", **region.model_dump(include={"cx", "cy", "rx", "ry"})}
        ]
    else:
        shapes = [{**where, "kind": "polygon", "points": [list(p) for p in region.points]}]
    if given is not None:
        shapes.append(
            {
                "sop": given.sop_instance_uid,
                "frame": given.frame,
                "kind": "point",
                "x": given.x,
                "y": given.y,
                "label": "You",
            }
        )
    return shapes


def when(due: datetime, now: datetime) -> str:
    """How far off a due time is, in words."""
    seconds = (due - now).total_seconds()
    if seconds <= 0:
        return "now"
    if seconds < 90:
        return "in a minute"
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            n = round(seconds / size)
            if unit == "day" and n == 1:
                return "tomorrow"
            return f"in {n} {unit}{'' if n == 1 else 's'}"
    return "in a minute"


@dataclass(frozen=True)
class Feedback:
    """The graded answer as the page words it."""

    result: AnswerResult
    correct_options: list[Option]
    chosen_options: list[Option]
    accepted: list[str]
    typed: str | None
    overlays: list[dict[str, Any]] | None
    point: LocateAnswer | None
    region_image: str
    rating: str
    due_in: str


def feedback(result: AnswerResult, manifest: dict[str, Any] | None, now: datetime) -> Feedback:
    solution, given = result.solution, result.answer
    correct_options: list[Option] = []
    chosen: list[Option] = []
    accepted: list[str] = []
    overlays = None
    point = None
    region_image = ""
    if isinstance(solution, MultipleChoiceKey):
        correct_options = [o for o in solution.options if o.id in solution.correct]
        if isinstance(given, MultipleChoiceAnswer):
            chosen = [o for o in solution.options if o.id in given.selected]
    elif isinstance(solution, LocateKey):
        point = given if isinstance(given, LocateAnswer) else None
        overlays = locate_overlays(solution, point)
        region_image = image_number(manifest, solution.sop_instance_uid, solution.frame)
    else:
        accepted = list(solution.accepted)
    return Feedback(
        result=result,
        correct_options=correct_options,
        chosen_options=chosen,
        accepted=accepted,
        typed=given.text if isinstance(given, FreeTextAnswer) else None,
        overlays=overlays,
        point=point,
        region_image=region_image,
        rating=RATINGS.get(result.rating, result.rating),
        due_in=when(result.card.due, now),
    )


def item_context(
    deployment: Deployment,
    principal: Principal,
    view: ItemView,
    session: SessionView,
    now: datetime,
) -> dict[str, Any]:
    """Everything question.html renders for ``view``."""
    study = view.case.teaching_study_instance_uid
    archive = teaching_archive(deployment, principal, study)
    try:
        manifest: dict[str, Any] | None = stack_manifest(archive, study)
    except NotFound:
        manifest = None
    age, sex = patient(archive, manifest) if manifest else (None, None)
    result = view.result
    question = view.question
    graded = feedback(result, manifest, now) if result else None
    return {
        "view": view,
        "question": question,
        "case": view.case,
        "total": len(session.items),
        "age": age,
        "sex": sex,
        "manifest": manifest,
        "manifest_json": script_json(manifest) if manifest else None,
        "open_sop": question.sop_instance_uid if question.kind == "locate" else None,
        "open_frame": question.frame or 1,
        "locate_image": (
            image_number(manifest, question.sop_instance_uid, question.frame or 1)
            if question.sop_instance_uid
            else ""
        ),
        "feedback": graded,
        "overlays_json": script_json(graded.overlays) if graded and graded.overlays else None,
        "revealed": view.revealed,
        "next_position": session.next_position,
        "viewer_link": deployment.settings.viewer_link(study) if result else None,
    }
