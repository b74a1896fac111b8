"""A real server over PostgreSQL, Redis and S3 of this module's own, each frozen in turn
with SIGSTOP (it keeps accepting connections and never answers, as a saturated or cut-off
server does) and thawed with SIGCONT.

What must hold, with small time bounds configured so that the module stays fast:
- S3 frozen: an instance request answers 503 with Retry-After within the S3 budget, and
  once the breaker has opened, at once; meanwhile cached metadata, QIDO-RS, the web app's
  home page and /healthz answer in under a second, even with twice as many instance
  requests in flight as the blob lane has threads; /healthz names the blob store as failing
  and stays 200 (degraded), liveness too. Thawed, instances serve again without a restart.
- Redis frozen: reads go on; /healthz names the cache; thawed, the cache answers again.
- PostgreSQL frozen: a request answers 503 with Retry-After (and CORS headers, for a viewer
  on another origin) within the pool's bound, /healthz is 503 naming the index while
  liveness stays 200; thawed, everything serves again without a restart.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import boto3
import httpx
import pytest
from pydicom.uid import generate_uid

from tests.backends import FreezableRedis, PrivateMoto, PrivatePostgres
from tests.factories import make_instance, multipart_body, to_bytes
from tests.serving import serve

pytestmark = pytest.mark.e2e

S3_CONNECT_TIMEOUT = 0.5
S3_READ_TIMEOUT = 1.5
S3_BUDGET = 3.0
POSTGRES_POOL_TIMEOUT = 1.5
POSTGRES_BOUND = 2 * POSTGRES_POOL_TIMEOUT
"""Waiting for a pooled connection, plus the check of the one it gets (bounded by the pool
timeout too): the most a request waits on a frozen PostgreSQL."""
BREAKER_COOLDOWN = 2.0
BLOB_THREADS = 4
HEALTH_TIMEOUT = 0.3
SLACK = 2.0
"""Added to a bound for a loaded machine: the process, not the backend, is then slow."""
PROMPT = 1.0
"""What a request that needs no frozen backend must answer within."""
ORIGIN = "https://viewer.example.org"
DICOM = {"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'}


@dataclass(frozen=True)
class World:
    base: str
    moto: PrivateMoto
    redis: FreezableRedis
    postgres: PrivatePostgres
    study: str
    series: str
    sop: str
    stored: bytes

    @property
    def instance(self) -> str:
        return (
            f"{self.base}/dicomweb/studies/{self.study}/series/{self.series}/instances/{self.sop}"
        )

    @property
    def metadata(self) -> str:
        return f"{self.base}/dicomweb/studies/{self.study}/series/{self.series}/metadata"

    @property
    def search(self) -> str:
        return f"{self.base}/dicomweb/studies?StudyInstanceUID={self.study}"


@dataclass(frozen=True)
class Answer:
    status: int
    seconds: float
    headers: httpx.Headers
    content: bytes


def timed(url: str, headers: dict[str, str] | None = None) -> Answer:
    started = time.monotonic()
    response = httpx.get(url, headers=headers, timeout=60)
    return Answer(
        response.status_code, time.monotonic() - started, response.headers, response.content
    )


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory,
    private_moto: PrivateMoto,
    freezable_redis: FreezableRedis,
    private_postgres: PrivatePostgres,
) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("faults")
    credentials = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    s3 = boto3.session.Session(region_name="us-east-1", **_keys(credentials))
    s3.client("s3", endpoint_url=private_moto.endpoint).create_bucket(Bucket="faults")
    env = {name: value for name, value in os.environ.items() if not name.startswith("RADCASE_")}
    env.update(credentials)
    env.update(
        {
            "RADCASE_INDEX_URL": private_postgres.url,
            "RADCASE_CACHE_URL": f"redis://127.0.0.1:{freezable_redis.port}/0?prefix=faults:",
            "RADCASE_BLOB_URL": "s3://faults/archive",
            "RADCASE_S3_ENDPOINT_URL": private_moto.endpoint,
            "RADCASE_DATA_DIR": str(folder / "unused"),
            "RADCASE_AUTH": "off",
            "RADCASE_DIMSE_PORT": "0",
            "RADCASE_SWEEP_INTERVAL_SECONDS": "0",
            "RADCASE_CORS_ORIGINS": ORIGIN,
            "RADCASE_S3_CONNECT_TIMEOUT": str(S3_CONNECT_TIMEOUT),
            "RADCASE_S3_READ_TIMEOUT": str(S3_READ_TIMEOUT),
            "RADCASE_S3_BUDGET": str(S3_BUDGET),
            "RADCASE_POSTGRES_CONNECT_TIMEOUT": "2",
            "RADCASE_POSTGRES_POOL_TIMEOUT": str(POSTGRES_POOL_TIMEOUT),
            "RADCASE_POSTGRES_STATEMENT_TIMEOUT": "1.5",
            "RADCASE_REDIS_TIMEOUT": "0.2",
            "RADCASE_REDIS_CONNECT_TIMEOUT": "0.2",
            "RADCASE_BREAKER_THRESHOLD": "2",
            "RADCASE_BREAKER_COOLDOWN": str(BREAKER_COOLDOWN),
            "RADCASE_BLOB_THREADS": str(BLOB_THREADS),
            "RADCASE_HEALTH_TIMEOUT": str(HEALTH_TIMEOUT),
        }
    )
    with serve(env, log=folder / "server.log") as base:
        study, series = generate_uid(), generate_uid()
        datasets = [
            make_instance(study_uid=study, series_uid=series, instance_number=n) for n in (1, 2)
        ]
        body, content_type = multipart_body([to_bytes(ds) for ds in datasets])
        stored = httpx.post(
            f"{base}/dicomweb/studies", content=body, headers={"Content-Type": content_type}
        )
        assert stored.status_code == 200, stored.text
        found = World(
            base,
            private_moto,
            freezable_redis,
            private_postgres,
            study,
            series,
            datasets[0].SOPInstanceUID,
            to_bytes(datasets[0]),
        )
        assert timed(found.instance, DICOM).status == 200
        assert timed(found.metadata).status == 200  # now cached in Redis
        yield found


def _keys(credentials: dict[str, str]) -> dict[str, str]:
    return {
        "aws_access_key_id": credentials["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": credentials["AWS_SECRET_ACCESS_KEY"],
    }


def prompt_requests(world: World) -> dict[str, Callable[[], Answer]]:
    """Requests that need neither S3 nor a frozen cache: each must stay prompt."""
    return {
        "cached metadata": lambda: timed(world.metadata),
        "QIDO-RS": lambda: timed(world.search),
        "the web app's home page": lambda: timed(f"{world.base}/"),
        "/healthz": lambda: timed(f"{world.base}/healthz"),
        "liveness": lambda: timed(f"{world.base}/healthz?probe=live"),
    }


def healthy(world: World) -> Callable[[], bool]:
    def every_backend_answers() -> bool:
        report = httpx.get(f"{world.base}/healthz", timeout=5).json()
        return bool(report["status"] == "ok")

    return every_backend_answers


def until_served(check: Callable[[], bool], within: float) -> float:
    """Seconds until ``check()`` holds (polled), failing after ``within``."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < within, "did not serve again in time"
        time.sleep(0.2)
    return time.monotonic() - started


