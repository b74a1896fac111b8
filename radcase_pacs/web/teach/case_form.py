"""The case editor's form: read into the values of a :class:`CaseUpdate`, and written back
from a case (or from a refused post, so that nothing typed is lost).

The form validates with the same models as ``PATCH /api/cases/{id}``, so the page accepts
exactly what the API accepts; its problems come back as sentences naming the field as the
page labels it. Key images travel as ``key-<n>`` (``<sop>:<frame>``, the frame empty for a
single-frame image), ``key-<n>-note`` and ``key-<n>-remove``: the rows the page rendered and
those its script added from the viewer, in the order of ``n``.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import FormData

from radcase_pacs.web.forms import field
from teaching.cases.models import Case, CaseStatus

TEXT_FIELDS = ("title", "history", "findings", "diagnosis", "discussion")
LIMIT = 20000
KEY = re.compile(r"key-(\d{1,4})")
LABELS = {
    "title": "Title",
    "history": "History",
    "findings": "Findings",
    "diagnosis": "Diagnosis",
    "differential": "Differential",
    "discussion": "Discussion",
    "status": "Status",
    "study_instance_uid": "Study",
    "series_instance_uids": "Series",
    "categories": "Category",
    "level": "Level",
    "modalities": "Modality",
    "anatomy": "Anatomy",
    "free": "Free tags",
}


def sentences(error: ValidationError) -> list[str]:
    """Each problem as "<field as the page names it>: <what is wrong>."."""
    out = []
    for item in error.errors():
        out.append(f"{where(item['loc'])}: {str(item['msg']).rstrip('.')}.")
    return out


def where(loc: tuple[Any, ...]) -> str:
    """A validation location as the page names it: ``("tags", "modalities", 1)`` is
    "Modality 2", ``("key_images", 0, "note")`` "Key image 1, note"."""
    parts = [p for p in loc if p != "tags"]
    if not parts:
        return "Form"
    head = parts[0]
    if head == "key_images" and len(parts) > 1 and isinstance(parts[1], int):
        rest = ", ".join(str(p).replace("_", " ") for p in parts[2:])
        return f"Key image {parts[1] + 1}" + (f", {rest}" if rest else "")
    label = LABELS.get(str(head), str(head).replace("_", " ").capitalize())
    if len(parts) > 1 and isinstance(parts[1], int):
        return f"{label} {parts[1] + 1}"
    return label


def _listed(text: str) -> list[str]:
    """Comma-separated (or one per line) entries, trimmed, empty ones dropped."""
    return [part.strip() for part in re.split(r"[,\n]", text) if part.strip()]


def read_form(form: FormData, *, published: bool) -> dict[str, Any]:
    """The update the form asks for (every field of the editor; the status only while the
    case is not published: publication is changed by its own buttons)."""
    values: dict[str, Any] = {name: field(form, name, limit=LIMIT + 1) for name in TEXT_FIELDS}
    values["differential"] = [
        line.strip() for line in field(form, "differential", limit=LIMIT).splitlines()
    ]
    values["differential"] = [line for line in values["differential"] if line]
    level = field(form, "level", limit=20)
    values["tags"] = {
        "categories": [v for v in form.getlist("category") if isinstance(v, str)][:20],
        "level": level or None,
        "modalities": [m.upper() for m in _listed(field(form, "modalities", limit=1000))],
        "anatomy": _listed(field(form, "anatomy", limit=3000)),
        "free": _listed(field(form, "free", limit=6000)),
    }
    values["key_images"] = key_images(form)
    if not published:
        values["status"] = field(form, "status", limit=40)
    return values


def key_images(form: FormData) -> list[dict[str, Any]]:
    """The key image rows of the form not marked for removal, in their order."""
    rows: dict[int, dict[str, Any]] = {}
    for name, value in form.multi_items():
        found = KEY.fullmatch(name)
        if found is None or not isinstance(value, str):
            continue
        index = int(found.group(1))
        if field(form, f"{name}-remove", limit=10):
            continue
        sop, _, frame = value[:200].partition(":")
        rows[index] = {
            "sop_instance_uid": sop,
            "frame": int(frame) if frame.isascii() and frame.isdigit() else frame or None,
            "note": field(form, f"{name}-note", limit=LIMIT + 1),
        }
    return [rows[index] for index in sorted(rows)]


def shown(values: dict[str, Any]) -> dict[str, Any]:
    """The editor's fields as the form shows them, from :func:`read_form`'s values or a
    case's: lists joined back into the text the educator types."""
    tags = values.get("tags") or {}
    return {
        **{name: values.get(name) or "" for name in TEXT_FIELDS},
        "differential": "\n".join(values.get("differential") or []),
        "categories": list(tags.get("categories") or []),
        "level": tags.get("level") or "",
        "modalities": ", ".join(tags.get("modalities") or []),
        "anatomy": ", ".join(tags.get("anatomy") or []),
        "free": ", ".join(tags.get("free") or []),
        "status": str(values.get("status") or CaseStatus.DRAFT.value),
        "key_images": [
            {
                "sop": k.get("sop_instance_uid", ""),
                "frame": k.get("frame") if isinstance(k.get("frame"), int) else None,
                "note": k.get("note") or "",
            }
            for k in values.get("key_images") or []
        ],
    }


def case_values(case: Case) -> dict[str, Any]:
    return shown(case.model_dump(mode="json"))
