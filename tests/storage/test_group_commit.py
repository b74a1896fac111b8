"""Group commit: every item written exactly once, callers batched while a write is under way,
one write at a time, and a failed batch failing exactly its own callers."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from storage.database.group_commit import GroupCommit


class Recorder:
    """A write that takes a while, remembering its batches and how many ran at once."""

    def __init__(self, seconds: float = 0.005, fail_batch: int | None = None) -> None:
        self.seconds = seconds
        self.fail_batch = fail_batch
        self.batches: list[list[int]] = []
        self.running = 0
        self.most_at_once = 0
        self.lock = threading.Lock()

    def __call__(self, items: Sequence[int]) -> None:
        with self.lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            number = len(self.batches)
            self.batches.append(list(items))
        time.sleep(self.seconds)
        with self.lock:
            self.running -= 1
        if number == self.fail_batch:
            raise OSError(f"batch {number} failed")


def submit_all(group: GroupCommit[int], count: int) -> dict[int, BaseException | None]:
    """``count`` threads submit one item each, released together; each item's outcome."""
    outcomes: dict[int, BaseException | None] = {}
    start = threading.Barrier(count)

    def one(item: int) -> None:
        start.wait()
        try:
            group.submit(item)
            outcomes[item] = None
        except OSError as exc:
            outcomes[item] = exc

    threads = [threading.Thread(target=one, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not any(thread.is_alive() for thread in threads), "a caller never returned"
    return outcomes


def test_every_item_is_written_once_in_fewer_batches_one_at_a_time() -> None:
    write = Recorder()
    outcomes = submit_all(GroupCommit(write), 64)
    written = [item for batch in write.batches for item in batch]
    assert sorted(written) == list(range(64))
    assert all(outcome is None for outcome in outcomes.values())
    assert len(write.batches) < 64 / 4, write.batches
    assert write.most_at_once == 1


def test_a_batch_is_never_larger_than_the_limit() -> None:
    write = Recorder()
    submit_all(GroupCommit(write, limit=5), 40)
    assert max(len(batch) for batch in write.batches) <= 5
    assert sorted(item for batch in write.batches for item in batch) == list(range(40))


def test_a_failed_batch_fails_its_own_callers_and_no_others() -> None:
    write = Recorder(fail_batch=1)
    outcomes = submit_all(GroupCommit(write, limit=10), 48)
    assert len(write.batches) >= 3
    failed = set(write.batches[1])
    assert {item for item, outcome in outcomes.items() if outcome is not None} == failed
    assert all(str(outcomes[item]) == "batch 1 failed" for item in failed)


def test_a_lone_caller_writes_its_own_item_at_once() -> None:
    write = Recorder(seconds=0)
    group = GroupCommit(write)
    group.submit(7)
    group.submit(8)
    assert write.batches == [[7], [8]]


def test_the_error_reaches_a_lone_caller() -> None:
    group = GroupCommit(Recorder(seconds=0, fail_batch=0))
    with pytest.raises(OSError, match="batch 0 failed"):
        group.submit(1)
    group.submit(2)  # the next batch is written as usual
