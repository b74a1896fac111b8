"""The worker-thread lanes (dicomweb.lanes): what a caller of ``run`` may count on.

A call runs in a thread of the lane, in a copy of the caller's context; its result or its
exception comes back; no more calls run at once than the lane has threads, and the others
wait, holding none; a caller cancelled while its call waits takes it out, and one cancelled
while its call runs goes on only once the call has ended.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest

from dicomweb import lanes
from dicomweb.lanes import BlobLane, ThreadLane
from storage import deadlines

MARK: contextvars.ContextVar[str] = contextvars.ContextVar("mark", default="unset")
WAIT = 5.0
"""Seconds a test waits for a thread to reach a point; far beyond what it needs."""


def test_a_call_runs_in_a_lane_thread_and_gives_back_its_result() -> None:
    lane = ThreadLane(2, "test-lane")

    async def main() -> tuple[str, int]:
        return await lane.run(lambda a, b: (threading.current_thread().name, a + b), 2, 3)

    name, total = asyncio.run(main())
    assert name.startswith("test-lane-") and total == 5


def test_the_callers_exception_comes_back_as_raised() -> None:
    lane = ThreadLane(1, "test-lane")

    def fails() -> None:
        raise KeyError("the index has no such study")

    async def main() -> None:
        await lane.run(fails)

    with pytest.raises(KeyError, match="no such study"):
        asyncio.run(main())


def test_stop_iteration_comes_back_as_a_runtime_error_with_its_cause() -> None:
    lane = ThreadLane(1, "test-lane")

    async def main() -> None:
        await lane.run(next, iter(()))

    with pytest.raises(RuntimeError) as raised:
        asyncio.run(main())
    assert isinstance(raised.value.__cause__, StopIteration)


def test_the_call_sees_the_callers_context_variables() -> None:
    """The blob deadline travels this way (storage.deadlines)."""
    lane = BlobLane(1, budget=30.0)

    async def main() -> tuple[str, float | None]:
        MARK.set("from the request")
        return await lane.run(lambda: (MARK.get(), deadlines.deadline()))

    mark, deadline = asyncio.run(main())
    assert mark == "from the request"
    assert deadline is not None and 0 < deadline - time.monotonic() <= 30.0


def test_no_more_calls_run_at_once_than_the_lane_has_threads() -> None:
    lane = ThreadLane(2, "test-lane")
    release = threading.Event()
    running = 0
    most = 0
    guard = threading.Lock()

    def held() -> None:
        nonlocal running, most
        with guard:
            running += 1
            most = max(most, running)
        release.wait(WAIT)
        with guard:
            running -= 1

    async def main() -> dict[str, float]:
        calls = [asyncio.ensure_future(lane.run(held)) for _ in range(5)]
        while lane.statistics()["busy"] < 2:
            await asyncio.sleep(0.01)
        seen = lane.statistics()
        release.set()
        await asyncio.gather(*calls)
        return seen

    seen = asyncio.run(main())
    assert seen == {"threads": 2, "busy": 2, "waiting": 3}
    assert most == 2
    assert lane.statistics() == {"threads": 2, "busy": 0, "waiting": 0}


def test_a_call_goes_to_the_thread_that_went_idle_last() -> None:
    """Calls one after another all run in one thread, not in turn in each."""
    lane = ThreadLane(8, "test-lane")

    async def main() -> set[str]:
        await asyncio.gather(*(lane.run(time.sleep, 0.05) for _ in range(3)))  # 3 started
        return {await lane.run(lambda: threading.current_thread().name) for _ in range(20)}

    assert len(asyncio.run(main())) == 1


def test_a_call_cancelled_while_waiting_never_runs() -> None:
    lane = ThreadLane(1, "test-lane")
    release = threading.Event()
    ran: list[str] = []

    async def main() -> None:
        first = asyncio.ensure_future(lane.run(release.wait, WAIT))
        second = asyncio.ensure_future(lane.run(ran.append, "second"))
        while lane.statistics()["waiting"] < 1:
            await asyncio.sleep(0.01)
        second.cancel()
        with pytest.raises(asyncio.CancelledError):
            await second
        assert lane.statistics()["waiting"] == 0
        release.set()
        await first
        await lane.run(ran.append, "third")  # the thread went on past the dropped call

    asyncio.run(main())
    assert ran == ["third"]


def test_a_caller_cancelled_while_its_call_runs_goes_on_only_once_it_ended() -> None:
    """As with anyio: what the call uses (a file the handler closes once it goes on) is not
    let go under it, even when the cancellation is delivered more than once."""
    lane = ThreadLane(1, "test-lane")
    started = threading.Event()
    release = threading.Event()
    events: list[str] = []

    def call() -> None:
        started.set()
        release.wait(WAIT)
        events.append("call ended")

    async def caller() -> None:
        try:
            await lane.run(call)
        finally:
            events.append("caller went on")

    async def main() -> None:
        task = asyncio.ensure_future(caller())
        while not started.is_set():
            await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.sleep(0.05)
        assert not task.done()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert events == ["call ended", "caller went on"]


def test_a_call_that_ends_after_its_loop_closed_leaves_the_thread_serving() -> None:
    lane = ThreadLane(1, "test-lane")
    release = threading.Event()
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(lambda loop, context: None)  # the task left pending, unlogged

    async def abandon() -> asyncio.Future[bool]:
        call = asyncio.ensure_future(lane.run(release.wait, WAIT))
        while lane.statistics()["busy"] < 1:
            await asyncio.sleep(0.01)
        return call

    pending = loop.run_until_complete(abandon())
    loop.close()  # with the call still running: its answer has no loop to go to
    release.set()
    deadline = time.monotonic() + WAIT
    while lane.statistics()["busy"] and time.monotonic() < deadline:
        time.sleep(0.01)

    async def again() -> int:
        return await lane.run(lambda: 7)

    assert asyncio.run(again()) == 7
    assert not pending.done()


def test_a_thread_idle_for_long_ends_and_a_later_call_starts_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """So that an app made and dropped leaves no thread behind."""
    monkeypatch.setattr(lanes, "IDLE_SECONDS", 0.05)
    lane = ThreadLane(4, "test-idle")

    def threads() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name.startswith("test-idle-")]

    async def main() -> int:
        await asyncio.gather(*(lane.run(time.sleep, 0.05) for _ in range(3)))
        return len(threads())

    assert asyncio.run(main()) == 3
    deadline = time.monotonic() + WAIT
    while threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert threads() == []

    async def again() -> str:
        return await lane.run(lambda: threading.current_thread().name)

    assert asyncio.run(again()) == "test-idle-4"


def test_a_call_for_which_no_thread_can_start_fails_and_leaves_the_lane_usable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lane = ThreadLane(1, "test-start")

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    async def call() -> int:
        return await lane.run(lambda: 7)

    with monkeypatch.context() as patched:
        patched.setattr(threading.Thread, "start", refuse)
        with pytest.raises(RuntimeError, match="can't start new thread"):
            asyncio.run(call())
    assert lane.statistics() == {"threads": 1, "busy": 0, "waiting": 0}
    assert asyncio.run(call()) == 7


def test_a_lane_needs_a_thread() -> None:
    with pytest.raises(ValueError, match="at least one thread"):
        ThreadLane(0, "test-lane")