def test_a_frozen_s3_fails_instance_requests_in_bounds_and_starves_nothing(world: World) -> None:
    world.moto.freeze()
    try:
        prompt: dict[str, list[float]] = {name: [] for name in prompt_requests(world)}
        with ThreadPoolExecutor(max_workers=2 * BLOB_THREADS) as pool:
            retrievals = [
                pool.submit(timed, world.instance, DICOM) for _ in range(2 * BLOB_THREADS)
            ]
            started = time.monotonic()
            while not all(r.done() for r in retrievals) or time.monotonic() - started < S3_BUDGET:
                for name, request in prompt_requests(world).items():
                    answer = request()
                    assert answer.status == 200, (name, answer.status, answer.content[:300])
                    prompt[name].append(answer.seconds)
        for name, seconds in prompt.items():
            assert max(seconds) < PROMPT, f"{name} took {max(seconds):.2f} s with S3 frozen"
        for retrieval in retrievals:
            answer = retrieval.result()
            assert answer.status == 503, answer.content[:300]
            assert answer.seconds < S3_BUDGET + SLACK
            assert int(answer.headers["Retry-After"]) >= 1
        failing_fast = timed(world.instance, DICOM)  # the breaker is open by now
        assert failing_fast.status == 503 and failing_fast.seconds < PROMPT
        health = timed(f"{world.base}/healthz")
        report = httpx.get(f"{world.base}/healthz", timeout=5).json()
        assert health.status == 200 and report["status"] == "degraded"
        assert report["backends"]["blobs"]["status"] == "failing"
        assert report["backends"]["index"]["status"] == "ok"
        print(
            "S3 frozen, medians (s): "
            + ", ".join(f"{n} {statistics.median(s):.3f}" for n, s in prompt.items())
            + f"; instance 503s {sorted(round(r.result().seconds, 2) for r in retrievals)}"
        )
    finally:
        world.moto.thaw()

    def instance_served() -> bool:
        answer = timed(world.instance, DICOM)
        return answer.status == 200 and world.stored in answer.content

    until_served(instance_served, BREAKER_COOLDOWN + S3_BUDGET + 10)
    # Each store's breaker lets its next call probe once its cooldown is over: the teaching
    # collection's (asked by /healthz alone here) comes back within a cooldown too.
    until_served(healthy(world), BREAKER_COOLDOWN + S3_BUDGET + 10)


