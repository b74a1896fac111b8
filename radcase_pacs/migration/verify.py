"""The proof that the target holds what the source holds: every table compared row by row
(counts and every value), every instance of both archives found with the same index values
and its bytes read back from the target's store and hashed, every held-back copy compared,
and the keys the data depends on checked to agree. Anything that differs is listed."""

from __future__ import annotations

from dataclasses import dataclass, field

from radcase_pacs.migration.archives import ArchiveCheck, check_archive
from radcase_pacs.migration.held import HeldCopies, copy_held
from radcase_pacs.migration.keys import key_problems
from radcase_pacs.migration.rows import TableCheck, compare_rows
from radcase_pacs.migration.sides import Sides
from storage.records import StoredInstance


class ReadBack:
    """Which target blobs have been read back and found right during this run: each is read
    once after its copy, so that a switch's final check, under read-only, reads only those
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
            all(not a.problems and a.verified == a.source for a in self.archives)
            and all(t.ok for t in self.tables)
            and not self.held.problems
            and not self.keys
        )


def verify(
    sides: Sides, read_back: ReadBack | None = None, *, archives_only: bool = False
) -> Verification:
    """Everything compared; ``archives_only``: the instances alone (a switch reads back the
    blobs copied so far before it goes read-only, while rows still move)."""
    read_back = read_back or ReadBack()
    result = Verification()
    for label, source, target in sides.archives():
        result.archives += check_archive(label, source, target, read_back=read_back)
    if archives_only:
        return result
    result.tables = [compare_rows(table) for table in sides.tables]
    result.held = copy_held(sides.source, sides.target, check_only=True)
    result.keys = key_problems(sides.source, sides.target)
    return result
