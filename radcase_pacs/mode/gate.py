"""The write guard of every database of a deployment: refuses writes while the mode says
read-only, reading the mode at most once per ``ttl`` seconds in each process.

Why a short cache is safe: the switch sets the flag, then waits ``ttl`` (after which no
process still believes the old value) and then drains the writers of every database
(:meth:`storage.database.base.Database.drain_writers`): a transaction that passed the guard
on an old value has committed by then, and every later one sees the flag. The source's state
read after that is final.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from radcase_pacs.mode.store import Mode, ModeStore
from storage.errors import ReadOnly


class WriteGate:
    def __init__(
        self, store: ModeStore, ttl: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.store = store
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._mode: Mode | None = None
        self._read_at = 0.0

    def mode(self) -> Mode:
        """The mode as read at most ``ttl`` seconds ago."""
        with self._lock:
            now = self._clock()
            if self._mode is None or now - self._read_at >= self.ttl:
                self._mode = self.store.mode()
                self._read_at = now
            return self._mode

    def last_known(self) -> Mode | None:
        """The mode as last read, without reading it (None before the first read): for the
        event loop, which must not wait on the database."""
        with self._lock:
            return self._mode

    def check(self) -> None:
        """The guard: :class:`~storage.errors.ReadOnly` while the deployment is read-only."""
        mode = self.mode()
        if mode.read_only:
            raise ReadOnly(
                f"the server is read-only for a moment ({mode.reason}); "
                f"try again in {mode.retry_after} s",
                retry_after=mode.retry_after,
            )
