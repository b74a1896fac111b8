"""Group commit: rows that callers append at the same moment are written in one transaction.

A server that writes one small row per request before serving it (the audit log) pays a
transaction per request: a write lock, a commit, a round trip. Under load those
transactions queue behind each other, in one process behind its write lock, across
processes behind the database's own (SQLite makes a writer that finds the lock taken sleep
and retry, for up to tens of milliseconds). Here each caller still returns only once its own
row is committed, or raises the error that prevented it; but whoever arrives while a batch is
being written waits for the next batch, written by one of them for all, so the transactions
per second stay near the commits the database can make, whatever the request rate.

The writing is done by the callers' own threads, no thread of its own: the first caller
writes; each caller that arrives meanwhile queues, and when a batch ends the oldest of the
queued callers is woken to write everything queued by then. No caller writes more than one
batch, so no request's wait grows with the load behind it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class _Waiter(Generic[T]):
    __slots__ = ("done", "error", "item", "lead")

    def __init__(self, item: T) -> None:
        self.item = item
        self.done = threading.Event()
        self.lead = False
        self.error: BaseException | None = None


class GroupCommit(Generic[T]):
    """Calls ``write`` with batches of submitted items, at most one batch at a time."""

    def __init__(self, write: Callable[[Sequence[T]], None], limit: int = 500) -> None:
        self._write = write
        self._limit = limit
        self._lock = threading.Lock()
        self._queue: list[_Waiter[T]] = []
        self._writing = False

    def submit(self, item: T) -> None:
        """Returns once ``item`` is written; raises what ``write`` raised for its batch.

        The caller must hold no transaction or lock that ``write`` needs: it may wait for
        another thread's write (the audit log is only ever recorded outside transactions)."""
        waiter = _Waiter(item)
        with self._lock:
            self._queue.append(waiter)
            lead = not self._writing
            self._writing = True
        if not lead:
            waiter.done.wait()
            if not waiter.lead:
                if waiter.error is not None:
                    raise waiter.error
                return
        self._write_batch()
        if waiter.error is not None:
            raise waiter.error

    def _write_batch(self) -> None:
        """Writes what is queued (up to the limit), wakes its writers, hands on the lead."""
        with self._lock:
            batch, self._queue = self._queue[: self._limit], self._queue[self._limit :]
        error: BaseException | None = None
        try:
            self._write([waiter.item for waiter in batch])
        except BaseException as exc:  # every caller of the batch sees its own failure
            error = exc
        for waiter in batch:
            waiter.error = error
            waiter.lead = False
            waiter.done.set()
        with self._lock:
            if self._queue:
                following = self._queue[0]
                following.lead = True
                following.done.set()
            else:
                self._writing = False
