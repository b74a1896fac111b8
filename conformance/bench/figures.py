"""What is measured, and how: each function times one figure on one server in one round.

The figures are the ones a department feels. Ingest is what a modality or a migration waits
for; QIDO is the study list; series metadata, the first frame and frames/s are what a viewer
(OHIF, Cornerstone) does when a study is opened and scrolled; study retrieval is a prefetch
or a C-MOVE replacement. Requests are the ones OHIF sends (PS3.18 §10.4 WADO-RS, §10.6
QIDO-RS, §10.5 STOW-RS), with the Accept values OHIF uses.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from conformance.bench.client import Response, Server, concurrently
from conformance.bench.data import Series
from conformance.context import DimseTarget, multipart

DICOM_JSON = "application/dicom+json"
FRAME = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
INSTANCES = 'multipart/related; type="application/dicom"; transfer-syntax=*'
STOW_BATCH = 10
STOW_CONCURRENCY = 4
INSTANCE_NUMBER = "00200013"


@dataclass(frozen=True)
class Figure:
    """A named figure: its unit, and whether more is better (ingest) or less (latency)."""

    name: str
    unit: str
    higher_is_better: bool


STOW = Figure("STOW-RS ingest, 4 concurrent requests", "instances/s", True)
CSTORE = Figure("C-STORE ingest, one association", "instances/s", True)
CSTORE_4 = Figure("C-STORE ingest, 4 associations at once", "instances/s", True)
QIDO_P50_1 = Figure("QIDO-RS study search p50, concurrency 1", "ms", False)
QIDO_P95_1 = Figure("QIDO-RS study search p95, concurrency 1", "ms", False)
QIDO_P50_32 = Figure("QIDO-RS study search p50, concurrency 32", "ms", False)
QIDO_P95_32 = Figure("QIDO-RS study search p95, concurrency 32", "ms", False)
METADATA_COLD = Figure("series metadata, cold", "ms", False)
METADATA_WARM = Figure("series metadata, warm", "ms", False)
FRAME_LATENCY = Figure("single frame, concurrency 1", "ms", False)
FRAMES_PER_SECOND = Figure("frames/s, concurrency 16", "frames/s", True)
FIRST_IMAGE = Figure("time to first image (series search + metadata + frame), cold", "ms", False)
RETRIEVAL = Figure("whole-study retrieval", "MB/s", True)
MEMORY = Figure("server peak resident memory", "MB", False)
ERRORS = Figure("errors", "count", False)

ALL = (
    STOW,
    CSTORE,
    CSTORE_4,
    QIDO_P50_1,
    QIDO_P95_1,
    QIDO_P50_32,
    QIDO_P95_32,
    METADATA_COLD,
    METADATA_WARM,
    FRAME_LATENCY,
    FRAMES_PER_SECOND,
    FIRST_IMAGE,
    RETRIEVAL,
    MEMORY,
    ERRORS,
)


class BenchError(Exception):
    """A server answered a measured request wrongly: the figure would be meaningless."""


def stow(server: Server, series: list[Series]) -> float:
    """Instances/s storing ``series`` in STOW-RS requests of 10 instances, 4 at a time."""
    parts = [part for s in series for part in s.parts]
    bodies = [multipart(parts[i : i + STOW_BATCH]) for i in range(0, len(parts), STOW_BATCH)]
    study_path = "/studies"

    def post(body: bytes, content_type: str) -> Callable[[], Response]:
        return lambda: _stored(server.post(study_path, body, content_type, DICOM_JSON))

    _, seconds = concurrently(STOW_CONCURRENCY, [post(*body) for body in bodies])
    return len(parts) / seconds


def _stored(response: Response) -> Response:
    """A STOW-RS answer other than 200 (all stored, PS3.18 §10.5.3) counts as an error."""
    if response.status != 200:
        raise BenchError(f"STOW-RS answered {response.status}: {response.body[:300]!r}")
    return response


def c_store(dimse: DimseTarget, series: Series, folder: Path) -> float:
    """Instances/s sending ``series`` with DCMTK's storescu over one association.

    DCMTK turns Nagle's algorithm off only when ``TCP_NODELAY`` is set in its environment;
    without it each small message (a command set) can wait 40 ms for the peer's delayed
    ACK, which would measure the two TCP stacks rather than the server. Every server gets
    the same client."""
    files = series.write(folder)
    started = time.perf_counter()
    _storescu(dimse, files).wait_done()
    return len(files) / (time.perf_counter() - started)


def c_store_parallel(
    dimse: DimseTarget, series: list[Series], folder: Path, associations: int = 4
) -> float:
    """Instances/s sending ``series`` with ``associations`` storescu processes at once, each
    over its own association with an equal share of the files, as several modalities (or a
    migration tool's workers) send to one archive."""
    files = [path for n, s in enumerate(series) for path in s.write(folder / str(n))]
    shares = [files[n::associations] for n in range(associations)]
    started = time.perf_counter()
    running = [_storescu(dimse, share) for share in shares]
    for sender in running:
        sender.wait_done()
    return len(files) / (time.perf_counter() - started)


@dataclass
class _Sender:
    """One storescu run in flight."""

    process: subprocess.Popen[str]

    def wait_done(self) -> None:
        try:
            _, stderr = self.process.communicate(timeout=600)
        except subprocess.TimeoutExpired as exc:
            self.process.kill()
            self.process.communicate()
            raise BenchError("storescu did not finish within 600 s") from exc
        if self.process.returncode != 0 or "E:" in stderr:
            raise BenchError(f"storescu failed ({self.process.returncode}): {stderr[-500:]}")


def _storescu(dimse: DimseTarget, files: list[Path]) -> _Sender:
    command = ["storescu", "-aet", "BENCH", "-aec", dimse.ae_title, dimse.host, str(dimse.port)]
    environment = {**os.environ, "TCP_NODELAY": "1"}
    process = subprocess.Popen(
        [*command, *map(str, files)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    return _Sender(process)


def qido(server: Server, queries: list[str], concurrency: int, count: int) -> list[float]:
    """Latencies (s) of ``count`` QIDO-RS searches cycling through ``queries``."""
    jobs = [_bound(server, queries[i % len(queries)], DICOM_JSON, {200, 204}) for i in range(count)]
    latencies, _ = concurrently(concurrency, jobs)
    return latencies


def _bound(server: Server, path: str, accept: str, ok: set[int]) -> Callable[[], Response]:
    def get() -> Response:
        response = server.get(path, accept)
        if response.status not in ok:
            raise BenchError(f"GET {path} answered {response.status}")
        return response

    return get


def series_metadata(server: Server, series: Series) -> tuple[float, list[dict[str, object]]]:
    """Seconds for the metadata of ``series``, and the metadata (PS3.18 §10.4.1.1.2)."""
    response = _bound(server, f"{series.path}/metadata", DICOM_JSON, {200})()
    return response.seconds, json.loads(response.body)


def first_image(server: Server, series: Series) -> float:
    """Seconds from nothing to the first frame on screen, as OHIF opens a series: the series
    search of the study, the series metadata, then frame 1 of the lowest Instance Number."""
    search = _bound(server, f"/studies/{series.study_uid}/series", DICOM_JSON, {200})()
    seconds, metadata = series_metadata(server, series)
    first = min(metadata, key=_instance_number)
    sop_uid = first["00080018"]["Value"][0]  # type: ignore[index]
    frame = _bound(server, f"{series.instance_path(sop_uid)}/frames/1", FRAME, {200})()
    return search.seconds + seconds + frame.seconds


def _instance_number(item: dict[str, object]) -> int:
    element = item.get(INSTANCE_NUMBER)
    values = element.get("Value") if isinstance(element, dict) else None
    return int(values[0]) if values else 0


def frame_latencies(server: Server, frames: list[str], count: int, seed: int) -> list[float]:
    """Seconds for ``count`` frames picked at random from ``frames``, one at a time."""
    picked = random.Random(seed).choices(frames, k=count)
    return [_bound(server, path, FRAME, {200})().seconds for path in picked]


def frames_per_second(server: Server, frames: list[str], count: int, seed: int) -> float:
    """Frames/s with 16 requests in flight, as a viewer prefetching a series does."""
    picked = random.Random(seed).choices(frames, k=count)
    _, seconds = concurrently(16, [_bound(server, path, FRAME, {200}) for path in picked])
    return count / seconds


def study_retrieval(server: Server, study_uid: str) -> float:
    """MB/s retrieving a whole study as DICOM instances (PS3.18 §10.4.1.1.1)."""
    started = time.perf_counter()
    response = server.get(f"/studies/{study_uid}", INSTANCES, keep_body=False)
    seconds = time.perf_counter() - started
    if response.status != 200:
        raise BenchError(f"study retrieval answered {response.status}")
    return int.from_bytes(response.body, "little") / seconds / 1e6
