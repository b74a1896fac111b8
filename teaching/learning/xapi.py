"""Learning records as xAPI statements (xAPI 1.0.3), so a program's learning record store
can collect them.

Each answer in the review log gives two statements about the same learner and case: "answered"
(with the answer time and whether it was right), then "passed" or "failed". The case is the
object (an assessment activity, its IRI the case's API address); its IHE TCE categories,
modalities and level and the FSRS card before and after are context extensions. Statement
ids are derived from the review id, so collecting the same records twice gives the same ids
and an LRS keeps one copy.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from teaching.cases.models import CaseSummary
from teaching.learning.models import ReviewEntry

VERSION = "1.0.3"
VERBS = {
    "answered": "http://adlnet.gov/expapi/verbs/answered",
    "passed": "http://adlnet.gov/expapi/verbs/passed",
    "failed": "http://adlnet.gov/expapi/verbs/failed",
}
ASSESSMENT = "http://adlnet.gov/expapi/activities/assessment"
EXTENSIONS = ("category", "modality", "level", "question", "fsrs")


def extension(base: str, name: str) -> str:
    return f"{base}/api/xapi/extensions/{name}"


def duration(ms: int | None) -> str | None:
    """ISO 8601 duration, as xAPI wants it (PT4.25S)."""
    if ms is None:
        return None
    seconds = f"{ms / 1000:.3f}".rstrip("0").rstrip(".")
    return f"PT{seconds}S"


def statements_of(review: ReviewEntry, case: CaseSummary | None, base: str) -> list[dict[str, Any]]:
    namespace = uuid.uuid5(uuid.NAMESPACE_URL, base)
    tags = case.tags if case else None
    # The case's title is left out: a learner reads their own statements while other
    # questions of the case may still be unanswered, and the title can give the answer away.
    activity = {
        "objectType": "Activity",
        "id": f"{base}/api/cases/{review.case_id}",
        "definition": {"type": ASSESSMENT, "name": {"en-US": f"Teaching case {review.case_id}"}},
    }
    context = {
        "registration": str(uuid.uuid5(namespace, f"session/{review.session_id}")),
        "platform": "RadCase PACS",
        "extensions": {
            extension(base, "category"): tags.categories if tags else [],
            extension(base, "modality"): tags.modalities if tags else [],
            extension(base, "level"): tags.level if tags else None,
            extension(base, "question"): review.question_id,
            extension(base, "fsrs"): {
                "rating": review.rating,
                "hinted": review.hinted,
                "before": review.state_before,
                "after": review.state_after,
            },
        },
    }
    actor = {
        "objectType": "Agent",
        "name": review.learner,
        "account": {"homePage": base, "name": review.learner},
    }
    out = []
    for verb in ("answered", "passed" if review.correct else "failed"):
        result: dict[str, Any] = {"success": review.correct, "completion": True}
        if verb == "answered" and review.duration_ms is not None:
            result["duration"] = duration(review.duration_ms)
        if verb != "answered":
            result["score"] = {"scaled": 1.0 if review.correct else 0.0}
        out.append(
            {
                "id": str(uuid.uuid5(namespace, f"review/{review.id}/{verb}")),
                "version": VERSION,
                "actor": actor,
                "verb": {"id": VERBS[verb], "display": {"en-US": verb}},
                "object": activity,
                "result": result,
                "context": context,
                "timestamp": review.reviewed_at.isoformat(),
            }
        )
    return out


def statement_result(
    reviews: Sequence[ReviewEntry], cases: dict[str, CaseSummary], base: str, more: str
) -> dict[str, Any]:
    """An xAPI StatementResult object: the statements and the address of the next page."""
    statements = [s for r in reviews for s in statements_of(r, cases.get(r.case_id), base)]
    return {"statements": statements, "more": more}
