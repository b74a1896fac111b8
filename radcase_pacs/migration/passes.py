"""One copying pass over everything a deployment keeps, in an order where what a row refers
to is copied before it: the clinical archive, the teaching collection, then the tables of
both databases (removals children first, then copies parents first; the login sessions are
rows of one of them), and the held-back teaching copies.

A pass is idempotent and resumable: it compares what is there, so a second pass copies only
what is missing or changed, a pass cut short (a crash, kill -9, Ctrl-C) is simply run again,
and nothing is ever written twice (rows keep their ids; instances their UIDs and content).
A pass over a source that keeps serving copies what was there when it read each part; what
arrives meanwhile is copied by the next pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from radcase_pacs.migration.archives import ArchiveCopy, copy_archive
from radcase_pacs.migration.held import HeldCopies, copy_held
from radcase_pacs.migration.rows import TableCopy, copy_rows, remove_extra_rows
from radcase_pacs.migration.sides import Sides
from radcase_pacs.migration.tables import Kind
from storage.errors import ArchiveError

Progress = Callable[[int], None]


@dataclass
class PassReport:
    number: int
    began: float
    """When the pass began (``time.time()``): the target holds at least what the source held
    then."""
    seconds: float = 0.0
    archives: list[ArchiveCopy] = field(default_factory=list)
    tables: list[TableCopy] = field(default_factory=list)
    held: HeldCopies = field(default_factory=HeldCopies)
    failures: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return [
            *self.failures,
            *(p for a in self.archives for p in a.problems),
            *(p for t in self.tables for p in t.problems),
            *self.held.problems,
        ]

    @property
    def changes(self) -> int:
        """Instances and rows written or removed by the pass (0: the target had caught up)."""
        return (
            sum(a.copied + a.removed for a in self.archives)
            + sum(t.inserted + t.updated + t.removed for t in self.tables)
            + self.held.copied
        )

    @property
    def waiting(self) -> int:
        return sum(t.waiting for t in self.tables)


def copy_pass(
    sides: Sides, *, number: int = 1, workers: int = 4, progress: Progress | None = None
) -> PassReport:
    report = PassReport(number, time.time())
    started = time.monotonic()
    for label, source, target in sides.archives():
        try:
            report.archives += copy_archive(
                label,
                source,
                target,
                workers=workers,
                on_instance=(lambda: progress(1)) if progress else None,
            )
        except ArchiveError as exc:
            report.failures.append(f"{label or 'clinical archive, '}not copied: {exc}")
    outcomes = {t.spec.name: TableCopy(t.spec.name) for t in sides.tables}
    for table in reversed(sides.tables):
        if table.spec.kind is Kind.ROWS:
            try:
                outcomes[table.spec.name].removed = remove_extra_rows(table).removed
            except ArchiveError as exc:
                outcomes[table.spec.name].problems.append(f"{table.spec.name}: {exc}")
    for table in sides.tables:
        try:
            copy_rows(table, outcomes[table.spec.name], progress)
        except ArchiveError as exc:
            outcomes[table.spec.name].problems.append(f"{table.spec.name}: {exc}")
    report.tables = list(outcomes.values())
    try:
        report.held = copy_held(sides.source, sides.target)
    except ArchiveError as exc:
        report.failures.append(f"held copies not copied: {exc}")
    report.seconds = time.monotonic() - started
    return report


def work_to_do(sides: Sides) -> int:
    """What a first pass walks: the source's instances and rows (for a progress bar)."""
    total = 0
    for _, source, _ in sides.archives():
        total += sum(source.with_tenant(t).usage().instances for t in source.tenants())
    return total + sum(table.count(table.source) for table in sides.tables)
