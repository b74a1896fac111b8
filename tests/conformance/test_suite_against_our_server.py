"""The conformance suite, black-box, against our real server: ``radcase-pacs serve`` in its own
process (DIMSE on a free port, CORS allowing the suite's origin), and ``python -m conformance``
in another, as an operator would run them. The server runs twice: embedded (SQLite and file
blobs in a temporary folder) and production (PostgreSQL, Redis and S3 on moto, from
tests/backends.py). Every check must pass on both; none may be skipped, since DIMSE is given."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conformance.runner import SERVICES
from tests.backends import (  # noqa: F401  (fixtures, asked for by name)
    MOTO,
    REDIS_URL,
    postgres_url,
    redis_key_prefix,
    s3_bucket_name,
    s3_server,
)
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
AE_TITLE = "RADCASE"
ORIGIN = "https://viewer.example"


def require_dcmtk() -> None:
    """A missing DCMTK skips locally and fails under CI (as tests/radcase_pacs/dimse does)."""
    missing = [t for t in ("echoscu", "storescu", "findscu") if shutil.which(t) is None]
    if missing:
        message = f"DCMTK's {', '.join(missing)} not installed (Debian package dcmtk)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def production_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """PostgreSQL, Redis and S3 settings (as tests/radcase_pacs/test_production.py uses);
    a missing PostgreSQL or Redis skips locally and fails under CI."""
    index_url = request.getfixturevalue("postgres_url")
    prefix = request.getfixturevalue("redis_key_prefix")
    bucket = request.getfixturevalue("s3_bucket_name")
    return {
        "RADCASE_INDEX_URL": index_url,
        "RADCASE_CACHE_URL": f"{REDIS_URL}?prefix={prefix}",
        "RADCASE_BLOB_URL": f"s3://{bucket}/archive",
        "RADCASE_S3_ENDPOINT_URL": MOTO.endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


@pytest.fixture(params=["embedded"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, int]]:
    """Our server (embedded, or production where the test asks for it); yields its DICOMweb
    root URL and DIMSE port once /healthz answers."""
    http_port, dimse_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADCASE_")}
    if request.param == "production":
        env |= production_env(request)
    env |= {
        "RADCASE_AUTH": "off",
        "RADCASE_DATA_DIR": str(tmp_path / "data"),
        "RADCASE_DIMSE_PORT": str(dimse_port),
        "RADCASE_AE_TITLE": AE_TITLE,
        "RADCASE_CORS_ORIGINS": ORIGIN,
        "RADCASE_LOG_LEVEL": "warning",
    }
    script = Path(sys.executable).with_name("radcase-pacs")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "radcase_pacs"]
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [*command, "serve", "--host", "127.0.0.1", "--port", str(http_port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.1)
        yield f"{base}/dicomweb", dimse_port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.mark.parametrize("server", ["embedded", "production"], indirect=True)
def test_every_check_passes_against_our_server(server: tuple[str, int], tmp_path: Path) -> None:
    require_dcmtk()
    dicomweb, dimse_port = server
    out = tmp_path / "out.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "conformance",
            "--dicomweb",
            dicomweb,
            "--dimse",
            f"127.0.0.1:{dimse_port}:{AE_TITLE}",
            "--origin",
            ORIGIN,
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    report = done.stdout + done.stderr
    results = json.loads(out.read_text(encoding="utf-8"))["results"]
    failed = [
        f"{r['service']}: {r['name']}: {r['detail']}" for r in results if r["status"] == "FAIL"
    ]
    skipped = [
        f"{r['service']}: {r['name']}: {r['detail']}" for r in results if r["status"] == "SKIP"
    ]
    assert not failed, "\n".join(failed) + "\n\n" + report
    assert not skipped, "\n".join(skipped)
    assert done.returncode == 0, report
    assert all(r["status"] == "PASS" for r in results)
    assert {r["service"] for r in results} == set(SERVICES)
    assert all(r["section"] for r in results)
    last = done.stdout.strip().splitlines()[-1]
    assert last == f"{len(results)} passed, 0 failed, 0 skipped", last


def test_a_failing_check_fails_the_run(server: tuple[str, int], tmp_path: Path) -> None:
    """The exit status follows the checks: an origin the server does not allow fails the CORS
    checks (and only them), without --dimse the DIMSE checks are skipped, not failed."""
    dicomweb, _ = server
    out = tmp_path / "out.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "conformance",
            "--dicomweb",
            dicomweb,
            "--origin",
            "https://not-allowed.example",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    results = json.loads(out.read_text(encoding="utf-8"))["results"]
    assert done.returncode == 1, done.stdout + done.stderr
    by_status = {
        status: {r["service"] for r in results if r["status"] == status}
        for status in ("PASS", "FAIL", "SKIP")
    }
    assert by_status["FAIL"] == {"cors"}, done.stdout
    assert by_status["SKIP"] == {"dimse"}
    assert "FAIL" in done.stdout and "failed" in done.stdout.strip().splitlines()[-1]
