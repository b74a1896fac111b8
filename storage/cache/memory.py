"""The embedded cache: an in-process LRU bounded by bytes, not entries.

Metadata bodies vary from a few KB to tens of MB, so an entry count says nothing about
memory; the budget counts value and key bytes. Values larger than a quarter of the budget are
not cached, so one huge study cannot flush everything else.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict


class MemoryCache:
    def __init__(self, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, tuple[bytes, float | None]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"MemoryCache(max_bytes={self.max_bytes})"

    def open(self) -> None:
        pass

    def ping(self) -> None:
        """Always answers: it is this process's memory."""

    def close(self) -> None:
        with self._lock:
            self._entries.clear()
            self._size = 0

    @property
    def size(self) -> int:
        return self._size

    def get(self, key: str) -> bytes | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[1] is not None and entry[1] < time.monotonic():
                self._remove(key)
                entry = None
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[0]

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        cost = len(value) + len(key)
        if cost > self.max_bytes // 4:
            return
        expires = time.monotonic() + ttl if ttl is not None else None
        with self._lock:
            if key in self._entries:
                self._remove(key)
            self._entries[key] = (value, expires)
            self._size += cost
            while self._size > self.max_bytes:
                oldest = next(iter(self._entries))
                self._remove(oldest)

    def incr(self, key: str, ttl: float) -> int:
        with self._lock:
            entry = self._entries.get(key)
            now = time.monotonic()
            expires: float | None
            if entry is None or (entry[1] is not None and entry[1] < now):
                count, expires = 1, now + ttl
                if entry is not None:
                    self._remove(key)
            else:
                count, expires = int(entry[0]) + 1, entry[1]
                self._remove(key)
            value = str(count).encode()
            self._entries[key] = (value, expires)
            self._size += len(value) + len(key)
            return count

    def delete(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                if key in self._entries:
                    self._remove(key)

    def _remove(self, key: str) -> None:
        value, _ = self._entries.pop(key)
        self._size -= len(value) + len(key)
