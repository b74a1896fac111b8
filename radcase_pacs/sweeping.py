"""The orphan sweep of a whole deployment (``radcase-pacs sweep`` and the periodic run of
``serve``): :meth:`storage.archive.Archive.sweep` over the clinical and the teaching blob
stores.

A key is kept when anything in the deployment names it: a row of the clinical index, a row
of the teaching index, or a case still holding an instance's held copy (a de-identified copy
flagged for burned-in text, waiting in the teaching blob store for an educator's review;
see :mod:`teaching.cases.export`). Every store is checked against all three, so a deployment
that points both collections at one store loses nothing either. Held copies of deleted
cases, and those whose case was never recorded (a crash while the case was being made), are
orphans like any other.

One process sweeps at a time across a scale-out: the sweep holds a lock of the clinical
index's database, where the audit log lives (:func:`storage.database.locks.exclusive`); a
process finding it held skips its turn.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection
from datetime import timedelta

from radcase_pacs.deployment import Deployment, open_deployment
from radcase_pacs.settings import Settings
from storage.archive import HELD_PREFIX
from storage.database.locks import exclusive
from storage.errors import ArchiveError
from storage.sweep import References, SweepReport
from storage.urls import mask_password
from teaching.cases.store import CaseStore

LOCK = "orphan-sweep"


def sweep_deployment(
    deployment: Deployment,
    *,
    grace: timedelta,
    dry_run: bool = False,
    stop: Callable[[], bool] = lambda: False,
) -> list[SweepReport] | None:
    """Sweep every blob store of the deployment; None when another process is sweeping."""
    settings = deployment.settings
    clinical, teaching = deployment.archive, deployment.teaching
    held = _held_copies(deployment.cases.store)
    with exclusive(deployment.audit.db, LOCK) as mine:
        if not mine:
            return None
        shared = settings.resolved_blob_url == settings.resolved_teaching_blob_url
        reports = [
            clinical.sweep(
                grace=grace,
                also_referenced=[teaching.referenced_keys, held],
                dry_run=dry_run,
                stop=stop,
                label=_label("blobs" if shared else "clinical blobs", settings.resolved_blob_url),
            )
        ]
        if not shared:
            reports.append(
                teaching.sweep(
                    grace=grace,
                    also_referenced=[clinical.referenced_keys, held],
                    dry_run=dry_run,
                    stop=stop,
                    label=_label("teaching blobs", settings.resolved_teaching_blob_url),
                )
            )
        return reports


def _label(name: str, url: str) -> str:
    return f"{name} ({mask_password(url)})"


def _held_copies(cases: CaseStore) -> References:
    """The held copies some case holds, asked only about keys of a held copy's shape."""

    def held(keys: Collection[str]) -> set[str]:
        candidates = [key for key in keys if key.startswith(f"{HELD_PREFIX}/")]
        return cases.held_keys(candidates) if candidates else set()

    return held


def run_sweep(settings: Settings, *, grace_seconds: float | None, dry_run: bool) -> int:
    """``radcase-pacs sweep``: one sweep now, a summary line per store; the exit status is
    0 when it ran, 1 when it failed or another process was sweeping, 2 for a bad grace."""
    seconds = settings.sweep_grace_seconds if grace_seconds is None else grace_seconds
    if seconds < 0:
        print("radcase-pacs: --grace cannot be negative", file=sys.stderr)
        return 2
    try:
        with open_deployment(settings) as deployment:
            reports = sweep_deployment(
                deployment, grace=timedelta(seconds=seconds), dry_run=dry_run
            )
    except ArchiveError as exc:
        print(f"radcase-pacs: the sweep failed: {exc}", file=sys.stderr)
        return 1
    if reports is None:
        print("radcase-pacs: another process is sweeping; nothing done", file=sys.stderr)
        return 1
    for report in reports:
        print(report.summary())
    return 0
