"""An archive carried instance by instance: the clinical archive and the teaching collection,
each institution's in turn, through the archive's own methods.

Each instance's stored bytes are read from the source and ingested into the target
(``Archive.ingest``), so the target's index rows are computed by the same code from the same
bytes, every invariant of ingest holds (blob before index rows, nothing half-stored), and the
keys, frame tables and JSON come out as the source's did. The two archives are walked side by
side in SOP Instance UID order (both indexes sort UIDs byte-wise), which tells in one pass
what the target lacks (copied), what it holds that the source no longer does (removed: the
source deleted it since an earlier pass) and what it holds with other content (replaced).
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from functools import partial
from itertools import islice
from typing import BinaryIO, Protocol, cast

from storage.archive import Archive
from storage.errors import ArchiveError, InstanceRejected, NotFound
from storage.records import StoredInstance

log = logging.getLogger(__name__)

PAGE = 500
BATCH = 64
"""Instances handed to the copying threads at a time (what a pass holds in memory)."""
SPOOL_IN_MEMORY = 64 * 1024 * 1024
Pair = tuple[StoredInstance | None, StoredInstance | None]


@dataclass
class ArchiveCopy:
    """What one pass did to one institution's instances in one archive."""

    archive: str
    tenant: str
    copied: int = 0
    present: int = 0
    removed: int = 0
    problems: list[str] = field(default_factory=list)
    copied_uids: list[str] = field(default_factory=list)
    """The SOP Instance UIDs copied (what a switch's last check reads back)."""


@dataclass
class ArchiveCheck:
    """One institution's instances in one archive, compared."""

    archive: str
    tenant: str
    source: int = 0
    verified: int = 0
    """Found in the target with the same index values, and (once in the run) its bytes read
    back from the target's store with the source's SHA-256."""
    unmatched: list[str] = field(default_factory=list)
    """Instances one side has and the other lacks (what a copying pass makes good)."""
    problems: list[str] = field(default_factory=list)
    """Everything else: an instance whose index values or stored bytes differ."""

    @property
    def ok(self) -> bool:
        return not self.unmatched and not self.problems and self.verified == self.source


def instances(archive: Archive) -> Iterator[StoredInstance]:
    """Every instance of the archive's tenant, in SOP Instance UID order, a page at a time."""
    after = ""
    while True:
        page = archive.walk(after, PAGE)
        yield from page
        if len(page) < PAGE:
            return
        after = page[-1].sop_uid


def side_by_side(source: Archive, target: Archive) -> Iterator[Pair]:
    """(source instance, target instance) for every SOP Instance UID either holds, in UID
    order; None on the side that lacks it."""
    left, right = instances(source), instances(target)
    a, b = next(left, None), next(right, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a.sop_uid < b.sop_uid):
            yield a, None
            a = next(left, None)
        elif a is None or b.sop_uid < a.sop_uid:
            yield None, b
            b = next(right, None)
        else:
            yield a, b
            a, b = next(left, None), next(right, None)


def tenants(source: Archive, target: Archive) -> list[str]:
    """The institutions either archive holds instances of (the target's too: what the
    source deleted entirely must leave the target as well)."""
    return sorted(set(source.tenants()) | set(target.tenants()))


def copy_archive(
    name: str,
    source: Archive,
    target: Archive,
    *,
    workers: int,
    on_instance: Callable[[], None] | None = None,
) -> list[ArchiveCopy]:
    outcomes = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for tenant in tenants(source, target):
            outcome = ArchiveCopy(name, tenant)
            outcomes.append(outcome)
            src, dst = source.with_tenant(tenant), target.with_tenant(tenant)
            pairs = side_by_side(src, dst)
            while batch := list(islice(pairs, BATCH)):
                copies = []
                for theirs, ours in batch:
                    if theirs is None:
                        assert ours is not None
                        _remove(dst, ours, outcome)
                    elif ours is not None and ours.sha256 == theirs.sha256:
                        outcome.present += 1
                    else:
                        if ours is not None:  # deleted and stored again with other bytes
                            _remove(dst, ours, outcome)
                        copies.append(theirs)
                for instance, result in zip(
                    copies, pool.map(partial(copy_instance, src, dst), copies), strict=True
                ):
                    if result is None:
                        outcome.copied += 1
                        outcome.copied_uids.append(instance.sop_uid)
                    else:
                        outcome.problems.append(result)
                if on_instance is not None:
                    for _ in batch:
                        on_instance()
    return outcomes


def copy_instance(src: Archive, dst: Archive, instance: StoredInstance) -> str | None:
    """None once the target holds the instance, else what went wrong."""
    try:
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
            for chunk in src.stream(instance):
                spool.write(chunk)
            spool.seek(0)
            # A binary file object, though typeshed types a spooled file as IO[bytes] only.
            dst.ingest(cast(BinaryIO, spool))
        return None
    except NotFound:
        return None  # deleted from the source since it was listed: nothing to carry
    except InstanceRejected as exc:
        return f"{instance.sop_uid}: refused by the target: {exc.reason}"
    except ArchiveError as exc:
        return f"{instance.sop_uid}: {exc}"


