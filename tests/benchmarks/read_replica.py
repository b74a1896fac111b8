"""What routing searches to a read replica costs and where the reads go.

    python -m tests.benchmarks.read_replica [--rounds 200]

Starts a private PostgreSQL primary and streaming replica on loopback
(tests/streaming_replica.py) and, in this process, the server over PostgreSQL (a schema of its
own), a Redis prefix of its own and a folder, twice: without ``index_read_url`` and with it.
Each does ``--rounds`` times: store one instance (STOW-RS), search for it at once (QIDO-RS,
the read-your-writes path), and, once all are stored and the replica has caught up, search
for each again by a query never asked before (a cache miss: the search runs on the index).
Prints the medians (ms, on loopback, seen by the client) and where the routed reads went.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from pydicom.dataset import Dataset
from starlette.testclient import TestClient

from radcase_pacs.settings import Settings
from tests.apps import served
from tests.backends import REDIS_URL, redis_prefix
from tests.factories import make_instance, multipart_body, to_bytes
from tests.streaming_replica import StreamingPair, streaming_pair


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 2)


def timed(call: Callable[[], None]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def routed(client: TestClient) -> dict[str, float]:
    counts = {"replica": 0.0, "primary": 0.0}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "radcase_index_reads_total":
                counts[sample.labels["target"]] += sample.value
    return counts


@contextmanager
def schema(pair: StreamingPair) -> Iterator[str]:
    name = f"radcase_bench_{secrets.token_hex(4)}"
    try:
        yield pair.url(pair.primary_port, schema=name)
    finally:
        for dropped in (name, f"{name}_teaching"):
            pair.primary_sql(f'DROP SCHEMA IF EXISTS "{dropped}" CASCADE')


@contextmanager
def server(pair: StreamingPair, folder: Path, read_url: str | None) -> Iterator[TestClient]:
    with schema(pair) as index_url, redis_prefix() as prefix:
        settings = Settings(
            data_dir=folder,
            index_url=index_url,
            index_read_url=read_url,
            cache_url=f"{REDIS_URL}?prefix={prefix}",
            auth="off",
        )
        with served(settings) as client:
            yield client


def stow(client: TestClient, ds: Dataset) -> None:
    body, content_type = multipart_body([to_bytes(ds)])
    answer = client.post("/dicomweb/studies", content=body, headers={"Content-Type": content_type})
    assert answer.status_code == 200, answer.text


def search(client: TestClient, uid: str, **more: str) -> None:
    answer = client.get("/dicomweb/studies", params={"StudyInstanceUID": uid, **more})
    assert answer.status_code == 200 and len(answer.json()) == 1, answer.text


def compare(clients: dict[str, TestClient], pair: StreamingPair, rounds: int) -> None:
    """The same work on each server, round by round, so that load from elsewhere on the
    machine falls on both alike."""
    samples: dict[str, dict[str, list[float]]] = {
        label: {"store": [], "fresh": [], "again": []} for label in clients
    }
    uids: dict[str, list[str]] = {label: [] for label in clients}
    for _ in range(rounds):
        for label, client in clients.items():
            ds = make_instance()
            samples[label]["store"].append(timed(lambda c=client, d=ds: stow(c, d)))
            uid = ds.StudyInstanceUID
            samples[label]["fresh"].append(timed(lambda c=client, u=uid: search(c, u)))
            uids[label].append(uid)
    pair.wait_caught_up()
    before = {label: routed(client) for label, client in clients.items()}
    for n in range(rounds):
        for label, client in clients.items():
            uid = uids[label][n]
            again = timed(lambda c=client, u=uid: search(c, u, includefield="00081030"))
            samples[label]["again"].append(again)
    after = {label: routed(client) for label, client in clients.items()}
    rows = {
        "store (STOW-RS, one instance)": "store",
        "search right after the store": "fresh",
        "search, caught up, not cached": "again",
    }
    print(f"{'median ms, ' + str(rounds) + ' rounds':40}" + "".join(f"{k:>20}" for k in clients))
    for name, key in rows.items():
        values = "".join(f"{median_ms(samples[label][key]):>20}" for label in clients)
        print(f"{name:40}{values}")
    went = "".join(
        f"{after[k]['replica'] - before[k]['replica']:>12.0f} / "
        f"{after[k]['primary'] - before[k]['primary']:<4.0f}"
        for k in clients
    )
    print(f"{'caught-up reads: replica / primary':40}{went}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    with (
        streaming_pair() as pair,
        tempfile.TemporaryDirectory() as folder,
        server(pair, Path(folder) / "a", None) as alone,
        server(pair, Path(folder) / "b", pair.url(pair.replica_port)) as replicated,
    ):
        compare({"primary only": alone, "with the replica": replicated}, pair, args.rounds)


if __name__ == "__main__":
    main()
