"""Graceful shutdown of ``serve`` (radcase_pacs.drain): on SIGTERM the health check turns
unready at once while everything is still served, the listeners close after the drain delay,
the work in flight finishes (an upload, the C-STORE under way at the deadline), idle DIMSE
associations are aborted at the deadline, and the process exits 0 within its bounds."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE
from starlette.types import Message, Receive, Scope, Send
from uvicorn import Config

from radcase_pacs.deployment import open_deployment
from radcase_pacs.drain import EXIT_MARGIN, Drain, DrainingServer, HeadWithBody, behind_balancer
from radcase_pacs.settings import Settings
from tests.factories import free_port, make_instance, multipart_body, to_bytes
from tests.serving import ROOT

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
DELAY = 1.5
SERVE = [sys.executable, "-m", "radcase_pacs", "serve"]
GRACE = 3.0


# -- the clock and the signals, in this process --------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_sigterm_starts_the_delay_and_sigint_cuts_it_short() -> None:
    clock = FakeClock()
    drain = Drain(5.0, 20.0, clock)
    assert not drain.draining and not drain.listeners_due()
    drain.begin()
    assert drain.draining and not drain.listeners_due()
    assert drain.until_listeners_close() == 5.0 and drain.deadline == 125.0
    clock.now += 2
    drain.begin()  # a repeated SIGTERM changes nothing
    assert drain.until_listeners_close() == 3.0
    drain.begin(wait=False)
    assert drain.listeners_due() and drain.deadline == 122.0
    clock.now += 30
    assert drain.remaining() == 0.0


def test_a_second_interrupt_once_closed_stops_waiting_unless_a_supervisor_decides() -> None:
    for forced_here in (True, False):
        drain = Drain(5.0, 20.0)
        server = DrainingServer(Config(app=None), drain, force_on_interrupt=forced_here)
        server.handle_exit(signal.SIGTERM, None)
        assert drain.draining and not drain.listeners_due() and not server.should_exit
        server.handle_exit(signal.SIGINT, None)  # the operator is in a hurry: close now
        assert drain.listeners_due() and not server.force_exit
        server.should_exit = True  # what the next tick of the server loop does
        server.handle_exit(signal.SIGINT, None)
        assert server.force_exit is forced_here


def test_an_answer_leaves_with_its_first_body_part_and_says_close_once_draining() -> None:
    drain = Drain(5.0, 20.0)
    events: list[str] = []
    heads: list[list[tuple[bytes, bytes]]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        events.append("app sent its head")
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send({"type": "http.response.body", "body": b"b"})

    async def send(message: Message) -> None:
        events.append(message["type"])
        if message["type"] == "http.response.start":
            heads.append(list(message["headers"]))

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    served = behind_balancer(app, drain)
    asyncio.run(served({"type": "http"}, receive, send))
    assert events == [
        "app sent its head",
        "http.response.start",
        "http.response.body",
        "http.response.body",
    ]
    drain.begin()
    asyncio.run(served({"type": "http"}, receive, send))
    assert heads == [[], [(b"connection", b"close")]]


def test_an_app_failing_after_its_head_has_sent_nothing_so_the_server_answers_500() -> None:
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("the stream broke before its first chunk")

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    with pytest.raises(RuntimeError):
        asyncio.run(HeadWithBody(app)({"type": "http"}, receive, send))
    assert sent == []


# -- the listener's close, in this process -------------------------------------------------

POST = b"POST /store HTTP/1.1\r\nHost: test\r\nContent-Length: 4\r\n\r\nbody"


async def holding_app(scope: Scope, receive: Receive, send: Send) -> None:
    """``/hold`` keeps the server's event loop busy (nothing is accepted or read meanwhile);
    anything else reads its body and answers 200."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/hold":
        time.sleep(0.8)
    else:
        while (await receive()).get("more_body"):
            pass
    headers = [(b"content-length", b"6")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"stored"})


def _answer(conn: socket.socket) -> bytes:
    received = b""
    try:
        while chunk := conn.recv(65536):
            received += chunk
    except OSError as exc:  # a reset: the request was lost
        return f"{type(exc).__name__}".encode()
    return received


