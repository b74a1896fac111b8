"""Every call to a backend is bounded: the circuit breaker, the S3 store's budget against an
endpoint that accepts connections and never answers, the database watchdog, and the bounds
as URL parameters."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from storage import deadlines
from storage.blobs.s3 import S3BlobStore
from storage.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from storage.cache.redis import RedisCache
from storage.database.postgres import PostgresDatabase
from storage.database.watchdog import Watchdog
from storage.errors import BackendUnavailable
from storage.urls import UnsupportedUrl, open_blobs, open_cache, open_database, with_defaults


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_breaker_opens_after_outages_in_a_row_and_fails_at_once() -> None:
    clock = Clock()
    breaker = CircuitBreaker("S3", threshold=3, cooldown=5.0, clock=clock)
    for _ in range(2):
        assert breaker.before() is False
        breaker.failed("timeout")
    breaker.before()
    breaker.succeeded()  # an answer in between: the count starts again
    for _ in range(3):
        breaker.before()
        breaker.failed("timeout")
    assert breaker.state == OPEN
    clock.now += 1.2
    with pytest.raises(BackendUnavailable) as refused:
        breaker.before()
    assert refused.value.retry_after == 4  # 3.8 s left, rounded up
    assert "timeout" in str(refused.value)


def test_after_its_cooldown_the_breaker_lets_one_probe_through() -> None:
    clock = Clock()
    breaker = CircuitBreaker("PostgreSQL", threshold=1, cooldown=5.0, clock=clock)
    breaker.before()
    breaker.failed("no answer")
    clock.now += 5.0
    assert breaker.state == HALF_OPEN
    assert breaker.before() is True  # the probe
    with pytest.raises(BackendUnavailable):
        breaker.before()  # everyone else, while it probes
    breaker.failed("still no answer")
    assert breaker.state == OPEN  # a failed probe opens it for another cooldown
    clock.now += 5.0
    assert breaker.before() is True
    breaker.released(probe=True)  # a probe that proved nothing lets the next call probe
    assert breaker.before() is True
    breaker.succeeded()
    assert breaker.state == CLOSED
    assert breaker.before() is False


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A listening socket that never accepts: the kernel completes connections and takes
    requests into its buffers, and nothing ever answers (a frozen server, to its clients)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def silent_store(endpoint: str, **bounds: Any) -> S3BlobStore:
    """A store on the silent endpoint whose session has already loaded botocore's S3 model,
    as a running server's has: building the client in ``open()`` then takes milliseconds, so
    what a test times is the requests the budget bounds, not a cold model load (a few tenths
    of a second on a busy machine, and outside any budget)."""
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    session.client("s3", endpoint_url=endpoint).close()
    return S3BlobStore("bucket", "prefix", endpoint_url=endpoint, session=session, **bounds)


def test_a_silent_s3_fails_within_its_budget_then_at_once(silent_endpoint: str) -> None:
    store = silent_store(
        silent_endpoint,
        connect_timeout=0.2,
        read_timeout=0.4,
        budget=1.5,
        max_attempts=5,
        breaker_threshold=2,
        breaker_cooldown=30,
    )
    started = time.monotonic()
    with pytest.raises(BackendUnavailable) as first:
        store.open()  # checks the bucket
    took = time.monotonic() - started
    # Retried while a whole attempt (0.6 s) fitted in the budget: two or three attempts.
    assert 0.8 <= took <= 1.5 + 0.5, took
    assert "within 1.5 s" in str(first.value)
    with pytest.raises(BackendUnavailable):
        store.get("default/a/b/c")
    started = time.monotonic()
    with pytest.raises(BackendUnavailable) as refused:
        store.read_range("default/a/b/c", 0, 10)
    assert time.monotonic() - started < 0.1  # the breaker is open: S3 is not asked
    assert 1 <= refused.value.retry_after <= 30
    store.close()


def test_a_budget_shorter_than_one_attempt_is_refused() -> None:
    with pytest.raises(ValueError, match="budget"):
        S3BlobStore("bucket", connect_timeout=2, read_timeout=5, budget=6)
    with pytest.raises(UnsupportedUrl, match="budget"):
        open_blobs("s3://bucket/p?connect_timeout=2&read_timeout=5&budget=6")


def test_the_watchdog_cuts_a_connection_waiting_past_its_deadline() -> None:
    """A thread blocked reading from a peer that never writes is woken by the cut: what the
    watchdog does to a connection whose PostgreSQL server is frozen."""
    ours, peer = socket.socketpair()
    watchdog = Watchdog("test database")
    watchdog.start()
    got: list[bytes] = []
    try:
        with watchdog.watching(ours, 0.3) as watch:
            started = time.monotonic()
            reader = threading.Thread(target=lambda: got.append(ours.recv(10)))
            reader.start()
            reader.join(5)
            took = time.monotonic() - started
        assert not reader.is_alive() and got == [b""] and watch.expired
        assert 0.25 <= took < 2.0, took
        other, other_peer = socket.socketpair()
        with other, other_peer:
            with watchdog.watching(other, 0.05) as answered:
                pass  # disarmed before its deadline: nothing happens to it
            time.sleep(0.2)
            assert not answered.expired
            other_peer.send(b"x")
            assert other.recv(1) == b"x"  # still open both ways
    finally:
        watchdog.stop()
        ours.close()
        peer.close()


def test_the_bounds_travel_in_the_urls_and_the_url_wins() -> None:
    bounds = {"connect_timeout": 3, "pool_timeout": 4, "statement_timeout": 7.5, "budget": 9}
    url = with_defaults("postgresql://u@h/db?schema=s&statement_timeout=20", bounds)
    assert url == (
        "postgresql://u@h/db?schema=s&statement_timeout=20&connect_timeout=3&pool_timeout=4"
    )
    database = open_database(url)
    assert isinstance(database, PostgresDatabase)
    assert (database.connect_timeout, database.pool_timeout, database.statement_timeout) == (
        3,
        4,
        20,
    )
    assert database.url == "postgresql://u@h/db"  # none of them reaches libpq as given
    assert with_defaults("sqlite:///x.sqlite3", bounds) == "sqlite:///x.sqlite3"
    store = open_blobs(with_defaults("s3://bucket/p", {"budget": 12, "read_timeout": 3}))
    assert isinstance(store, S3BlobStore) and store.budget == 12
    cache = open_cache("redis://127.0.0.1:6379/0?socket_timeout=0.25&socket_connect_timeout=1")
    assert isinstance(cache, RedisCache)
    assert (cache.timeout, cache.connect_timeout, cache.url) == (
        0.25,
        1.0,
        "redis://127.0.0.1:6379/0",
    )
    with pytest.raises(UnsupportedUrl, match="positive"):
        open_database("postgresql://u@h/db?pool_timeout=0")


def test_once_s3_failed_a_call_that_cannot_end_by_its_deadline_is_not_started(
    silent_endpoint: str,
) -> None:
    """A request that spent its budget waiting for a blob thread behind others stuck on a
    frozen S3 fails at once instead of waiting a whole budget of its own."""
    store = silent_store(
        silent_endpoint, connect_timeout=0.2, read_timeout=0.3, budget=0.5, max_attempts=1
    )
    store._client = store._session.client(  # type: ignore[union-attr]
        "s3", endpoint_url=silent_endpoint, config=store._config
    )
    with deadlines.within(5.0), pytest.raises(BackendUnavailable):
        store.exists("default/a")  # S3 is not known to fail yet: the attempt is made
    started = time.monotonic()
    with deadlines.within(0.2), pytest.raises(BackendUnavailable, match="waiting"):
        store.exists("default/a")
    assert time.monotonic() - started < 0.1
    with pytest.raises(BackendUnavailable, match=r"within 0\.5 s"):
        store.exists("default/a")  # no deadline of the caller's: its own budget
    store.close()


def test_a_session_lock_is_held_as_long_as_its_block_runs(postgres_url: str) -> None:
    """A sweep or a migration holds its lock's connection for as long as it works: that is
    not a wait on the server, and the watchdog must not cut it at the statement bound."""
    from storage.database.locks import exclusive

    url = with_defaults(postgres_url, {"statement_timeout": 0.2})
    database = open_database(url)
    assert isinstance(database, PostgresDatabase)
    database.open()
    try:
        with exclusive(database, "long-work") as held:
            assert held
            time.sleep(0.2 + 1.0 + 0.5)  # past the statement bound and the watchdog's grace
        with exclusive(database, "long-work") as again:
            assert again  # released: the unlock reached the server
    finally:
        database.close()
