"""Worker threads for the blocking calls of a request: a lane for blob I/O, apart from the
threads every other call uses.

Why lanes of our own rather than anyio's worker threads (Starlette's ``run_in_threadpool``):
on a 2-core virtual machine a call handed to anyio cost 130-145 us of CPU one at a time and
85-95 us with 16 at once; a :class:`ThreadLane` (each thread asleep on a lock of its own, the
answer sent back with ``call_soon_threadsafe``) costs 65-70 us and 37-42 us. A search or a
frame makes two such calls (its audit entry, then its read): a frame request then took a
fifth less CPU.

Handlers run blocking work in worker threads. A blob store that stops answering (a frozen S3
accepts connections and never replies) holds each thread that reads from it until its time
bound; enough viewers fetching frames then hold every thread, and a QIDO-RS search, cached
metadata or ``/healthz``, which need no blob at all, would queue behind them. So every call
that reads or writes blobs runs in a :class:`BlobLane`: threads of its own (``blob_threads``)
beyond which blob work waits in the lane's queue, holding no thread, and :data:`SHARED`
stays free for everything else.

A lane bounds how many threads blob work holds; the stores bound how long it takes
(``storage.blobs.s3``: a budget per request and a circuit breaker). With a ``budget``, the
lane opens a deadline (:mod:`storage.deadlines`) when a call starts waiting for a thread, so
the wait counts against the store's budget: a call that queued behind others stuck on a
frozen store does not then take a whole budget of its own.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Generic, TypeVar, TypeVarTuple

from storage import deadlines

log = logging.getLogger(__name__)

T = TypeVar("T")
Ts = TypeVarTuple("Ts")
_END = object()

IDLE_SECONDS = 10.0
"""How long a lane's thread waits for a call before it ends (anyio's worker threads: 10 s)."""

_QUEUED, _RUNNING, _DROPPED = range(3)
"""A call's state: waiting for a thread, handed to one, taken out by its cancelled caller."""


class _Job(Generic[T]):
    """One call: run in a copy of the caller's context (as anyio does, so that context
    variables such as a blob deadline reach the thread), answered on the caller's loop."""

    __slots__ = ("args", "context", "finished", "func", "future", "loop", "settled", "state")

    def __init__(self, loop: asyncio.AbstractEventLoop, func: Callable[..., T], args: Any) -> None:
        self.loop = loop
        self.future: asyncio.Future[T] = loop.create_future()
        self.context = contextvars.copy_context()
        self.func = func
        self.args = args
        self.state = _QUEUED
        self.settled = False
        self.finished: asyncio.Future[None] | None = None
        """Created when the caller was cancelled while the call ran: the caller waits on it."""


class _Worker:
    """One thread of a lane, asleep on its own lock until it is handed a call."""

    __slots__ = ("job", "name", "wake")

    def __init__(self, job: _Job[Any], name: str) -> None:
        self.job = job
        self.name = name
        self.wake = threading.Lock()
        self.wake.acquire()


