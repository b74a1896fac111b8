"""Orthanc with its DICOMweb plugin, on loopback ports of its own, as a reference server.

The conformance suite is only worth something if it says of another well-known server what the
standard says of it; Orthanc is that server. It is started from a configuration written here
(storage and index in a work folder, nothing read from or shared with a system-wide Orthanc),
so it can run beside one. The same launcher serves the side-by-side benchmark, so the
configuration keeps Orthanc's defaults and sets only what the suite needs: the ports, the AE
title, the folders, the DICOMweb plugin with WADO-URI, and DIMSE peers allowed without
registration (the suite's calling AE title is not known to Orthanc in advance).

Orthanc runs at its best documented setting, never handicapped: DCMTK, which its DIMSE layer
is built on, leaves Nagle's algorithm on unless the environment says ``TCP_NODELAY=1``, and
every small DIMSE response then waits for a delayed ACK (about 40 ms: 20 C-STOREs/s instead
of about 200). The launcher sets it, as every DCMTK client the benchmark runs does. Its
storage area is synced to disk on every write (``SyncStorageArea``, on by default since
1.7.4; stated here so a durable server is compared with a durable server).

``python -m conformance.orthanc [--http-port N] [--dicom-port N] [--dir DIR]`` runs it in the
foreground and prints the arguments ``python -m conformance`` takes.

``ORTHANC`` overrides the binary (default /usr/sbin/Orthanc, Debian's package ``orthanc``) and
``ORTHANC_PLUGINS`` the folder holding libOrthancDicomWeb.so (Debian's ``orthanc-dicomweb``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

DEFAULT_BINARY = "/usr/sbin/Orthanc"
DEFAULT_PLUGINS = "/usr/share/orthanc/plugins"
DICOMWEB_PLUGIN = "libOrthancDicomWeb.so"
STARTUP_SECONDS = 60.0
STOP_SECONDS = 20.0


@dataclass(frozen=True)
class OrthancServer:
    """Where a running Orthanc answers, in the forms the conformance CLI takes."""

    http_base: str  # http://127.0.0.1:PORT (Orthanc's REST API)
    dicomweb: str  # --dicomweb
    wado_uri: str  # --wado-uri
    dimse: str  # --dimse, HOST:PORT:AET
    pid: int
    http_port: int
    dicom_port: int
    ae_title: str
    work_dir: Path


def binary() -> Path:
    return Path(os.environ.get("ORTHANC") or DEFAULT_BINARY)


def plugin() -> Path:
    return Path(os.environ.get("ORTHANC_PLUGINS") or DEFAULT_PLUGINS) / DICOMWEB_PLUGIN


def problem() -> str | None:
    """Why Orthanc cannot be started here (binary or DICOMweb plugin missing), or None."""
    if not os.access(binary(), os.X_OK):
        return f"Orthanc is not installed: no executable {binary()} (Debian package orthanc)"
    if not plugin().is_file():
        return f"Orthanc's DICOMweb plugin is missing: no {plugin()} (package orthanc-dicomweb)"
    return None


def free_port() -> int:
    """A port free on loopback now (the OS's choice; another process may take it later, in
    which case Orthanc exits and :func:`running` reports it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def configuration(work_dir: Path, http_port: int, dicom_port: int, ae_title: str) -> dict[str, Any]:
    """Orthanc's configuration: its defaults, except for what is set here and why.

    Orthanc 1.10 has no bind address: ``RemoteAccessAllowed: false`` makes its HTTP server
    answer loopback clients only; its DICOM port accepts any host, as on a default install.
    """
    return {
        "Name": "conformance-orthanc",
        "StorageDirectory": str(work_dir / "storage"),
        "IndexDirectory": str(work_dir / "index"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": ae_title,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        # Any calling AE title may echo, store and find (Orthanc's default lets unregistered
        # peers echo and store only); the called AE title is not checked (the default, stated).
        "DicomAlwaysAllowEcho": True,
        "DicomAlwaysAllowStore": True,
        "DicomAlwaysAllowFind": True,
        "DicomCheckCalledAet": False,
        "SyncStorageArea": True,
        "Plugins": [str(plugin())],
        # No "Host": the plugin then builds RetrieveURL and BulkDataURI from the request's Host.
        "DicomWeb": {
            "Enable": True,
            "Root": "/dicom-web/",
            "EnableWado": True,
            "WadoRoot": "/wado",
        },
    }


def _tail(log: Path, lines: int = 30) -> str:
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (Orthanc shuts down cleanly on it), then SIGKILL if it takes too long."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_up(process: subprocess.Popen[bytes], base: str, log: Path) -> None:
    """Until GET /system answers and the DICOMweb plugin is loaded; fails with the log's tail
    if Orthanc exits or is not up by the deadline."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"Orthanc exited with status {process.returncode} while starting; its log ends:\n"
                f"{_tail(log)}"
            )
        try:
            if httpx.get(f"{base}/system", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"Orthanc did not answer GET {base}/system within {STARTUP_SECONDS:.0f} s; "
                f"its log ends:\n{_tail(log)}"
            )
        time.sleep(0.1)
    plugins = httpx.get(f"{base}/plugins", timeout=10).json()
    if "dicom-web" not in plugins:
        raise RuntimeError(
            f"Orthanc is up but the DICOMweb plugin is not loaded (plugins: {plugins}); "
            f"its log ends:\n{_tail(log)}"
        )


@contextmanager
def running(
    work_dir: Path,
    *,
    http_port: int = 0,
    dicom_port: int = 0,
    ae_title: str = "ORTHANC",
    log: Path | None = None,
) -> Iterator[OrthancServer]:
    """Orthanc configured in ``work_dir`` (0 = a free port), yielded once it answers, stopped
    (and waited for) on exit, whatever happened in between. Its output goes to ``log``
    (default ``work_dir/orthanc.log``)."""
    reason = problem()
    if reason:
        raise RuntimeError(reason)
    work_dir = work_dir.resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    http_port = http_port or free_port()
    dicom_port = dicom_port or free_port()
    log = log or work_dir / "orthanc.log"
    config = work_dir / "orthanc.json"
    config.write_text(
        json.dumps(configuration(work_dir, http_port, dicom_port, ae_title), indent=2),
        encoding="utf-8",
    )
    base = f"http://127.0.0.1:{http_port}"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(binary()), str(config)],
            cwd=work_dir,
            env={**os.environ, "TCP_NODELAY": "1"},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_until_up(process, base, log)
            yield OrthancServer(
                http_base=base,
                dicomweb=f"{base}/dicom-web",
                wado_uri=f"{base}/wado",
                dimse=f"127.0.0.1:{dicom_port}:{ae_title}",
                pid=process.pid,
                http_port=http_port,
                dicom_port=dicom_port,
                ae_title=ae_title,
                work_dir=work_dir,
            )
        finally:
            _stop(process)


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m conformance.orthanc",
        description="Run Orthanc with its DICOMweb plugin on loopback until Ctrl-C/SIGTERM.",
    )
    p.add_argument("--http-port", type=int, default=0, help="HTTP port (default: a free one)")
    p.add_argument("--dicom-port", type=int, default=0, help="DICOM port (default: a free one)")
    p.add_argument("--ae-title", default="ORTHANC", help="Orthanc's AE title")
    p.add_argument("--dir", type=Path, help="work folder (default: a temporary one, removed)")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminated)
    with tempfile.TemporaryDirectory(prefix="orthanc-") as scratch:
        work_dir = args.dir or Path(scratch)
        try:
            with running(
                work_dir,
                http_port=args.http_port,
                dicom_port=args.dicom_port,
                ae_title=args.ae_title,
            ) as server:
                print(f"DICOMweb:  {server.dicomweb}")
                print(f"WADO-URI:  {server.wado_uri}")
                print(f"--dimse    {server.dimse}")
                print(
                    f"python -m conformance --dicomweb {server.dicomweb} "
                    f"--wado-uri {server.wado_uri} --dimse {server.dimse}",
                    flush=True,
                )
                while True:
                    time.sleep(3600)
        except KeyboardInterrupt:
            return 0
        except RuntimeError as exc:
            print(exc, file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())
