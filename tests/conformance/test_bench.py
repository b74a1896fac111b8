"""The benchmark, run as the README says, one round at its set-up check scale (every step, a
tenth of the small scale's slices): our server (embedded default, DIMSE on) against Orthanc
with its DICOMweb plugin, each in a process of its own.

No figure is asserted against a time (the machine is shared and noisy; the figures belong in
the README, from a real run). What is asserted is that the benchmark measures what it says:
every figure is taken on both servers, no request failed, the report gives both columns and
a ratio whose direction follows the figure (more instances/s is better, fewer ms is better).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conformance import orthanc
from conformance.bench import figures
from conformance.bench.__main__ import _ratio
from conformance.bench.client import percentile
from tests.backends import unavailable
from tests.factories import free_port
from tests.serving import ROOT, dcmtk, serve


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 0.5) == 10
    assert percentile(values, 0.95) == 19
    assert percentile([3.0], 0.95) == 3


def test_the_ratio_says_how_many_times_better_the_first_server_is() -> None:
    assert _ratio(figures.STOW, 300.0, 100.0) == "3.00x"  # a rate: more is better
    assert _ratio(figures.METADATA_WARM, 2.0, 20.0) == "10.00x"  # a latency: less is better
    assert _ratio(figures.FRAME_LATENCY, 4.0, 2.0) == "0.50x"
    assert _ratio(figures.ERRORS, 0.0, 0.0) == "="
    assert _ratio(figures.STOW, None, 1.0) == "n/a"


@pytest.mark.e2e
@pytest.mark.slow
def test_one_round_side_by_side_with_orthanc(tmp_path: Path) -> None:
    problem = orthanc.problem()
    if problem:
        unavailable(problem)
    dcmtk("storescu")
    dimse_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADCASE_")} | {
        "RADCASE_AUTH": "off",
        "RADCASE_DATA_DIR": str(tmp_path / "ours"),
        "RADCASE_DIMSE_PORT": str(dimse_port),
        "RADCASE_LOG_LEVEL": "warning",
    }
    out = tmp_path / "bench.json"
    with (
        serve(env, log=tmp_path / "server.log") as base,
        orthanc.running(tmp_path / "orthanc") as reference,
    ):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "conformance.bench",
                "--dicomweb",
                f"{base}/dicomweb",
                "--dimse",
                f"127.0.0.1:{dimse_port}:RADCASE",
                "--label",
                "ours",
                "--vs",
                reference.dicomweb,
                "--vs-dimse",
                reference.dimse,
                "--vs-label",
                "orthanc",
                "--scale",
                "check",
                "--rounds",
                "1",
                "--json",
                str(out),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(out.read_text())
    for label in ("ours", "orthanc"):
        measured = result["servers"][label]
        missing = [f.name for f in figures.ALL if measured[f.name]["median"] is None]
        assert not missing, f"{label}: not measured: {missing}"
        assert measured[figures.ERRORS.name]["median"] == 0, measured["error_examples"]
        assert measured[figures.MEMORY.name]["median"] > 10  # MB: the processes were found
    header, *rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert header.split("|")[3:6] == [" ours ", " orthanc ", " ratio "]
    assert len(rows) == len(figures.ALL)
    assert all(row.rstrip().endswith("x |") or "errors" in row for row in rows)
