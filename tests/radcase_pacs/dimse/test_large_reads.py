"""Inside a PDU body, a read waits for a good share of the rest of the PDU rather than taking
each few kilobytes as they come; a sender that is slow but not silent is still read, and a
silent one still ends the association after the network timeout."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from radcase_pacs.dimse.pdu_guard import RECV_LOW_WATER, GuardedSocket

BODY = 200_000
NETWORK_TIMEOUT = 0.5


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, GuardedSocket]]:
    """A sender and our guarded end of one loopback connection, past a (short) A-ASSOCIATE-RQ
    and the header of a P-DATA-TF of BODY bytes, so that the next read is inside its body."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        sender = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
    guarded = GuardedSocket.adopt(accepted, artim=5, network_timeout=NETWORK_TIMEOUT, max_pdu=0)
    sender.sendall(b"\x01\x00" + (4).to_bytes(4, "big") + b"\x00" * 4)
    assert guarded.recv(6) + guarded.recv(4) == b"\x01\x00" + (4).to_bytes(4, "big") + b"\x00" * 4
    sender.sendall(b"\x04\x00" + BODY.to_bytes(4, "big"))
    assert guarded.recv(6) == b"\x04\x00" + BODY.to_bytes(4, "big")
    yield sender, guarded
    sender.close()
    guarded.close()


def _later(seconds: float, action: object) -> None:
    def run() -> None:
        time.sleep(seconds)
        action()  # type: ignore[operator]

    threading.Thread(target=run, daemon=True).start()


def test_a_read_in_a_body_waits_for_the_low_water_mark(
    pair: tuple[socket.socket, GuardedSocket],
) -> None:
    sender, guarded = pair
    sender.sendall(b"a" * 4096)
    _later(0.05, lambda: sender.sendall(b"b" * (BODY - 4096)))
    first = guarded.recv(BODY)
    assert len(first) >= RECV_LOW_WATER  # not the 4 KB that came first
    assert first.startswith(b"a" * 4096)


def test_a_slow_sender_is_read_and_a_silent_one_is_ended(
    pair: tuple[socket.socket, GuardedSocket],
) -> None:
    sender, guarded = pair
    sender.sendall(b"c" * 1000)  # then nothing more
    assert guarded.recv(BODY) == b"c" * 1000  # taken once the network timeout passed
    assert guarded.recv(BODY) == b""  # silent for a whole timeout: refused
    assert guarded.refusal is not None
    assert "stopped in the middle of a PDU" in guarded.refusal.detail


def test_the_next_pdu_header_is_read_as_soon_as_it_arrives(
    pair: tuple[socket.socket, GuardedSocket],
) -> None:
    """Past the body the mark is one byte again: a short PDU is never left waiting."""
    sender, guarded = pair
    sender.sendall(b"d" * BODY)
    received = 0
    while received < BODY:
        received += len(guarded.recv(BODY - received))
    release = b"\x05\x00" + (4).to_bytes(4, "big") + b"\x00" * 4  # A-RELEASE-RQ
    sender.sendall(release)
    guarded.settimeout(NETWORK_TIMEOUT)
    assert guarded.recv(6) == release[:6]
    assert guarded.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT) == 1
