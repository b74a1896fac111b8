"""The blob store contract: immutable byte objects under string keys.

Keys are chosen by the archive (tenant prefix, UIDs, content digest); a store only puts,
reads, ranges, lists and deletes. Objects are never modified in place, which is what lets
responses carry ``Cache-Control: immutable`` and frames be served by ranged reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO, Protocol

CHUNK_SIZE = 1024 * 1024


class BlobStore(Protocol):
    #: Reads are local file reads, served from the operating system's page cache when hot:
    #: the archive then keeps no cached copy of what it reads (frames), which would only
    #: hold the same bytes twice.
    local: bool

    def open(self) -> None:
        """Prepare the store (create the folder or check the bucket)."""

    def close(self) -> None: ...

    def put(self, key: str, source: BinaryIO, size: int) -> None:
        """Store ``size`` bytes read from ``source`` (positioned at its start) atomically: a
        reader sees the whole object or none of it."""

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