class ThreadLane:
    """At most ``threads`` worker threads, started as work needs them and ended after
    :data:`IDLE_SECONDS` without any (an app made and dropped, in tests, leaves none behind);
    a call beyond them waits in the lane's queue, holding no thread.

    A call goes to the thread that went idle last, as anyio does: under a light load the same
    few threads, warm, take every call, rather than each call waking another of many.

    A caller cancelled while its call waits takes the call out; a caller cancelled while its
    call runs waits for it to end before the cancellation goes on, as with anyio, so that
    nothing the call uses (an open file, a transaction) is let go under it."""

    def __init__(self, threads: int, name: str) -> None:
        if threads < 1:
            raise ValueError(f"a lane needs at least one thread, not {threads}")
        self.threads = threads
        self.name = name
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._waiting: collections.deque[_Job[Any]] = collections.deque()
        self._started = 0
        self._numbered = 0
        self._busy = 0

    async def run(self, func: Callable[[*Ts], T], *args: *Ts) -> T:
        """``func(*args)`` in a thread of this lane."""
        job: _Job[T] = _Job(asyncio.get_running_loop(), func, args)
        woken: _Worker | None = None
        new: _Worker | None = None
        with self._lock:
            if self._idle:
                woken = self._idle.pop()
                woken.job = job
            elif self._started < self.threads:
                self._started += 1
                self._numbered += 1
                new = _Worker(job, f"{self.name}-{self._numbered}")
            else:
                self._waiting.append(job)
            if woken is not None or new is not None:
                job.state = _RUNNING
                self._busy += 1
        if woken is not None:
            woken.wake.release()
        elif new is not None:
            self._start(new)
        try:
            return await job.future
        except asyncio.CancelledError:
            if not self._drop(job):
                await _until_settled(job)
            raise

    def _start(self, worker: _Worker) -> None:
        """Start a thread for ``worker``'s call; when none can be started (the process is at
        its limit), the call fails with that error rather than wait for a thread forever."""
        try:
            threading.Thread(
                target=self._serve, args=(worker,), name=worker.name, daemon=True
            ).start()
        except BaseException:
            with self._lock:
                self._started -= 1
                self._busy -= 1
            raise

    def statistics(self) -> dict[str, float]:
        """Threads held by calls and calls waiting for one (for /healthz)."""
        with self._lock:
            return {"threads": self.threads, "busy": self._busy, "waiting": len(self._waiting)}

    def _drop(self, job: _Job[Any]) -> bool:
        """Take a call that has not started out of the queue; False when it already runs."""
        with self._lock:
            if job.state != _QUEUED:
                return False
            job.state = _DROPPED
            self._waiting.remove(job)
            return True

    def _serve(self, worker: _Worker) -> None:
        job = worker.job
        while True:
            try:
                result, error = job.context.run(job.func, *job.args), None
            except BaseException as exc:  # the caller gets it, whatever it is
                result, error = None, exc
                if isinstance(exc, StopIteration):  # a Future cannot carry it
                    error = RuntimeError("a call in a worker thread raised StopIteration")
                    error.__cause__ = exc
            # Idle (or on to the next call) before the answer: the caller's next call then
            # finds this thread rather than starting another.
            following: _Job[Any] | None = None
            with self._lock:
                if self._waiting:
                    following = self._waiting.popleft()
                    following.state = _RUNNING
                else:
                    self._busy -= 1
                    self._idle.append(worker)
            try:
                job.loop.call_soon_threadsafe(_settle, job, result, error)
            except RuntimeError:  # the caller's loop is closed: nobody is waiting
                log.debug("a lane call ended after its event loop closed")
            del job, result, error
            if following is None:
                if not worker.wake.acquire(timeout=IDLE_SECONDS) and self._retire(worker):
                    return
                following = worker.job
            job = following

    def _retire(self, worker: _Worker) -> bool:
        """End an idle thread's wait: True when it was still idle (the thread then ends),
        False when a call was handed to it at that moment (its wake is released: take it)."""
        with self._lock:
            idle = worker in self._idle
            if idle:
                self._idle.remove(worker)
                self._started -= 1
        if not idle:
            worker.wake.acquire()
        return idle


def _settle(job: _Job[Any], result: Any, error: BaseException | None) -> None:
    """In the caller's loop: answer the call, unless its caller was cancelled."""
    job.settled = True
    if job.finished is not None and not job.finished.done():
        job.finished.set_result(None)
    if job.future.done():
        return
    if error is None:
        job.future.set_result(result)
    else:
        job.future.set_exception(error)


async def _until_settled(job: _Job[Any]) -> None:
    """Wait for a running call to end, through any further cancellation."""
    if job.settled:
        return
    job.finished = finished = job.loop.create_future()
    while not finished.done():
        try:
            await asyncio.shield(finished)
        except asyncio.CancelledError:
            continue


SHARED = ThreadLane(40, "radcase-work")
"""The lane of every blocking call of a request but blob I/O (anyio's default allows as many
threads: 40)."""


async def in_thread(func: Callable[[*Ts], T], *args: *Ts) -> T:
    """``func(*args)`` in a thread of :data:`SHARED`: the replacement for Starlette's
    ``run_in_threadpool`` on the paths every request takes."""
    return await SHARED.run(func, *args)


class BlobLane:
    def __init__(self, threads: int = 16, budget: float | None = None) -> None:
        self.budget = budget
        self._lane = ThreadLane(threads, "radcase-blobs")

    async def run(self, func: Callable[[*Ts], T], *args: *Ts) -> T:
        """``func(*args)`` in a worker thread of this lane, within ``budget`` seconds of
        now, waiting included (where the store keeps deadlines)."""
        with deadlines.within(self.budget):
            return await self._lane.run(func, *args)

    async def iterate(self, iterator: Iterator[T]) -> AsyncIterator[T]:
        """The items of a blocking iterator, each produced in a worker thread of this lane."""
        while True:
            item = await self.run(next, iterator, _END)
            if item is _END:
                return
            yield item  # type: ignore[misc]

    def statistics(self) -> dict[str, float]:
        """Threads held and requests waiting for one (for /healthz)."""
        return self._lane.statistics()


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
