"""Settings precedence, the import command and the served process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pydicom
import pytest
from pynetdicom import AE

from radcase_pacs.cli import main
from radcase_pacs.settings import load_settings
from tests.factories import CORPUS, CORPUS_DIR, free_port


def test_settings_come_from_defaults_then_file_then_environment_then_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "radcase.toml"
    config.write_text('http_port = 9001\nae_title = "FROMFILE"\nhost = "0.0.0.0"\n')
    monkeypatch.setenv("RADCASE_HTTP_PORT", "9002")
    monkeypatch.setenv("RADCASE_AE_TITLE", "FROMENV")
    monkeypatch.delenv("RADCASE_AUTH", raising=False)  # a server on the network keeps auth on
    settings = load_settings(config, ae_title="FROMFLAG")
    assert settings.host == "0.0.0.0" and settings.auth == "on"
    assert settings.http_port == 9002
    assert settings.ae_title == "FROMFLAG"
    assert settings.dimse_port == 11112
    assert settings.cache_url == "memory://"


@pytest.mark.parametrize("config", ["radcase.toml", "production.toml"])
def test_the_shipped_configs_name_every_setting_and_load(
    config: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("RADCASE_"):
            monkeypatch.delenv(name)
    shipped = Path(__file__).parents[2] / "config" / config
    settings = load_settings(shipped)
    text = shipped.read_text()
    for field in type(settings).model_fields:
        assert f"{field} =" in text, f"{field} is not documented in config/{config}"


def test_an_unknown_key_in_the_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("http_prot = 1\n")
    assert main(["--config", str(config), "import", str(tmp_path)]) == 2


def test_import_stores_a_folder_and_reports_what_it_did(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = CORPUS_DIR / "dicomdirtests"
    args = ["--data-dir", str(tmp_path / "data"), "import", "--no-progress", str(folder)]
    instances = sum(1 for p in CORPUS if folder in p.parents)
    assert main(args) == 0
    first = capsys.readouterr().out
    assert f"stored: {instances}, already present: 0, failed: 0" in first
    assert "skipped (not DICOM instances): 10" in first  # DICOMDIRs and READMEs
    assert main(args) == 0
    assert f"stored: 0, already present: {instances}, failed: 0" in capsys.readouterr().out


def test_import_names_each_failure_with_its_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "in" / "broken.dcm"
    broken.parent.mkdir()
    broken.write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\x04\x001.2\x00")
    (tmp_path / "in" / "notes.txt").write_text("not dicom")
    code = main(
        ["--data-dir", str(tmp_path / "data"), "import", "--no-progress", str(tmp_path / "in")]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "failed: 1, skipped (not DICOM instances): 1" in out
    assert "broken.dcm" in out


@pytest.mark.e2e
def test_serve_answers_healthz_once_ready_and_stops_on_sigterm(tmp_path: Path) -> None:
    """HTTP and DIMSE come up together over the same stores and go down together."""
    port, dimse_port = free_port(), free_port()
    env = {
        **os.environ,
        "RADCASE_HTTP_PORT": str(port),
        "RADCASE_DIMSE_PORT": str(dimse_port),
        "RADCASE_DATA_DIR": str(tmp_path),
        "RADCASE_SHUTDOWN_DRAIN_SECONDS": "0",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "radcase_pacs", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stdout.read()  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "server did not come up"
                time.sleep(0.1)
        assert response.status_code == 200
        health = response.json()
        assert health["status"] == "ok" and "reason" not in health
        assert {name: found["status"] for name, found in health["backends"].items()} == {
            name: "ok" for name in ("index", "audit log", "teaching index", "cases", "blobs")
        } | {name: "ok" for name in ("teaching blobs", "cache", "teaching cache")}
        studies = httpx.get(f"http://127.0.0.1:{port}/dicomweb/studies", timeout=5)
        assert studies.status_code == 200
        assert studies.json() == []
        assert _c_store(dimse_port, CORPUS_DIR / "CT_small.dcm") == 0x0000
        studies = httpx.get(f"http://127.0.0.1:{port}/dicomweb/studies", timeout=5)
        assert len(studies.json()) == 1
    finally:
        process.send_signal(signal.SIGTERM)
        # A graceful stop (radcase_pacs.drain): the stores closed, then exit status 0.
        assert process.wait(timeout=15) == 0
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", dimse_port)) != 0, "DIMSE still listening"


def _c_store(port: int, path: Path) -> int:
    ds = pydicom.dcmread(path)
    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title="RADCASE")
    try:
        return int(assoc.send_c_store(ds).Status)
    finally:
        assoc.release()
