"""What a server with the shipped time bounds does while S3, then PostgreSQL, is frozen.

    python -m tests.benchmarks.frozen_backends [--concurrency 32] [--rounds 20]

Starts ``radcase-pacs serve`` (one HTTP process, the shipped default bounds) over a moto S3
server, a PostgreSQL cluster and a redis-server of its own on loopback, stores a two-instance
series, caches its metadata, and prints:

1. medians of cached metadata, QIDO-RS, ``/healthz`` and one instance, all backends healthy;
2. S3 frozen (SIGSTOP): ``--concurrency`` instance requests at once (twice the blob threads
   by default), their statuses and times, and meanwhile the statuses, medians and maxima of
   cached metadata, QIDO-RS, ``/healthz`` and liveness; then one more instance request
   (the breaker's fail-fast, or its probe once a cooldown has passed); then, thawed, how
   long until an instance is served again;
3. the same with PostgreSQL frozen, QIDO-RS as the request that needs it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import httpx
from pydicom.uid import generate_uid

from tests.backends import FreezableRedis, PrivateMoto, PrivatePostgres
from tests.factories import free_port, make_instance, multipart_body, to_bytes
from tests.serving import serve

DICOM = {"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'}
Timed = tuple[int, float]


def timed(url: str, headers: dict[str, str] | None = None) -> Timed:
    started = time.monotonic()
    status = httpx.get(url, headers=headers, timeout=120).status_code
    return status, time.monotonic() - started


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def frozen(
    label: str,
    freeze: Callable[[], None],
    thaw: Callable[[], None],
    target: tuple[str, dict[str, str] | None],
    meanwhile: dict[str, str],
    concurrency: int,
) -> None:
    url, headers = target
    freeze()
    try:
        seen: dict[str, list[Timed]] = {name: [] for name in meanwhile}
        with ThreadPoolExecutor(concurrency) as pool:
            requests = [pool.submit(timed, url, headers) for _ in range(concurrency)]
            while not all(r.done() for r in requests):
                for name, other in meanwhile.items():
                    seen[name].append(timed(other))
        answers = [r.result() for r in requests]
        times = [t for _, t in answers]
        print(
            f"{label} frozen: {concurrency} requests at once answered "
            f"{sorted({s for s, _ in answers})} in {statistics.median(times):.2f} s "
            f"(median), {max(times):.2f} s at most"
        )
        for name, found in seen.items():
            times = [t for _, t in found]
            print(
                f"  meanwhile {name}: {sorted({s for s, _ in found})}, median "
                f"{ms(statistics.median(times))}, at most {ms(max(times))} ({len(times)} requests)"
            )
        status, seconds = timed(url, headers)
        print(f"  one more: {status} in {ms(seconds)}")
    finally:
        thaw()
    started = time.monotonic()
    while timed(url, headers)[0] != 200:
        time.sleep(0.2)
    print(f"  thawed: served again {time.monotonic() - started:.1f} s later, no restart")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    moto, postgres, redis = PrivateMoto(free_port()), PrivatePostgres(free_port()), None
    folder = Path(tempfile.mkdtemp(prefix="radcase-frozen-"))
    try:
        moto.start()
        postgres.start()
        redis = FreezableRedis(free_port())
        redis.start()
        keys = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        s3 = boto3.session.Session(region_name="us-east-1", **keys)
        s3.client("s3", endpoint_url=moto.endpoint).create_bucket(Bucket="frozen")
        env = {name: v for name, v in os.environ.items() if not name.startswith("RADCASE_")}
        env |= {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "RADCASE_INDEX_URL": postgres.url,
            "RADCASE_CACHE_URL": f"redis://127.0.0.1:{redis.port}/0",
            "RADCASE_BLOB_URL": "s3://frozen/archive",
            "RADCASE_S3_ENDPOINT_URL": moto.endpoint,
            "RADCASE_DATA_DIR": str(folder),
            "RADCASE_AUTH": "off",
            "RADCASE_DIMSE_PORT": "0",
            "RADCASE_SWEEP_INTERVAL_SECONDS": "0",
        }
        with serve(env, log=folder / "server.log") as base:
            study, series = generate_uid(), generate_uid()
            datasets = [
                make_instance(study_uid=study, series_uid=series, instance_number=n) for n in (1, 2)
            ]
            body, content_type = multipart_body([to_bytes(ds) for ds in datasets])
            stored = httpx.post(
                f"{base}/dicomweb/studies", content=body, headers={"Content-Type": content_type}
            )
            stored.raise_for_status()
            series_url = f"{base}/dicomweb/studies/{study}/series/{series}"
            instance = f"{series_url}/instances/{datasets[0].SOPInstanceUID}"
            meanwhile = {
                "cached metadata": f"{series_url}/metadata",
                "QIDO-RS": f"{base}/dicomweb/studies?StudyInstanceUID={study}",
                "/healthz": f"{base}/healthz",
                "liveness": f"{base}/healthz?probe=live",
            }
            healthy = {
                name: statistics.median(timed(url)[1] for _ in range(args.rounds))
                for name, url in meanwhile.items()
            }
            healthy["instance"] = statistics.median(
                timed(instance, DICOM)[1] for _ in range(args.rounds)
            )
            print("healthy, medians: " + ", ".join(f"{n} {ms(t)}" for n, t in healthy.items()))
            frozen("S3", moto.freeze, moto.thaw, (instance, DICOM), meanwhile, args.concurrency)
            frozen(
                "PostgreSQL",
                postgres.freeze,
                postgres.thaw,
                (meanwhile["QIDO-RS"], None),
                meanwhile,
                max(1, args.concurrency // 4),
            )
    finally:
        moto.stop()
        postgres.stop()
        if redis is not None:
            redis.kill()


if __name__ == "__main__":
    main()
