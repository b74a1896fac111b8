"""Worker threads for blob I/O, apart from the threads every other request uses.

Handlers run blocking work in worker threads, and Starlette's ``run_in_threadpool`` takes
them all from one shared limit (anyio's default, 40 at once). A blob store that stops
answering (a frozen S3 accepts connections and never replies) holds each thread that reads
from it until its time bound; enough viewers fetching frames then hold every thread, and a
QIDO-RS search, cached metadata or ``/healthz``, which need no blob at all, queue behind
them. So every call that reads or writes blobs runs in a :class:`BlobLane`: a limit of its
own (``blob_threads``) beyond which blob work waits in the event loop, holding no thread,
and the shared limit stays free for everything else.

A lane bounds how many threads blob work holds; the stores bound how long it takes
(``storage.blobs.s3``: a budget per request and a circuit breaker). With a ``budget``, the
lane opens a deadline (:mod:`storage.deadlines`) when a call starts waiting for a thread, so
the wait counts against the store's budget: a call that queued behind others stuck on a
frozen store does not then take a whole budget of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar, TypeVarTuple

import anyio
import anyio.to_thread

from storage import deadlines

T = TypeVar("T")
Ts = TypeVarTuple("Ts")
_END = object()


class BlobLane:
    def __init__(self, threads: int = 16, budget: float | None = None) -> None:
        self.threads = threads
        self.budget = budget
        self._limiter = anyio.CapacityLimiter(threads)

    async def run(self, func: Callable[[*Ts], T], *args: *Ts) -> T:
        """``func(*args)`` in a worker thread of this lane, within ``budget`` seconds of
        now, waiting included (where the store keeps deadlines)."""
        with deadlines.within(self.budget):
            return await anyio.to_thread.run_sync(func, *args, limiter=self._limiter)

    async def iterate(self, iterator: Iterator[T]) -> AsyncIterator[T]:
        """The items of a blocking iterator, each produced in a worker thread of this lane."""
        while True:
            item = await self.run(next, iterator, _END)
            if item is _END:
                return
            yield item  # type: ignore[misc]

    def statistics(self) -> dict[str, float]:
        """Threads held and requests waiting for one (for /healthz)."""
        stats = self._limiter.statistics()
        return {
            "threads": self.threads,
            "busy": stats.borrowed_tokens,
            "waiting": stats.tasks_waiting,
        }


async def primed(body: AsyncIterator[T]) -> AsyncIterator[T]:
    """``body`` with its first piece already read. A response body is read after the status
    line is sent, when a failure can only cut it short; reading the first piece before lets
    a store that fails at once (the usual way: it does not answer) be answered as a fault
    with its status (503 and Retry-After) rather than a 200 with a truncated body."""
    first = await anext(body, _END)

    async def chained() -> AsyncIterator[T]:
        if first is _END:
            return
        yield first  # type: ignore[misc]
        async for piece in body:
            yield piece

    return chained()
