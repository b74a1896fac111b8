"""The conformance suite, black-box, against our real server: ``radcase-pacs serve`` in its own
process (DIMSE on a free port, CORS allowing the suite's origin), and ``python -m conformance``
in another, as an operator would run them. The server runs twice: embedded (SQLite and file
blobs in a temporary folder) and production (PostgreSQL, Redis and S3 on moto, from
tests/backends.py). Every check must pass on both; none may be skipped, since DIMSE is given."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.runner import SERVICES
from tests.backends import (  # noqa: F401  (fixtures, asked for by name)
    postgres_url,
    redis_key_prefix,
    s3_bucket_name,
    s3_server,
)
from tests.factories import free_port
from tests.serving import dcmtk, production_environment, run_conformance, serve

pytestmark = pytest.mark.e2e

AE_TITLE = "RADCASE"
ORIGIN = "https://viewer.example"


def require_dcmtk() -> None:
    for tool in ("echoscu", "storescu", "findscu"):
        dcmtk(tool)


@pytest.fixture(params=["embedded"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, int]]:
    """Our server (embedded, or production where the test asks for it); yields its DICOMweb
    root URL and DIMSE port once /healthz answers."""
    dimse_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADCASE_")}
    if request.param == "production":
        env |= production_environment(
            request.getfixturevalue("postgres_url"),
            request.getfixturevalue("redis_key_prefix"),
            request.getfixturevalue("s3_bucket_name"),
        )
    env |= {
        "RADCASE_AUTH": "off",
        "RADCASE_DATA_DIR": str(tmp_path / "data"),
        "RADCASE_DIMSE_PORT": str(dimse_port),
        "RADCASE_AE_TITLE": AE_TITLE,
        "RADCASE_CORS_ORIGINS": ORIGIN,
        "RADCASE_LOG_LEVEL": "warning",
    }
    with serve(env, log=tmp_path / "server.log") as base:
        yield f"{base}/dicomweb", dimse_port


@pytest.mark.parametrize("server", ["embedded", "production"], indirect=True)
def test_every_check_passes_against_our_server(server: tuple[str, int], tmp_path: Path) -> None:
    require_dcmtk()
    dicomweb, dimse_port = server
    stdout, report, status, results = run_conformance(
        dicomweb,
        tmp_path / "out.json",
        *("--dimse", f"127.0.0.1:{dimse_port}:{AE_TITLE}", "--origin", ORIGIN),
    )
    failed = [
        f"{r['service']}: {r['name']}: {r['detail']}" for r in results if r["status"] == "FAIL"
    ]
    skipped = [
        f"{r['service']}: {r['name']}: {r['detail']}" for r in results if r["status"] == "SKIP"
    ]
    assert not failed, "\n".join(failed) + "\n\n" + report
    assert not skipped, "\n".join(skipped)
    assert status == 0, report
    assert all(r["status"] == "PASS" for r in results)
    assert {r["service"] for r in results} == set(SERVICES)
    assert all(r["section"] for r in results)
    last = stdout.strip().splitlines()[-1]
    assert last == f"{len(results)} passed, 0 failed, 0 skipped", last


def test_a_failing_check_fails_the_run(server: tuple[str, int], tmp_path: Path) -> None:
    """The exit status follows the checks: an origin the server does not allow fails the CORS
    checks (and only them), without --dimse the DIMSE checks are skipped, not failed."""
    dicomweb, _ = server
    stdout, report, status, results = run_conformance(
        dicomweb, tmp_path / "out.json", "--origin", "https://not-allowed.example"
    )
    assert status == 1, report
    by_status = {
        status: {r["service"] for r in results if r["status"] == status}
        for status in ("PASS", "FAIL", "SKIP")
    }
    assert by_status["FAIL"] == {"cors"}, stdout
    assert by_status["SKIP"] == {"dimse"}
    assert "FAIL" in stdout and "failed" in stdout.strip().splitlines()[-1]
