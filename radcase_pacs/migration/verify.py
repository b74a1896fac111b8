"""The proof that the target holds what the source holds: every table compared row by row
(counts and every value), every instance of both archives found with the same index values
and its bytes read back from the target's store and hashed, every held-back copy compared,
and the keys the data depends on checked to agree. Anything that differs is listed.

A switch checks in two steps, so that its read-only moment holds no full re-read (see
:mod:`radcase_pacs.migration.switch`): :func:`verify` of the blobs and the append-only logs
while the source still serves; then, after the last pass (which itself compares every row
of every other table), :func:`verify_writes`: what each pass since wrote, then every count.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from radcase_pacs.migration.archives import ArchiveCheck, check_archive, check_copied
from radcase_pacs.migration.held import HeldCopies, copy_held
from radcase_pacs.migration.keys import key_problems
from radcase_pacs.migration.passes import PassReport
from radcase_pacs.migration.rows import Key, TableCheck, check_written, compare_rows
from radcase_pacs.migration.sides import Sides
from radcase_pacs.migration.tables import Kind
from storage.records import StoredInstance


class ReadBack:
    """Which target blobs have been read back and found right during this run: each is read
    once after its copy, so that a switch's last check, under read-only, reads only those
    copied since."""

    def __init__(self) -> None:
        self._done: set[tuple[str, str, str]] = set()

    def wanted(self, label: str, instance: StoredInstance) -> bool:
        return (label, instance.blob_key, instance.sha256) not in self._done

    def done(self, label: str, instance: StoredInstance) -> None:
        self._done.add((label, instance.blob_key, instance.sha256))


@dataclass
class Verification:
    archives: list[ArchiveCheck] = field(default_factory=list)
    tables: list[TableCheck] = field(default_factory=list)
    held: HeldCopies = field(default_factory=HeldCopies)
    keys: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            all(a.ok for a in self.archives)
            and all(t.ok for t in self.tables)
            and not self.held.problems
            and not self.keys
        )

    def conflicts(self) -> list[str]:
        """What another pass cannot make good: an instance whose index or bytes differ, a
        log row that differs or that the target alone holds (the target's log is never
        rewritten), a key that differs."""
        found = [p for a in self.archives for p in a.problems]
        for t in self.tables:
            if t.differing or t.extra:
                found += t.examples
        return [*found, *self.held.problems, *self.keys]


def verify(
    sides: Sides,
    read_back: ReadBack | None = None,
    *,
    kinds: Collection[Kind] = (Kind.ROWS, Kind.LOG),
    workers: int = 4,
) -> Verification:
    """Everything compared (the tables of ``kinds`` only, when given)."""
    read_back = read_back or ReadBack()
    result = Verification()
    for label, source, target in sides.archives():
        result.archives += check_archive(
            label, source, target, read_back=read_back, workers=workers
        )
    result.tables = [compare_rows(t) for t in sides.tables if t.spec.kind in kinds]
    result.held = copy_held(sides.source, sides.target, check_only=True)
    result.keys = key_problems(sides.source, sides.target)
    return result


def verify_writes(
    sides: Sides,
    passes: Sequence[PassReport],
    read_back: ReadBack,
    *,
    final: bool,
    workers: int = 4,
) -> Verification:
    """What ``passes`` wrote (passes after a :func:`verify`), read back: each instance they
    copied (index values and bytes) and each log row. ``final`` (the source read-only): each
    row of every table they wrote, every count, the held copies and the keys too."""
    result = Verification()
    for label, source, target in sides.archives():
        copied: dict[str, list[str]] = {}
        for report in passes:
            for a in report.archives:
                if a.archive == label and a.copied_uids:
                    copied.setdefault(a.tenant, []).extend(a.copied_uids)
        result.archives += check_copied(
            label, source, target, copied, read_back=read_back, counts=final, workers=workers
        )
    written: dict[str, set[Key]] = {}
    for report in passes:
        for t in report.tables:
            written.setdefault(t.table, set()).update(t.written)
    result.tables = [
        check_written(t, sorted(written.get(t.spec.name, ()), key=repr), counts=final)
        for t in sides.tables
        if final or t.spec.kind is Kind.LOG
    ]
    if final:
        result.held = copy_held(sides.source, sides.target, check_only=True)
        result.keys = key_problems(sides.source, sides.target)
    return result
