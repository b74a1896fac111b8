"""Write positions, what a read replica must have replayed before it answers a scope's reads:
they only ever go up, whichever process records them and in whatever order; while Redis is
unreachable nobody can tell (the primary answers), and what a process recorded then reaches
the others once Redis is back."""

from __future__ import annotations

import time

import pytest

from storage.replica.positions import LocalPositions, RedisPositions
from tests.backends import PrivateRedis


def positions(redis: PrivateRedis) -> RedisPositions:
    opened = RedisPositions(
        f"redis://127.0.0.1:{redis.port}/0?prefix=test:replica:", timeout=0.2, retry_after=0.2
    )
    opened.open()
    return opened


def test_a_position_never_goes_down_whichever_process_records_it(
    private_redis: PrivateRedis,
) -> None:
    one, other = positions(private_redis), positions(private_redis)
    assert one.required("index:default") == 0  # nothing written yet
    one.advance("index:default", 2**60 + 1)  # past what a double holds exactly
    other.advance("index:default", 2**60)  # a writer that read its position earlier
    assert one.required("index:default") == other.required("index:default") == 2**60 + 1
    other.advance("index:default", 2**61)
    assert one.required("index:default") == 2**61
    assert one.required("index:other") == 0  # scopes are apart
    one.close()
    other.close()


def test_while_redis_is_down_nobody_knows_and_what_was_recorded_then_reaches_the_others(
    private_redis: PrivateRedis,
) -> None:
    writer, reader = positions(private_redis), positions(private_redis)
    writer.advance("teaching", 100)
    private_redis.kill()
    writer.advance("teaching", 500)  # kept in the process
    assert writer.required("teaching") is None
    assert reader.required("teaching") is None

    private_redis.start()  # empty: it kept nothing
    time.sleep(0.3)  # past retry_after
    deadline = time.monotonic() + 10
    while writer.required("teaching") is None:  # the writer's next call sends what it kept
        assert time.monotonic() < deadline, "Redis was not used again"
        time.sleep(0.1)
    while reader.required("teaching") != 500:
        assert time.monotonic() < deadline, "the kept position did not reach the reader"
        time.sleep(0.1)
    writer.close()
    reader.close()


@pytest.mark.parametrize("order", [(7, 3), (3, 7)])
def test_a_process_keeps_its_own_highest_position(order: tuple[int, int]) -> None:
    local = LocalPositions()
    for position in order:
        local.advance("index:default", position)
    assert local.required("index:default") == 7
    assert local.required("index:elsewhere") == 0
