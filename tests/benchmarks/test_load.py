"""The load test, run as the README says but small: a few viewers and residents for a few
seconds against a served server with authentication on.

No figure is asserted against a time; what is asserted is that the load test plays what it
says: every kind of request of both sessions was made and answered, none failed, the cache
hit rate was read from ``/metrics``, and the report has a row per kind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serving import ROOT, serve

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
    out = tmp_path / "load.json"
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