def test_connections_made_before_the_listener_closes_are_served_not_reset() -> None:
    """Connections whose handshake completed before the close: some wait in the accept queue
    (the loop is busy), one was accepted and sends its request only afterwards. Each is
    answered; after the close a new connection is refused."""
    port = free_port()
    drain = Drain(0.3, 5.0)
    app = behind_balancer(holding_app, drain)
    config = Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="error")
    server = DrainingServer(config, drain)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.01)
    late = socket.create_connection(("127.0.0.1", port), timeout=10)
    holder = socket.create_connection(("127.0.0.1", port), timeout=10)
    holder.sendall(b"GET /hold HTTP/1.1\r\nHost: test\r\n\r\n")
    time.sleep(0.2)  # the loop is now held, past the moment the listener is due to close
    drain.begin()
    queued = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(3)]
    for conn in queued:
        conn.sendall(POST)
    time.sleep(0.7)
    late.sendall(POST)
    answers = [_answer(conn) for conn in (*queued, late)]
    thread.join(timeout=10)
    assert not thread.is_alive()
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"stored"), answer
        assert b"connection: close" in answer.lower()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    for conn in (*queued, late, holder):
        conn.close()


# -- a real server process -----------------------------------------------------------------


def _environment(data: Path, dimse_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADCASE_")}
    return env | {
        "RADCASE_AUTH": "off",
        "RADCASE_DATA_DIR": str(data),
        "RADCASE_DIMSE_PORT": str(dimse_port),
        "RADCASE_DIMSE_MAX_PDU": "16384",  # a 1 MB data set arrives in 64 PDUs
        "RADCASE_SHUTDOWN_DRAIN_SECONDS": str(DELAY),
        "RADCASE_SHUTDOWN_GRACE_SECONDS": str(GRACE),
        "RADCASE_SWEEP_INTERVAL_SECONDS": "0",
        "RADCASE_LOG_LEVEL": "info",
    }


def _start(data: Path, workers: int, dimse_port: int = 0) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [*SERVE, "--port", str(port), "--workers", str(workers)],
        cwd=ROOT,
        env=_environment(data, dimse_port),
        stdout=(data.parent / "server.log").open("ab"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return process, base
        except httpx.TransportError:
            pass
        assert process.poll() is None, "the server exited"
        assert time.monotonic() < deadline, "the server did not come up"
        time.sleep(0.1)


@pytest.fixture
def ended() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Servers a test started, killed if the test left them running."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


class SlowUpload(threading.Thread):
    """A STOW-RS request whose body trickles in for ``seconds``: in flight when the listeners
    close."""

    def __init__(self, base: str, seconds: float) -> None:
        super().__init__()
        self.ds = make_instance(rows=64, columns=64)
        self.base, self.seconds = base, seconds
        self.status: int | None = None

    def run(self) -> None:
        body, content_type = multipart_body([to_bytes(self.ds)])
        pieces = 10
        size = len(body) // pieces + 1

        def trickle() -> Iterator[bytes]:
            for start in range(0, len(body), size):
                yield body[start : start + size]
                time.sleep(self.seconds / pieces)

        answer = httpx.post(
            f"{self.base}/dicomweb/studies",
            content=trickle(),
            headers={"Content-Type": content_type, "Accept": "application/dicom+json"},
            timeout=30,
        )
        self.status = answer.status_code


def _refused(base: str) -> bool:
    try:
        httpx.get(f"{base}/healthz", timeout=2)
    except httpx.ConnectError:
        return True
    return False


def _wait_until(instant: float) -> None:
    time.sleep(max(0.0, instant - time.monotonic()))


def _check_unready_but_serving(base: str) -> None:
    """Once the signal has reached the server (a moment; a worker hears it from its
    supervisor), the health check is unready in every process, and the rest still served."""
    deadline = time.monotonic() + DELAY / 2
    while httpx.get(f"{base}/healthz", timeout=5).status_code != 503:
        assert time.monotonic() < deadline, "/healthz still ready after the signal"
        time.sleep(0.02)
    for _ in range(4):  # new connections, whichever process takes each
        health = httpx.get(f"{base}/healthz", timeout=5)
        assert health.status_code == 503 and health.json() == {"status": "draining"}
    served = httpx.get(f"{base}/dicomweb/studies", timeout=5)
    assert served.status_code == 200
    assert served.headers["connection"] == "close"


def _association(port: int) -> Any:
    ae = AE(ae_title="DRAINTEST")
    ae.add_requested_context(CT_IMAGE_STORAGE, ExplicitVRLittleEndian)
    return ae.associate("127.0.0.1", port, ae_title="RADCASE")


def _dimse_refused(port: int) -> bool:
    """Whether new associations are refused, within a second (the listener's loop notices
    its shutdown within half a second)."""
    deadline = time.monotonic() + 1.0
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def _slowed(assoc: Any, pause: float) -> None:
    """Each PDU this association sends waits ``pause`` first: a slow network."""
    sock = assoc.dul.socket
    send = sock.send

    def slow_send(data: bytes) -> None:
        time.sleep(pause)
        send(data)

    sock.send = slow_send


@pytest.mark.e2e
def test_sigterm_drains_http_and_dimse_then_exits_cleanly(
    tmp_path: Path, ended: list[subprocess.Popen[bytes]]
) -> None:
    dimse_port = free_port()
    process, base = _start(tmp_path / "data", 1, dimse_port)
    ended.append(process)
    idle, slow = _association(dimse_port), _association(dimse_port)
    assert idle.is_established and slow.is_established
    upload = SlowUpload(base, DELAY + 1.0)
    upload.start()
    time.sleep(0.2)

    process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    _check_unready_but_serving(base)
    during_delay = make_instance()
    assert idle.send_c_store(during_delay).Status == 0x0000

    _wait_until(signalled + DELAY + 0.5)
    assert _refused(base), "the HTTP listener still accepts after the drain delay"
    assert _dimse_refused(dimse_port), "the DIMSE listener still accepts"
    after_close = make_instance()
    assert idle.send_c_store(after_close).Status == 0x0000  # open associations go on

    # A C-STORE whose 1 MB data set is still arriving at the deadline is stored and answered.
    big = make_instance(rows=512, columns=512, frames=2)
    _slowed(slow, 0.04)  # 64 PDUs: about two and a half seconds
    _wait_until(signalled + DELAY + GRACE - 1.2)
    assert slow.send_c_store(big).Status == 0x0000
    upload.join(timeout=10)
    assert upload.status == 200, "the upload in flight when the listeners closed"

    assert process.wait(timeout=DELAY + GRACE + EXIT_MARGIN + 5) == 0
    took = time.monotonic() - signalled
    assert took < DELAY + GRACE + EXIT_MARGIN, took
    assert idle.is_aborted, "the idle association was not aborted at the deadline"
    assert slow.is_aborted or not slow.is_established
    settings = Settings(data_dir=tmp_path / "data", auth="off")
    with open_deployment(settings) as deployment:
        for ds in (during_delay, after_close, big, upload.ds):
            assert deployment.clinical.stored(str(ds.SOPInstanceUID)) is not None


@pytest.mark.e2e
def test_two_workers_drain_together_and_the_port_is_refused_not_left_hanging(
    tmp_path: Path, ended: list[subprocess.Popen[bytes]]
) -> None:
    process, base = _start(tmp_path / "data", 2)
    ended.append(process)
    upload = SlowUpload(base, DELAY + 1.0)
    upload.start()
    time.sleep(0.2)

    process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    _check_unready_but_serving(base)
    _wait_until(signalled + DELAY + 0.5)
    assert _refused(base), "the port still accepts (or hangs) after the drain delay"
    upload.join(timeout=10)
    assert upload.status == 200
    assert process.wait(timeout=DELAY + GRACE + EXIT_MARGIN + 5) == 0
    assert time.monotonic() - signalled < DELAY + GRACE + EXIT_MARGIN
