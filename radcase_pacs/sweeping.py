"""The orphan sweep of a whole deployment (``radcase-pacs sweep`` and the periodic run of
``serve``): :func:`storage.sweep.sweep_store` over the clinical and the teaching blob stores.

A key is kept when anything in the deployment names it: a row of the clinical index, a row
of the teaching index, or a case still holding an instance's held-back copy (a de-identified
copy flagged for burned-in text, waiting in the teaching blob store for an educator's
review; see :mod:`teaching.cases.export`). Every store is checked against all three, so a
deployment that points both collections at one store loses nothing either. Held-back copies
of deleted cases, and those whose case was never recorded (a crash while the case was being
made), are orphans like any other.

One process sweeps at a time across a scale-out: the sweep holds a lock of the clinical
index's database (:func:`storage.database.locks.exclusive`); a process finding it held skips
its turn.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Collection, Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta

from radcase_pacs.settings import Settings
from storage.blobs.base import BlobStore
from storage.database.locks import exclusive
from storage.errors import ArchiveError
from storage.sweep import References, SweepReport, is_archive_key, sweep_store
from storage.urls import mask_password, open_blobs, open_database, open_index
from teaching.cases.export import PENDING_PREFIX
from teaching.cases.store import CaseStore

LOCK = "orphan-sweep"
# teaching.cases.export.pending_key: _pending/TENANT/SOP.dcm
PENDING_KEY = re.compile(rf"^{PENDING_PREFIX}/[a-z0-9][a-z0-9_-]{{0,62}}/[^/]+\.dcm$")


def is_swept_key(key: str) -> bool:
    """The keys this program writes into a blob store: the archive's and held-back copies'."""
    return is_archive_key(key) or PENDING_KEY.match(key) is not None


def sweep_deployment(
    settings: Settings,
    *,
    grace: timedelta,
    dry_run: bool = False,
    stop: Callable[[], bool] = lambda: False,
) -> list[SweepReport] | None:
    """Sweep every blob store of the deployment; None when another process is sweeping."""
    lock_database = open_database(settings.resolved_index_url)
    lock_database.open()
    try:
        with exclusive(lock_database, LOCK) as held:
            if not held:
                return None
            with _opened(settings) as (stores, references):
                return [
                    sweep_store(
                        blobs,
                        references,
                        grace=grace,
                        owned=is_swept_key,
                        dry_run=dry_run,
                        label=label,
                        stop=stop,
                    )
                    for label, blobs in stores
                ]
    finally:
        lock_database.close()


@contextmanager
def _opened(
    settings: Settings,
) -> Iterator[tuple[list[tuple[str, BlobStore]], list[References]]]:
    """The deployment's blob stores (each once, labelled) and everything that references
    keys in them, opened for the sweep and closed after it."""
    with ExitStack() as stack:
        references: list[References] = []
        for url in dict.fromkeys(
            (settings.resolved_index_url, settings.resolved_teaching_index_url)
        ):
            index = open_index(url)
            index.open()
            stack.callback(index.close)
            references.append(index.referenced_keys)
        cases = CaseStore(open_database(settings.resolved_teaching_index_url))
        cases.open()
        stack.callback(cases.close)
        references.append(_held_copies(cases))
        stores: list[tuple[str, BlobStore]] = []
        named = {
            settings.resolved_blob_url: "clinical blobs",
            settings.resolved_teaching_blob_url: "teaching blobs",
        }
        if len(named) == 1:
            named = {settings.resolved_blob_url: "blobs"}
        for url, label in named.items():
            blobs = open_blobs(url, s3_endpoint_url=settings.s3_endpoint_url)
            blobs.open()
            stack.callback(blobs.close)
            stores.append((f"{label} ({mask_password(url)})", blobs))
        yield stores, references


def _held_copies(cases: CaseStore) -> References:
    def held(keys: Collection[str]) -> set[str]:
        pending = [key for key in keys if PENDING_KEY.match(key)]
        return cases.held_keys(pending) if pending else set()

    return held


def run_sweep(settings: Settings, *, grace_seconds: float | None, dry_run: bool) -> int:
    """``radcase-pacs sweep``: one sweep now, a summary line per store; the exit status is
    0 when it ran, 1 when it failed or another process was sweeping, 2 for a bad grace."""
    seconds = settings.sweep_grace_seconds if grace_seconds is None else grace_seconds
    if seconds < 0:
        print("radcase-pacs: --grace cannot be negative", file=sys.stderr)
        return 2
    try:
        reports = sweep_deployment(settings, grace=timedelta(seconds=seconds), dry_run=dry_run)
    except ArchiveError as exc:
        print(f"radcase-pacs: the sweep failed: {exc}", file=sys.stderr)
        return 1
    if reports is None:
        print("radcase-pacs: another process is sweeping; nothing done", file=sys.stderr)
        return 1
    for report in reports:
        print(report.summary())
    return 0
