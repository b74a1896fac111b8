"""``radcase-pacs serve`` in a process of its own, for the tests that need the real server:
started with an environment, waited for until /healthz answers, stopped with SIGTERM."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.backends import MOTO, REDIS_URL, unavailable
from tests.factories import free_port

ROOT = Path(__file__).resolve().parents[1]


def production_environment(postgres_url: str, redis_prefix: str, bucket: str) -> dict[str, str]:
    """The settings of a server process of the production set-up: PostgreSQL, Redis and S3
    (moto's server), each isolated for the test by tests/backends.py's fixtures."""
    return {
        "RADCASE_INDEX_URL": postgres_url,
        "RADCASE_CACHE_URL": f"{REDIS_URL}?prefix={redis_prefix}",
        "RADCASE_BLOB_URL": f"s3://{bucket}/archive",
        "RADCASE_S3_ENDPOINT_URL": MOTO.endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


@contextmanager
def serve(env: dict[str, str], *args: str, log: Path | None = None) -> Iterator[str]:
    """The server on a free HTTP port of loopback; yields its base URL once healthy. Its
    output goes to ``log`` (shown when it exits early) or is kept in a pipe.

    One HTTP process unless ``args`` ask for more: ``serve`` alone starts one worker per core,
    and the tests that are about several workers say so (the others would only pay for the
    extra processes' start-up on a machine their neighbours share). No drain delay unless
    ``env`` sets one: no load balancer waits for it, and it would lengthen every stop."""
    port = free_port()
    out = log.open("w") if log else None
    listen = ["--host", "127.0.0.1", "--port", str(port)]
    if "--workers" not in args:
        listen += ["--workers", "1"]
    process = subprocess.Popen(
        [sys.executable, "-m", "radcase_pacs", "serve", *listen, *args],
        cwd=ROOT,
        env={"RADCASE_SHUTDOWN_DRAIN_SECONDS": "0", **env},
        stdout=out or subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None:
                output = log.read_text() if log else process.communicate()[0]
                raise AssertionError(f"the server exited: {output}")
            assert time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.1)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if out:
            out.close()


def dcmtk(tool: str) -> str:
    """The path of a DCMTK tool; a missing DCMTK skips locally and fails under CI (CI installs
    the dcmtk package, so its absence there is a broken run, not an optional extra).

    The interpreter's own scripts folder is left out of the search: pynetdicom installs apps
    of the same names there (``storescu``, ``findscu``...), which an activated virtualenv puts
    first on PATH."""
    scripts = Path(sys.executable).parent.resolve()
    search = [p for p in os.get_exec_path() if p and Path(p).resolve() != scripts]
    path = shutil.which(tool, path=os.pathsep.join(search))
    if path is None:
        unavailable(f"DCMTK's {tool} is not installed (Debian package dcmtk)")
    return path


def dcmtk_environment() -> dict[str, str]:
    """The environment for a DCMTK tool, with Nagle's algorithm off on its side (DCMTK leaves it
    on unless TCP_NODELAY=1). With it on, each small DIMSE message waits for the peer's delayed
    ACK (measured: 51 ms per C-STORE on one association, 6.5 ms with it off). The server turns
    it off on its own side (radcase_pacs.dimse.server.no_delay)."""
    return {**os.environ, "TCP_NODELAY": "1"}


def run_conformance(dicomweb: str, out: Path, *args: str) -> tuple[str, str, int, list[dict]]:
    """``python -m conformance --dicomweb URL ARGS --json OUT`` in a process of its own, as an
    operator runs it: its stdout, then stdout and stderr together (for failure messages), its exit
    status and the results it wrote."""
    done = subprocess.run(
        [sys.executable, "-m", "conformance", "--dicomweb", dicomweb, *args, "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    report = done.stdout + done.stderr
    assert out.exists(), report
    results: list[dict] = json.loads(out.read_text(encoding="utf-8"))["results"]
    return done.stdout, report, done.returncode, results
