"""Database pool saturation in /metrics, on real PostgreSQL: connections in use against the
pool's maximum, requests waiting for one, and requests that got none."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from radcase_pacs.pool_metrics import PoolMetrics, PoolSampler
from radcase_pacs.settings import Settings
from storage.database.postgres import PostgresDatabase
from storage.errors import BackendFailure
from storage.urls import open_database
from tests.apps import served
from tests.radcase_pacs.test_metrics import samples, value

DEPLOYMENT_POOLS = ("index", "teaching-index", "audit", "users", "cases", "learning")


@pytest.fixture
def small_pool(postgres_url: str) -> Iterator[PostgresDatabase]:
    """Two connections at most; a request waits one second for one, then fails."""
    database = open_database(postgres_url)
    assert isinstance(database, PostgresDatabase)
    small = PostgresDatabase(
        database.url, schema=database.schema, pool_max=2, connect_timeout=1.0, name="small"
    )
    small.open()
    yield small
    small.close()


def hold_connection(database: PostgresDatabase, release: threading.Event) -> threading.Thread:
    def hold() -> None:
        with database.read() as cur:
            cur.execute("SELECT 1").fetchone()
            release.wait(30)

    thread = threading.Thread(target=hold)
    thread.start()
    return thread


def wait_until(condition: object, what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.005)


def test_a_saturated_pool_shows_in_use_waiting_and_failed_requests(
    small_pool: PostgresDatabase,
) -> None:
    registry = CollectorRegistry()
    sampler = PoolSampler(PoolMetrics.create(registry), {"small": small_pool})

    def metric(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, {"pool": "small", **labels}) or 0.0

    release = threading.Event()
    holders = [hold_connection(small_pool, release) for _ in range(2)]
    outcome: list[str] = []

    def ask() -> None:
        try:
            with small_pool.read():
                outcome.append("served")
        except BackendFailure:
            outcome.append("failed")

    try:
        wait_until(lambda: small_pool.pool_stats().in_use == 2, "both connections are lent")
        waiter = threading.Thread(target=ask)
        waiter.start()
        wait_until(lambda: small_pool.pool_stats().waiting == 1, "a request waits")
        sampler.sample()
        assert metric("radcase_db_pool_connections", state="in_use") == 2
        assert metric("radcase_db_pool_connections", state="idle") == 0
        assert metric("radcase_db_pool_max_connections") == 2
        assert metric("radcase_db_pool_waiting_requests") == 1
        assert metric("radcase_db_pool_failed_requests_total") == 0

        waiter.join(10)
        assert outcome == ["failed"]  # no connection within the pool's timeout
        sampler.sample()
        assert metric("radcase_db_pool_failed_requests_total") == 1
        assert metric("radcase_db_pool_queued_requests_total") >= 1
        assert metric("radcase_db_pool_wait_seconds_total") >= 0.9
    finally:
        release.set()
        for holder in holders:
            holder.join(10)

    sampler.sample()
    # psycopg_pool drops a request that gave up from its queue when a connection comes back.
    assert metric("radcase_db_pool_waiting_requests") == 0
    assert metric("radcase_db_pool_connections", state="in_use") == 0
    assert metric("radcase_db_pool_connections", state="idle") == 2
    assert metric("radcase_db_pool_requests_total") == 3
    assert metric("radcase_db_pool_failed_requests_total") == 1  # counted once, not again


def test_a_pool_opened_again_keeps_its_counters_rising(small_pool: PostgresDatabase) -> None:
    registry = CollectorRegistry()
    sampler = PoolSampler(PoolMetrics.create(registry), {"small": small_pool})
    for _ in range(3):
        small_pool.ping()
    sampler.sample()
    small_pool.close()
    small_pool.open()
    small_pool.ping()
    sampler.sample()
    assert registry.get_sample_value("radcase_db_pool_requests_total", {"pool": "small"}) == 4


def test_every_pool_of_a_postgres_deployment_is_in_metrics(
    tmp_path: Path, postgres_url: str
) -> None:
    settings = Settings(data_dir=tmp_path / "data", index_url=postgres_url)
    with served(settings) as client:
        client.get("/dicomweb/studies")
        found = samples(client)
        for pool in DEPLOYMENT_POOLS:
            assert value(found, "radcase_db_pool_max_connections", pool=pool) >= 1, pool
            assert value(found, "radcase_db_pool_requests_total", pool=pool) >= 1, pool
        # Sampled as the exposition was made, between requests: nothing is lent.
        assert value(found, "radcase_db_pool_connections", state="in_use") == 0
        assert value(found, "radcase_db_pool_connections", pool="index", state="idle") >= 1
        assert any(t.name == "pool-sampler" for t in threading.enumerate())
    assert not any(t.name == "pool-sampler" for t in threading.enumerate())


def test_an_embedded_deployment_has_no_pool_and_no_sampler(tmp_path: Path) -> None:
    with served(Settings(data_dir=tmp_path / "data")) as client:
        found = samples(client)
        assert not any(name.startswith("radcase_db_pool_") for name, _ in found)
        assert not any(t.name == "pool-sampler" for t in threading.enumerate())