def _remove(dst: Archive, instance: StoredInstance, outcome: ArchiveCopy) -> None:
    try:
        outcome.removed += dst.delete(instance.study_uid, instance.series_uid, instance.sop_uid)
    except NotFound:
        pass
    except ArchiveError as exc:
        outcome.problems.append(f"{instance.sop_uid}: could not be removed from the target: {exc}")


class ReadsBack(Protocol):
    def wanted(self, label: str, instance: StoredInstance) -> bool: ...
    def done(self, label: str, instance: StoredInstance) -> None: ...


def check_archive(
    name: str, source: Archive, target: Archive, *, read_back: ReadsBack, workers: int = 4
) -> list[ArchiveCheck]:
    """Each instance of the source in the target with the same index values; its bytes read
    from the target's store and hashed (``workers`` at a time) unless ``read_back`` already
    has; nothing else there."""
    checks = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for tenant in tenants(source, target):
            check = ArchiveCheck(name, tenant)
            checks.append(check)
            src, dst = source.with_tenant(tenant), target.with_tenant(tenant)
            pairs = side_by_side(src, dst)
            while batch := list(islice(pairs, BATCH)):
                reads = []
                for theirs, ours in batch:
                    if theirs is not None:
                        check.source += 1
                    if not _compared(theirs, ours, check):
                        continue
                    assert ours is not None
                    if read_back.wanted(name, ours):
                        reads.append(ours)
                    else:
                        check.verified += 1
                _read_all_back(name, dst, reads, read_back, check, pool)
    return checks


def check_copied(
    name: str,
    source: Archive,
    target: Archive,
    copied: dict[str, list[str]],
    *,
    read_back: ReadsBack,
    counts: bool = True,
    workers: int = 4,
) -> list[ArchiveCheck]:
    """The short check of a switch's passes, once every instance copied before them was
    checked by :func:`check_archive`: each instance they copied (``copied``: SOP Instance
    UIDs by tenant) is in the target with the source's index values and bytes, and, with
    ``counts``, the instance counts of each institution agree (``source`` and ``verified``
    then count them all, else only the copied ones)."""
    checks = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for tenant in tenants(source, target) if counts else sorted(copied):
            check = ArchiveCheck(name, tenant)
            checks.append(check)
            src, dst = source.with_tenant(tenant), target.with_tenant(tenant)
            if counts:
                check.source = src.usage().instances
                theirs_count = dst.usage().instances
                if theirs_count != check.source:
                    check.unmatched.append(
                        f"{check.source} instances in the source, {theirs_count} in the target"
                    )
            else:
                check.source = len(copied[tenant])
            reads, checked = [], 0
            for uid in copied.get(tenant, []):
                theirs, ours = src.stored(uid), dst.stored(uid)
                if theirs is None:
                    continue  # removed since: the counts tell whether the target followed
                checked += 1
                if _compared(theirs, ours, check):
                    assert ours is not None
                    reads.append(ours)
            check.verified = check.source - checked
            _read_all_back(name, dst, reads, read_back, check, pool)
    return checks


def _compared(
    theirs: StoredInstance | None, ours: StoredInstance | None, check: ArchiveCheck
) -> bool:
    """Whether both sides hold the instance with the same index values (else noted)."""
    if theirs is None:
        assert ours is not None
        check.unmatched.append(f"{ours.sop_uid}: in the target only")
        return False
    if ours is None:
        check.unmatched.append(f"{theirs.sop_uid}: missing in the target")
        return False
    differing = differences(theirs, ours)
    if differing:
        check.problems.append(
            f"{theirs.sop_uid}: the target's index differs in {', '.join(differing)}"
        )
        return False
    return True


def _read_all_back(
    name: str,
    dst: Archive,
    reads: list[StoredInstance],
    read_back: ReadsBack,
    check: ArchiveCheck,
    pool: ThreadPoolExecutor,
) -> None:
    for instance, problem in zip(reads, pool.map(partial(_read_back, dst), reads), strict=True):
        if problem:
            check.problems.append(f"{instance.sop_uid}: {problem}")
        else:
            read_back.done(name, instance)
            check.verified += 1


def differences(source: StoredInstance, target: StoredInstance) -> list[str]:
    """The index values of an instance that differ between the two sides. A value the
    source's older rows do not record (``decode_problem`` before it was found at ingest) is
    no difference when the target, ingesting anew, found it."""
    out = []
    for item in fields(StoredInstance):
        theirs, ours = getattr(source, item.name), getattr(target, item.name)
        if item.name == "decode_problem" and theirs is None:
            continue
        if theirs != ours:
            out.append(item.name)
    return out


def _read_back(dst: Archive, instance: StoredInstance) -> str | None:
    """What is wrong with the target's stored bytes of ``instance`` (whose index values,
    its SHA-256 among them, are the source's), or None."""
    digest = hashlib.sha256()
    try:
        for chunk in dst.stream(instance):
            digest.update(chunk)
    except ArchiveError as exc:
        return f"the target's blob cannot be read: {exc}"
    if digest.hexdigest() != instance.sha256:
        return "the target's stored bytes differ from the source's"
    return None
