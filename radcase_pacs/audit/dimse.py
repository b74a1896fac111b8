"""Audit entries of DIMSE requests: who is the calling AE title, the route is the association
(``CALLING -> CALLED``), the source the peer's address.

A DIMSE peer is not a signed-in user: the calling AE title is what it says it is (the server
may restrict which titles may associate, ``dimse_allowed_aets``), so the entry records it as
the actor with no role.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import pydicom
from pydicom.dataset import Dataset

from radcase_pacs.audit.middleware import single_uid
from radcase_pacs.audit.store import AuditEntry, Channel
from radcase_pacs.dimse.part10 import CannotWalk, study_instance_uid
from storage.dicom_text import value_text

STUDY_INSTANCE_UID = 0x0020000D
QUERY_RETRIEVE_LEVEL = 0x00080052


def association_entry(
    assoc: Any, tenant: str, action: str, *, study_uid: str | None, detail: str
) -> AuditEntry:
    requestor, acceptor = assoc.requestor, assoc.acceptor
    calling = str(requestor.ae_title or "").strip()
    called = str(acceptor.ae_title or "").strip()
    return AuditEntry(
        tenant=tenant,
        actor=calling or "unknown",
        action=action,
        channel=Channel.DIMSE,
        route=f"{calling} -> {called}",
        study_uid=study_uid,
        detail=detail,
        source=str(requestor.address or ""),
    )


def stored_study(data: bytes) -> str | None:
    """The Study Instance UID of a received C-STORE data set (a PS3.10 file), read from its
    header alone (walking the element headers when it can, else through pydicom); None when
    it cannot be read (ingest then refuses the data set with its own reason)."""
    try:
        walked = study_instance_uid(data)
        return single_uid(walked) if walked is not None else None
    except CannotWalk:
        pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(
                io.BytesIO(data),
                force=True,
                stop_before_pixels=True,
                specific_tags=[STUDY_INSTANCE_UID],
            )
            element = ds.get(STUDY_INSTANCE_UID)
            return single_uid(_text(element)) if element is not None else None
    except Exception:
        return None


def identifier_summary(identifier: Dataset) -> tuple[str | None, str]:
    """The study an identifier names (one Study Instance UID) and its level and keys as
    text: ``QueryRetrieveLevel=STUDY; PatientName=SMITH*; StudyInstanceUID=`` (empty values
    are return keys). An identifier that cannot be decoded is recorded as such."""
    try:
        parts = [f"{_name(element)}={_text(element)}" for element in identifier]
        study = identifier.get(STUDY_INSTANCE_UID)
        uid = single_uid(_text(study)) if study is not None else None
    except Exception as exc:
        return None, f"unreadable identifier: {exc}"
    level = next((p for p in parts if p.startswith("QueryRetrieveLevel=")), None)
    if level is not None:  # the level first: what an administrator reads first
        parts.remove(level)
        parts.insert(0, level)
    return uid, "; ".join(parts)


def _name(element: Any) -> str:
    return str(element.keyword or element.tag)


def _text(element: Any) -> str:
    """The value as the peer sent it (unstripped); a sequence as its number of items."""
    if element.VR == "SQ":
        return f"<{len(element.value)} item(s)>"
    return value_text(element.value)
