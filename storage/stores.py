"""The three stores behind an archive, opened once and shared by every view of it.

An :class:`~storage.archive.Archive` is a view (a tenant, the studies it may see, who is told
of ingests) over one ``Stores``; every view of a deployment shares the same connections,
pools and cache. Only the composition root builds a ``Stores`` (and may wrap its members,
e.g. to time them); everything else goes through an archive's methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from storage.blobs.base import BlobStore
from storage.cache.base import Cache
from storage.index.base import Index


@dataclass
class Stores:
    index: Index
    blobs: BlobStore
    cache: Cache
    _open: bool = field(default=False, init=False, repr=False)

    def open(self) -> None:
        """Open the blob store, the index (migrating it) and the cache; idempotent."""
        if not self._open:
            self.blobs.open()
            self.index.open()
            self.cache.open()
            self._open = True

    def close(self) -> None:
        """Close in the reverse order of opening; idempotent."""
        if self._open:
            self.cache.close()
            self.index.close()
            self.blobs.close()
            self._open = False
