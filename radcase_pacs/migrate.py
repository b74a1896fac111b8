"""Copy a whole deployment into another one: ``radcase-pacs migrate --from A --to B``.

The case that matters is the embedded default (SQLite and a folder) moving to the department
set-up (PostgreSQL and S3) without losing a study. Each instance's stored bytes are read from
the source and ingested into the target through ``Archive.ingest``, so the target's index
rows are computed by the same code from the same bytes as the source's were, and every
invariant of ingest holds (blob before index rows; nothing half-stored).

* Resumable: an instance the target already holds with the same SHA-256 is skipped, so a run
  cut short (crash, Ctrl-C, reboot) is simply run again.
* Safe while the source keeps receiving studies: instances are listed in pages by SOP
  Instance UID; one stored during the run is copied by this run or the next.
* Verified: at the end every source instance is looked up in the target and the target's
  blob is read back and hashed; the report gives counts and every instance that differs.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import BinaryIO, cast

from storage.archive import Archive
from storage.errors import ArchiveError, InstanceRejected
from storage.records import StoredInstance

log = logging.getLogger(__name__)

PAGE = 500
SPOOL_IN_MEMORY = 64 * 1024 * 1024


@dataclass
class TenantReport:
    tenant: str
    source: int = 0
    copied: int = 0
    already_present: int = 0
    verified: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.verified == self.source


@dataclass
class MigrationReport:
    tenants: list[TenantReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tenants)

    def lines(self) -> Iterator[str]:
        for t in self.tenants:
            yield (
                f"tenant {t.tenant}: {t.source} instances in the source, {t.copied} copied, "
                f"{t.already_present} already present, {t.verified} verified byte-identical"
            )
            yield from (f"  problem: {p}" for p in t.problems)
        yield "verification: OK" if self.ok else "verification: FAILED"


def source_instances(archive: Archive) -> Iterator[StoredInstance]:
    """Every instance of the archive's tenant, in SOP Instance UID order, a page at a time."""
    after = ""
    while True:
        page = archive.walk(after, PAGE)
        yield from page
        if len(page) < PAGE:
            return
        after = page[-1].sop_uid


def migrate(
    source: Archive,
    target: Archive,
    *,
    workers: int = 4,
    verify_only: bool = False,
    on_instance: Callable[[], None] | None = None,
) -> MigrationReport:
    report = MigrationReport()
    for tenant in source.tenants():
        tenant_report = TenantReport(tenant)
        report.tenants.append(tenant_report)
        src, dst = source.with_tenant(tenant), target.with_tenant(tenant)
        if not verify_only:
            copy = partial(_copy, src, dst, on_instance=on_instance)
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for outcome in pool.map(copy, source_instances(src)):
                    _tally(tenant_report, outcome)
        _verify(src, dst, tenant_report)
    return report


def _copy(
    src: Archive,
    dst: Archive,
    instance: StoredInstance,
    *,
    on_instance: Callable[[], None] | None,
) -> str:
    """'copied', 'present', or a problem description."""
    try:
        existing = dst.stored(instance.sop_uid)
        if existing is not None:
            if existing.sha256 == instance.sha256:
                return "present"
            return f"{instance.sop_uid}: the target holds different content under this UID"
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
            for chunk in src.stream(instance):
                spool.write(chunk)
            spool.seek(0)
            # A binary file object, though typeshed types a spooled file as IO[bytes] only.
            dst.ingest(cast(BinaryIO, spool))
        return "copied"
    except InstanceRejected as exc:
        return f"{instance.sop_uid}: refused by the target: {exc.reason}"
    except ArchiveError as exc:
        return f"{instance.sop_uid}: {exc}"
    finally:
        if on_instance is not None:
            on_instance()


def _tally(report: TenantReport, outcome: str) -> None:
    if outcome == "copied":
        report.copied += 1
    elif outcome == "present":
        report.already_present += 1
    else:
        report.problems.append(outcome)


def _verify(src: Archive, dst: Archive, report: TenantReport) -> None:
    """Counts, and per instance the SHA-256 of the bytes the target actually holds."""
    for instance in source_instances(src):
        report.source += 1
        copy = dst.stored(instance.sop_uid)
        if copy is None:
            report.problems.append(f"{instance.sop_uid}: missing in the target")
            continue
        digest = hashlib.sha256()
        try:
            for chunk in dst.stream(copy):
                digest.update(chunk)
        except ArchiveError as exc:
            report.problems.append(f"{instance.sop_uid}: target blob unreadable: {exc}")
            continue
        if digest.hexdigest() != instance.sha256:
            report.problems.append(f"{instance.sop_uid}: target bytes differ from the source")
            continue
        report.verified += 1
