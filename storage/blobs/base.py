"""The blob store contract: immutable byte objects under string keys.

Keys are chosen by the archive (tenant prefix, UIDs, content digest); a store only puts,
reads, ranges, lists and deletes. Objects are never modified in place, which is what lets
responses carry ``Cache-Control: immutable`` and frames be served by ranged reads.

A put is durable when it returns: the archive acknowledges an instance only once its bytes
are on stable storage (DESIGN "Data flow"). Writing many objects for one request goes in
two steps, :meth:`BlobStore.stage` each, then :meth:`BlobStore.publish` them together, so a
store that pays for durability in syncs (the folder store) pays them once per batch where it
can instead of once per object.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from storage.errors import BackendFailure

CHUNK_SIZE = 1024 * 1024


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

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        """Exactly ``length`` bytes from ``offset`` (one ranged read: frames, bulk data)."""

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error."""

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Every key under ``prefix`` (for sweeping orphans and migration)."""