def test_a_frozen_redis_leaves_reads_going_and_is_named_by_healthz(world: World) -> None:
    world.redis.freeze()
    try:
        for _ in range(5):
            for name, request in prompt_requests(world).items():
                answer = request()
                assert answer.status == 200, (name, answer.status)
                assert answer.seconds < PROMPT, f"{name} took {answer.seconds:.2f} s"
        report = httpx.get(f"{world.base}/healthz", timeout=5).json()
        assert report["status"] == "degraded"
        assert report["backends"]["cache"]["status"] == "failing"
        assert timed(world.instance, DICOM).status == 200
    finally:
        world.redis.thaw()

    until_served(healthy(world), 10)


def test_a_frozen_postgres_is_503_in_bounds_and_unready_but_alive(world: World) -> None:
    world.postgres.freeze()
    try:
        for url in (world.metadata, world.search):
            answer = timed(url, {"Origin": ORIGIN})
            assert answer.status == 503, answer.content[:300]
            assert answer.seconds < POSTGRES_BOUND + SLACK
            assert int(answer.headers["Retry-After"]) >= 1
            assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
            assert "Retry-After" in answer.headers["Access-Control-Expose-Headers"]
        failing_fast = timed(world.search)  # the breaker is open by now
        assert failing_fast.status == 503 and failing_fast.seconds < PROMPT
        readiness = timed(f"{world.base}/healthz")
        assert readiness.status == 503 and readiness.seconds < PROMPT
        report = httpx.get(f"{world.base}/healthz", timeout=5).json()
        assert report["status"] == "unavailable"
        assert report["backends"]["index"]["status"] == "failing"
        assert report["backends"]["blobs"]["status"] == "ok"
        liveness = timed(f"{world.base}/healthz?probe=live")
        assert liveness.status == 200 and liveness.seconds < PROMPT
    finally:
        world.postgres.thaw()

    def everything_served() -> bool:
        return all(
            timed(url, headers).status == 200
            for url, headers in (
                (world.metadata, None),
                (world.search, None),
                (world.instance, DICOM),
                (f"{world.base}/healthz", None),
            )
        )

    until_served(everything_served, BREAKER_COOLDOWN + POSTGRES_BOUND + 15)
