"""The load test, run as the README says but small: a few viewers and residents for a few
seconds against a served server with authentication on.

No figure is asserted against a time; what is asserted is that the load test plays what it
says: every kind of request of both sessions was made and answered, none failed, the cache
hit rate was read from ``/metrics``, and the report has a row per kind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.backends import unavailable
from tests.serving import ROOT, serve
from tests.web.department import token

ADMIN_PASSWORD = "load test admin password"
VIEWER_KINDS = {"QIDO studies", "QIDO series", "series metadata", "frame"}
LEARNER_KINDS = {"today", "start review", "question", "learner frame", "answer", "feedback"}


@pytest.mark.e2e
@pytest.mark.slow
def test_viewers_and_residents_sessions_are_played_and_measured(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADCASE_")} | {
        "RADCASE_AUTH": "on",
        "RADCASE_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "RADCASE_PASSWORD_HASH_ROUNDS": "4",
        "RADCASE_DATA_DIR": str(tmp_path / "data"),
        "RADCASE_DIMSE_PORT": "0",
        "RADCASE_LOG_LEVEL": "warning",
    }
    out, capacity_out = tmp_path / "load.json", tmp_path / "capacity.json"
    with serve(env, log=tmp_path / "server.log") as base:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.benchmarks.load",
                "--url",
                base,
                "--users",
                "8",
                "--spawn-rate",
                "8",
                "--duration",
                "8",
                "--learners",
                "3",
                "--admin-password",
                ADMIN_PASSWORD,
                "--json",
                str(out),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        capacity = measure_capacity(base, out, capacity_out) if done.returncode == 0 else None
    assert done.returncode == 0, done.stdout + done.stderr
    (run,) = json.loads(out.read_text())["ours"]
    kinds = {kind["name"]: kind for kind in run["kinds"]}
    made = {name for name, kind in kinds.items() if kind["requests"] > 0}
    expected = VIEWER_KINDS | LEARNER_KINDS
    assert made >= expected, f"not played: {expected - made}"
    assert run["failures"] == [], run["failures"]
    assert all(kind["failures"] == 0 for kind in kinds.values())
    assert run["cache_hit_rate"] is not None and 0 < run["cache_hit_rate"] <= 1
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + len(kinds), done.stdout

    assert capacity is not None
    assert capacity.returncode == 0, capacity.stdout + capacity.stderr
    (kinds_alone,) = json.loads(capacity_out.read_text()).values()
    assert {kind["kind"] for kind in kinds_alone} == VIEWER_KINDS
    for kind in kinds_alone:
        assert kind["requests"] > 0 and kind["errors"] == 0, kind
        assert kind["cpu_seconds"] > 0, kind  # read from /proc for the server's processes
        assert kind["operations"]["audit"] == pytest.approx(1.0, abs=0.05), kind
    assert re.search(r"^\| 1,000 \| [0-9,]+ \| [0-9.]+ \|", capacity.stdout, re.M), capacity.stdout


def measure_capacity(base: str, load_json: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """The capacity measurement, a second per kind, sized from the load run's mix."""
    if shutil.which("wrk") is None:
        unavailable("wrk is not installed (Debian: apt-get install wrk)")
    with httpx.Client(base_url=base, timeout=30) as client:
        admin = token(client, "admin", ADMIN_PASSWORD)
        key = client.post("/api/api-keys", json={"name": "capacity"}, headers=admin)
        key.raise_for_status()
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.benchmarks.load.capacity",
            "--url",
            base,
            "--token",
            str(key.json()["token"]),
            "--seconds",
            "1",
            "--connections",
            "2",
            "--load-json",
            str(load_json),
            "--users",
            "1000",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
