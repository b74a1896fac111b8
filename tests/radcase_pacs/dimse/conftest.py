"""A DIMSE server on a free loopback port over the same archive as the ``client`` fixture,
DCMTK's command-line tools, and a Storage SCP (DCMTK's storescp) for C-MOVE destinations.

The servers record into an audit log in the database the HTTP app of the same test uses, and
every test checks at teardown that each C-STORE, C-FIND, C-MOVE and C-GET request the servers
received has its entry of that action, naming the association."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from pynetdicom import evt

from radcase_pacs.audit.store import AuditLog
from radcase_pacs.dimse.server import DimseServer
from radcase_pacs.settings import Settings
from storage.archive import Archive
from storage.urls import open_database
from tests.factories import free_port
from tests.serving import dcmtk, dcmtk_environment

AE_TITLE = "RADCASE"
# The DIMSE requests that must each be audited, by the message pynetdicom received.
AUDITED = {
    "C_STORE_RQ": "dimse.store",
    "C_FIND_RQ": "dimse.find",
    "C_MOVE_RQ": "dimse.move",
    "C_GET_RQ": "dimse.get",
}
DCMTK_TOOLS = ("echoscu", "storescu", "findscu", "movescu", "getscu", "storescp")


def run(tool: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [dcmtk(tool), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=dcmtk_environment(),
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
        env=dcmtk_environment(),
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
def dimse_audit(tmp_path: Path) -> Iterator[AuditLog]:
    """The audit log of the test's DIMSE servers, where ``serve`` keeps it: in the clinical
    index database of the settings (the one the ``client`` fixture's app records into)."""
    with opened_audit_log(tmp_path) as log:
        yield log


@contextmanager
def opened_audit_log(folder: Path) -> Iterator[AuditLog]:
    log = AuditLog(open_database(Settings(data_dir=folder / "data").resolved_index_url))
    log.open()
    try:
        yield log
    finally:
        log.close()


@contextmanager
def audited_dimse(
    folder: Path, archive: Archive, audit: AuditLog
) -> Iterator[Callable[..., DimseServer]]:
    """Starts DIMSE servers over ``archive`` with settings overridden as given; once they are
    stopped, checks that every request they received has its audit entry."""
    started: list[DimseServer] = []
    received: Counter[str] = Counter()
    lock = threading.Lock()

    def on_message(event: evt.Event) -> None:
        action = AUDITED.get(type(event.message).__name__)
        if action is not None:
            with lock:
                received[action] += 1

    def start(**overrides: object) -> DimseServer:
        server = DimseServer(dimse_settings(folder, **overrides), archive, audit=audit)
        server.start()
        assert server._server is not None
        server._server.bind(evt.EVT_DIMSE_RECV, on_message)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()
    _, entries = audit.search(None, channel="dimse", limit=sum(received.values()) + 1000)
    recorded = Counter(e.action for e in entries)
    missing = received - recorded  # (a test calling a handler directly adds entries)
    assert not missing, f"DIMSE requests {dict(received)}, audited {dict(recorded)}"
    called = {server.settings.ae_title for server in started}
    routes = {e.route for e in entries}
    assert all(r.partition(" -> ")[2] in called for r in routes), routes


@pytest.fixture
def start_dimse(
    tmp_path: Path, archive: Archive, dimse_audit: AuditLog
) -> Iterator[Callable[..., DimseServer]]:
    """Starts DIMSE servers over the test's archive with settings overridden as given."""
    with audited_dimse(tmp_path, archive, dimse_audit) as start:
        yield start


@pytest.fixture
def dimse(start_dimse: Callable[..., DimseServer]) -> DimseServer:
    return start_dimse()


def address(server: DimseServer) -> list[str]:
    """DCMTK's peer arguments: called AE title, host and port."""
    return ["-aec", AE_TITLE, "127.0.0.1", str(server.port)]
