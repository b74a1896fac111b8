"""The conformance suite against Orthanc with its DICOMweb plugin, the reference server the README
compares ours with: Orthanc started by conformance/orthanc.py in a temporary folder on free
loopback ports, ``python -m conformance`` run against it in a process of its own (as against
our server), and the outcome of every check compared with the record kept in
conformance/orthanc_results.json. A change in Orthanc (another Debian version) or in a check
fails here until the record, and the README table made from it, say the same.

A missing Orthanc or DICOMweb plugin skips locally and fails under CI=true (CI installs the
Debian packages orthanc and orthanc-dicomweb)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from conformance import orthanc
from tests.backends import unavailable
from tests.serving import ROOT, dcmtk, run_conformance

RECORD = ROOT / "conformance" / "orthanc_results.json"
ORIGIN = "https://viewer.example"


def require_orthanc() -> None:
    problem = orthanc.problem()
    if problem:
        unavailable(problem)
    for tool in ("echoscu", "storescu", "findscu"):
        dcmtk(tool)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def record() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(RECORD.read_text(encoding="utf-8"))
    return data


def test_the_record_is_consistent() -> None:
    """Every check of the suite is in the record, once; every non-pass says why."""
    import conformance.checks  # noqa: F401 - registers the checks
    from conformance.registry import REGISTRY

    names = [item.name for item in REGISTRY]
    assert len(names) == len(set(names)), "check names must be unique (they key the record)"
    data = record()
    assert set(data["results"]) == set(names)
    assert set(data["results"].values()) <= {"pass", "fail", "skip"}
    not_passed = {name for name, status in data["results"].items() if status != "pass"}
    assert set(data["reasons"]) == not_passed
    assert all(reason.strip() for reason in data["reasons"].values())


@pytest.mark.e2e
def test_orthanc_passes_and_fails_the_recorded_checks() -> None:
    require_orthanc()
    with tempfile.TemporaryDirectory(prefix="conformance-orthanc-") as folder:
        work = Path(folder)
        with orthanc.running(work / "orthanc") as server:
            pid = server.pid
            stdout, report, status, results = run_conformance(
                server.dicomweb,
                work / "out.json",
                *("--wado-uri", server.wado_uri, "--dimse", server.dimse, "--origin", ORIGIN),
            )
        assert not alive(pid), f"Orthanc (pid {pid}) is still running after the launcher exited"
    assert not work.exists()

    got = {r["name"]: r["status"].lower() for r in results}
    want = record()["results"]
    changed = [
        f"{r['service']}: {r['name']}: recorded {want.get(r['name'])}, now {got[r['name']]}"
        + (f" ({r['detail']})" if r["detail"] else "")
        for r in results
        if want.get(r["name"]) != got[r["name"]]
    ]
    assert not changed, "\n".join(changed) + "\n\n" + report
    assert got == want
    assert status == (1 if "fail" in want.values() else 0), report
    statuses = list(want.values())
    last = stdout.strip().splitlines()[-1]
    assert last == (
        f"{statuses.count('pass')} passed, {statuses.count('fail')} failed, "
        f"{statuses.count('skip')} skipped"
    ), last


@pytest.mark.e2e
def test_launcher_command_line_runs_until_sigterm(tmp_path: Path) -> None:
    """``python -m conformance.orthanc`` prints the arguments of ``python -m conformance``,
    serves until SIGTERM, then stops Orthanc; its configuration stays in the work folder."""
    require_orthanc()
    work = tmp_path / "work"
    process = subprocess.Popen(
        [sys.executable, "-m", "conformance.orthanc", "--dir", str(work)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline().strip() for _ in range(3)]
        dicomweb, wado_uri, dimse = (line.split()[-1] for line in lines)
        assert dicomweb.startswith("http://127.0.0.1:") and dicomweb.endswith("/dicom-web"), lines
        assert wado_uri == dicomweb.removesuffix("/dicom-web") + "/wado", lines
        host, port, ae_title = dimse.split(":")
        assert (host, ae_title) == ("127.0.0.1", "ORTHANC") and int(port) not in (104, 4242)
        base = dicomweb.removesuffix("/dicom-web")
        assert not base.endswith(":8042")
        assert httpx.get(f"{dicomweb}/studies", timeout=10).status_code in (200, 204)
        config = json.loads((work / "orthanc.json").read_text(encoding="utf-8"))
        assert Path(config["StorageDirectory"]).parent == work.resolve()
        assert Path(config["IndexDirectory"]).parent == work.resolve()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
    deadline = time.monotonic() + 10
    while True:
        try:
            httpx.get(f"{base}/system", timeout=1)
        except httpx.TransportError:
            break
        assert time.monotonic() < deadline, "Orthanc still answers after the launcher stopped"
        time.sleep(0.1)
