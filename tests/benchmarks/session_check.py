"""What checking a session costs per request: the registry row on PostgreSQL, beside the Redis
GET the session check made when sessions were kept in the cache.

    python -m tests.benchmarks.session_check [--rounds 2000]

Uses the test PostgreSQL (a fresh schema, dropped at the end) and the test Redis (a prefix of
its own, deleted at the end); prints the median of each, in microseconds.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from radcase_pacs.auth.principal import Role
from radcase_pacs.auth.users import UserStore
from storage.cache.redis import RedisCache
from storage.urls import open_database
from tests.backends import REDIS_URL, postgres_schema, redis_prefix


def median_microseconds(call: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    rounds = parser.parse_args().rounds
    with postgres_schema() as url, redis_prefix() as prefix:
        users = UserStore(open_database(url), rounds=4)
        users.open()
        cache = RedisCache(f"{REDIS_URL}", prefix=prefix)
        cache.open()
        try:
            users.add_user("reader", "default", Role.LEARNER, "a long password")
            ends = datetime.now(UTC) + timedelta(hours=1)
            users.register_session("sid", "reader", ends, refresh_digest="0" * 64)
            cache.set("session/sid", b'{"user": "reader", "refresh": "' + b"0" * 64 + b'"}')
            for _ in range(2):  # the first pass warms connections and caches up
                registry = median_microseconds(lambda: users.live_session("sid"), rounds)
                redis_get = median_microseconds(lambda: cache.get("session/sid"), rounds)
            print(f"registry row (PostgreSQL): {registry:.0f} us")
            print(f"Redis GET:                 {redis_get:.0f} us")
        finally:
            cache.close()
            users.close()


if __name__ == "__main__":
    main()
