"""The blob store contract: immutable byte objects under string keys.

Keys are chosen by the archive (tenant prefix, UIDs, content digest); a store only puts,
reads, ranges, lists and deletes. Objects are never modified in place, which is what lets
responses carry ``Cache-Control: immutable`` and frames be served by ranged reads.

Listing with each object's time of writing, conditional deletion and the partial-write
methods exist for the orphan sweep (:mod:`storage.sweep`): a crash between the blob write
and the index commit leaves an object nothing references, and a crash in the middle of a
write leaves the remains of that write; both are removed once older than a grace period.

A put is durable when it returns: the archive acknowledges an instance only once its bytes
are on stable storage (DESIGN "Data flow"). Writing many objects for one request goes in
two steps, :meth:`BlobStore.stage` each, then :meth:`BlobStore.publish` them together, so a
store that pays for durability in syncs (the folder store) pays them once per batch where it
can instead of once per object. A staged object not yet published is a partial write.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Protocol

from storage.errors import BackendFailure

CHUNK_SIZE = 1024 * 1024


@dataclass(frozen=True, slots=True)
class BlobEntry:
    """One stored object as listed: what the sweep weighs against its grace period."""

    key: str
    size: int
    modified: datetime
    """When the object was last written (timezone-aware)."""


@dataclass(frozen=True, slots=True)
class PartialWrite:
    """What a write that never completed left behind (a crash in the middle of a put): never
    visible under a key, never listed by ``entries``, only taking space."""

    name: str
    """The key it was writing (where the store cannot tell, its own name in the store)."""
    handle: str
    """What the store needs to discard it (the file's path, the upload's id)."""
    size: int
    started: datetime
    """When the write last made progress, or began where a store cannot tell."""


@dataclass(frozen=True, slots=True)
class Staged:
    """An object written by :meth:`BlobStore.stage` and not yet published."""

    key: str
    handle: str = ""
    """Where the store holds the bytes until they are published (its own business: a
    temporary file for the folder store, nothing for S3)."""


class BlobStore(Protocol):
    #: Reads are local file reads, served from the operating system's page cache when hot:
    #: the archive then keeps no cached copy of what it reads (frames), which would only
    #: hold the same bytes twice.
    local: bool

    def open(self) -> None:
        """Prepare the store (create the folder or check the bucket)."""

    def close(self) -> None: ...

    def ping(self) -> None:
        """Raise BackendFailure unless the store answers now (``/healthz``)."""

    def put(self, key: str, source: BinaryIO, size: int) -> None:
        """Store ``size`` bytes read from ``source`` (positioned at its start) atomically (a
        reader sees the whole object or none of it) and durably (when it returns, the object
        survives a power cut, unless the store was opened to trade that away)."""

    def stage(self, key: str, source: BinaryIO, size: int) -> Staged:
        """Write an object as :meth:`put` does, without paying yet for its durability: it is
        durable, and visible under ``key`` at the latest, once :meth:`publish` returned no
        failure for it. Raises like :meth:`put`."""

    def publish(self, staged: Sequence[Staged]) -> list[BackendFailure | None]:
        """Make staged objects durable and visible under their keys, atomically each; for each
        one, in order, None or why it could not be. A failed one is not published (it may stay
        visible where staging made it so: the archive removes what nothing references)."""

    def discard(self, staged: Sequence[Staged]) -> None:
        """Drop what staging holds for objects that will not be published (best effort)."""

    def get(self, key: str) -> bytes: ...

    def stream(self, key: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """The object's bytes in chunks, never the whole object in memory."""

    def view(self, key: str) -> bytes | memoryview:
        """The whole object, to be sent as it is: where the store is local, a read-only
        memory map of its file, which the socket copies from the page cache without a read
        into the process first; elsewhere its bytes (:meth:`get`)."""

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        """Exactly ``length`` bytes from ``offset`` (one ranged read: frames, bulk data)."""

    def prefetch(self, keys: Sequence[str]) -> None:
        """A hint that these objects are about to be read whole: a local store starts
        reading them from the disk now, side by side, while earlier ones are being sent.
        Best effort: never raises, does nothing where it cannot help."""

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error."""

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Every key under ``prefix`` (migration, tests)."""

    def entries(self, prefix: str = "") -> Iterator[BlobEntry]:
        """Every object under ``prefix`` with its size and time of writing, streamed (a
        listing never holds the whole store in memory). Writes in flight are not listed."""

    def delete_if_older(self, key: str, cutoff: datetime) -> bool:
        """Remove the object only if it was last written before ``cutoff``; True when it
        was removed. An object written again since it was listed (the same instance sent
        again after a crash: same content, same key) is kept."""

    def partial_writes(self, prefix: str = "") -> Iterator[PartialWrite]:
        """The remains of writes under ``prefix`` that have not completed: in flight or
        abandoned by a crash (the caller tells them apart by age)."""

    def discard_partial(self, write: PartialWrite) -> None:
        """Remove the remains of a write (one that ``partial_writes`` listed)."""
