"""Held-back teaching copies: de-identified instances flagged for burned-in text, kept aside
in the teaching blob store (outside its index) until an educator has reviewed them. The
teaching instances table names each by its key; the bytes are copied under the same key."""

from __future__ import annotations

from dataclasses import dataclass, field

from radcase_pacs.deployment import Deployment
from storage.errors import ArchiveError, NotFound


@dataclass
class HeldCopies:
    copied: int = 0
    present: int = 0
    problems: list[str] = field(default_factory=list)


def held_keys(deployment: Deployment) -> list[tuple[str, str, str]]:
    """(tenant, SOP Instance UID, key) of every held copy the deployment's cases name."""
    with deployment.databases["teaching"].read() as cur:
        rows = cur.execute(
            "SELECT tenant, sop_uid, pending_key FROM teaching_instances "
            "WHERE pending_key IS NOT NULL ORDER BY tenant, sop_uid"
        ).fetchall()
    return [(str(t), str(s), str(k)) for t, s, k in rows]


def copy_held(source: Deployment, target: Deployment, *, check_only: bool = False) -> HeldCopies:
    """Each held copy the source names, in the target with the same bytes (copied there
    unless ``check_only``, which reports a missing or differing one instead)."""
    outcome = HeldCopies()
    for tenant, sop_uid, key in held_keys(source):
        try:
            data = source.teaching.with_tenant(tenant).held(key)
        except NotFound:
            continue  # released since it was listed
        except ArchiveError as exc:
            outcome.problems.append(f"held copy {key}: unreadable in the source: {exc}")
            continue
        mine = target.teaching.with_tenant(tenant)
        try:
            present = mine.held(key) == data
        except NotFound:
            present = False
        except ArchiveError as exc:
            outcome.problems.append(f"held copy {key}: unreadable in the target: {exc}")
            continue
        if present:
            outcome.present += 1
        elif check_only:
            outcome.problems.append(f"held copy {key}: missing or different in the target")
        else:
            try:
                if mine.hold(sop_uid, data) != key:
                    outcome.problems.append(f"held copy {key}: kept under another key")
                    continue
                outcome.copied += 1
            except ArchiveError as exc:
                outcome.problems.append(f"held copy {key}: not copied: {exc}")
    return outcome
