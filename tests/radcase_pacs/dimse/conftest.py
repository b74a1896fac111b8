"""A DIMSE server on a free loopback port over the same archive as the ``client`` fixture,
DCMTK's command-line tools, and a Storage SCP (DCMTK's storescp) for C-MOVE destinations."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from radcase_pacs.dimse.server import DimseServer
from radcase_pacs.settings import Settings
from storage.archive import Archive
from tests.conftest import free_port

AE_TITLE = "RADCASE"
DCMTK_TOOLS = ("echoscu", "storescu", "findscu", "movescu", "getscu", "storescp")


def dcmtk(tool: str) -> str:
    """The path of a DCMTK tool; a missing DCMTK skips locally and fails under CI (CI installs
    the dcmtk package, so its absence there is a broken run, not an optional extra)."""
    path = shutil.which(tool)
    if path is None:
        message = f"DCMTK's {tool} is not installed (Debian package dcmtk)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def run(tool: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [dcmtk(tool), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@dataclass
class StoreScp:
    """DCMTK's storescp receiving into a folder: the C-MOVE destination of the tests."""

    ae_title: str
    port: int
    folder: Path
    process: subprocess.Popen[bytes]

    def received(self) -> list[Path]:
        return sorted(p for p in self.folder.rglob("*") if p.is_file())

    def wait_for(self, count: int, timeout: float = 30) -> list[Path]:
        deadline = time.monotonic() + timeout
        while len(self.received()) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.received()


@pytest.fixture
def storescp(tmp_path: Path) -> Iterator[StoreScp]:
    port = free_port()
    folder = tmp_path / "received"
    folder.mkdir()
    process = subprocess.Popen(
        # +xa accepts every transfer syntax; -uf names files by SOP Instance UID.
        [dcmtk("storescp"), "-aet", "DEST", "+xa", "-uf", "-od", str(folder), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_listening(port)
    yield StoreScp("DEST", port, folder, process)
    process.terminate()
    process.wait(timeout=10)


def _wait_listening(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def dimse_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "dimse_port": free_port(),
        "ae_title": AE_TITLE,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def start_dimse(tmp_path: Path, archive: Archive) -> Iterator[Callable[..., DimseServer]]:
    """Starts DIMSE servers over the test's archive with settings overridden as given."""
    started: list[DimseServer] = []

    def start(**overrides: object) -> DimseServer:
        server = DimseServer(dimse_settings(tmp_path, **overrides), archive)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def dimse(start_dimse: Callable[..., DimseServer]) -> DimseServer:
    return start_dimse()


def address(server: DimseServer) -> list[str]:
    """DCMTK's peer arguments: called AE title, host and port."""
    return ["-aec", AE_TITLE, "127.0.0.1", str(server.port)]
