"""The orphan sweep: removes blobs that no index row references, once they are older than a
grace period, and the remains of writes that never completed.

Why orphans exist: ingest writes the blob first, then the index rows in one transaction
(DESIGN "Data flow"), so an index row never points at a missing blob. A crash between the
two, or an ingest whose index transaction fails when the archive cannot clean up after it,
leaves a blob that nothing references and nothing serves: it only takes space.

Why the grace period makes it safe against ingests in flight: a blob is written, then its
row committed, within the time one ingest takes (bounded by the request and database
timeouts, an upload at worst). A blob written before ``start - grace`` whose ingest is still
alive has therefore committed its row before the sweep started, and the sweep asks the index
about a key only after it has listed it: an old blob that no row names is an orphan. Younger
blobs are never touched. The grace period must outlast the longest ingest, from the first
byte written to the commit (the default hour leaves a 2 GiB instance 0.6 MB/s of upload).

Nothing but what this program writes is touched: a sweep removes only keys its caller
claims (``owned``: the archive's key shapes, :func:`storage.archive.is_archive_key`), so a
store shared with anything else loses nothing of it.

The work goes in pages of listed keys, one batched reference check per page: memory stays
bounded whatever the size of the store. The report says what was removed (count and bytes,
each key at debug level) and what was kept because it was too young.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import TypeVar

from storage.blobs.base import BlobEntry, BlobStore

log = logging.getLogger(__name__)

PAGE_SIZE = 500
T = TypeVar("T")

References = Callable[[Collection[str]], set[str]]
"""Given listed keys, those that something still references (they are kept)."""


@dataclass
class SweepReport:
    """What one sweep of one store found and did (or, in a dry run, would have done)."""

    store: str
    grace: timedelta
    dry_run: bool = False
    listed: int = 0
    referenced: int = 0
    foreign: int = 0
    """Keys (and partial writes) not of a shape this program writes: left alone."""
    removed: int = 0
    removed_bytes: int = 0
    too_young: int = 0
    """Unreferenced, but written within the grace period (perhaps mid-ingest): kept."""
    partial_removed: int = 0
    partial_bytes: int = 0
    partial_too_young: int = 0
    interrupted: bool = False

    def summary(self) -> str:
        verb = _verb(self)
        seconds = f"{self.grace.total_seconds():g} s"
        text = (
            f"{self.store}: {self.listed} blobs listed, {self.referenced} referenced; "
            f"{verb} {self.removed} orphans ({_size(self.removed_bytes)}); "
            f"kept {self.too_young} unreferenced younger than {seconds}; "
            f"{verb} {self.partial_removed} abandoned partial writes "
            f"({_size(self.partial_bytes)}), kept {self.partial_too_young} younger"
        )
        if self.foreign:
            text += f"; left {self.foreign} keys this program does not write"
        if self.interrupted:
            text += "; interrupted before the end"
        return text


def sweep_store(
    blobs: BlobStore,
    references: Iterable[References],
    *,
    grace: timedelta,
    owned: Callable[[str], bool],
    dry_run: bool = False,
    label: str = "blobs",
    now: datetime | None = None,
    stop: Callable[[], bool] = lambda: False,
    page_size: int = PAGE_SIZE,
) -> SweepReport:
    """Sweep one blob store: its keys that ``owned`` accepts and none of ``references``
    names, written before ``now - grace``, are removed; so are its partial writes that made
    no progress since then. ``stop`` is asked between pages (a server shutting down)."""
    if grace < timedelta(0):
        raise ValueError("the grace period cannot be negative")
    sources = list(references)
    cutoff = (now or datetime.now(UTC)) - grace
    report = SweepReport(label, grace, dry_run)
    for page in _pages(blobs.entries(), page_size):
        if stop():
            report.interrupted = True
            return report
        _sweep_page(blobs, page, sources, owned, cutoff, report)
    if stop():
        report.interrupted = True
        return report
    _sweep_partial_writes(blobs, owned, cutoff, report)
    return report


def _sweep_page(
    blobs: BlobStore,
    page: list[BlobEntry],
    sources: list[References],
    owned: Callable[[str], bool],
    cutoff: datetime,
    report: SweepReport,
) -> None:
    report.listed += len(page)
    mine = [entry for entry in page if owned(entry.key)]
    report.foreign += len(page) - len(mine)
    wanted = {entry.key for entry in mine}
    kept: set[str] = set()
    for source in sources:
        if wanted - kept:
            kept |= source(wanted - kept) & wanted
    report.referenced += len(kept)
    for entry in mine:
        if entry.key in kept:
            continue
        if entry.modified >= cutoff:
            report.too_young += 1
        elif report.dry_run:
            log.debug("would remove orphan blob %s (%d bytes)", entry.key, entry.size)
            _count_removed(report, entry)
        elif blobs.delete_if_older(entry.key, cutoff):
            log.debug("removed orphan blob %s (%d bytes)", entry.key, entry.size)
            _count_removed(report, entry)
        else:  # written again since it was listed
            report.too_young += 1


def _count_removed(report: SweepReport, entry: BlobEntry) -> None:
    report.removed += 1
    report.removed_bytes += entry.size


def _sweep_partial_writes(
    blobs: BlobStore, owned: Callable[[str], bool], cutoff: datetime, report: SweepReport
) -> None:
    for write in blobs.partial_writes():
        if not owned(write.name):
            report.foreign += 1
        elif write.started >= cutoff:
            report.partial_too_young += 1
            continue
        else:
            if not report.dry_run:
                blobs.discard_partial(write)
            log.debug("%s abandoned partial write of %s", _verb(report), write.name)
            report.partial_removed += 1
            report.partial_bytes += write.size


def _verb(report: SweepReport) -> str:
    return "would remove" if report.dry_run else "removed"


def _pages(items: Iterator[T], size: int) -> Iterator[list[T]]:
    while page := list(islice(items, size)):
        yield page


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} bytes"
    value, unit = count / 1024, "KiB"
    for larger in ("MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, larger
    return f"{value:.1f} {unit}"
