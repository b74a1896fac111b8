"""Port scanners and broken peers on the DIMSE port: connections that send garbage, announce a
huge PDU, say nothing or close at once never hold an association slot, are closed within the
ARTIM time (PS3.8 §9.1.5) or at once, and a real modality (DCMTK's echoscu and storescu)
associates beside them as if they were not there. Associations, not connections, count
against the limit, with a share per calling address."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from radcase_pacs.dimse.pdu_guard import (
    MAX_ASSOCIATE_RQ,
    AbortReason,
    GuardedSocket,
    PduFraming,
    first_pdu_problem,
)
from radcase_pacs.dimse.server import DimseServer
from storage.archive import Archive
from tests.factories import make_instance, to_bytes
from tests.radcase_pacs.dimse.conftest import address, run

ARTIM = 2.0
# What scanners and broken peers send first: an HTTP request, a TLS ClientHello, zeros, a
# telnet-style probe, an A-ASSOCIATE-RQ header announcing 4 GiB and one just over the
# largest request accepted, and a P-DATA-TF of 2 GiB before any association.
GARBAGE = [
    b"GET / HTTP/1.1\r\nHost: pacs\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32),
    bytes(64),
    b"\r\n\r\n",
]
HUGE = [
    b"\x01\x00\xff\xff\xff\xff" + b"\x00\x01" * 16,
    b"\x01\x00" + (MAX_ASSOCIATE_RQ + 1).to_bytes(4, "big"),
    b"\x04\x00\x7f\xff\xff\xff" + bytes(64),
]


def abort_reason(received: bytes) -> int | None:
    """The Reason/Diag. of the A-ABORT PDU ``received`` starts with (PS3.8 Table 9-26)."""
    if len(received) >= 10 and received[0] == 0x07:
        assert received[8] == 0x02, "source: the DICOM UL service-provider"
        return received[9]
    return None


def until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Everything the server sends before closing, and when it closed (monotonic time)."""
    sock.settimeout(timeout)
    received = b""
    while True:
        try:
            chunk = sock.recv(4096)
        except ConnectionResetError:
            break
        if not chunk:
            break
        received += chunk
    return received, time.monotonic()


@contextmanager
def hostile_connections(port: int, count: int) -> Iterator[list[tuple[str, socket.socket]]]:
    """``count`` connections of every kind, in turn: garbage then kept open, a huge PDU then
    kept open, silent, and connect-then-close (not returned: nothing to watch)."""
    with ExitStack() as stack:
        kept: list[tuple[str, socket.socket]] = []
        for i in range(count):
            sock = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5))
            match i % 4:
                case 0:
                    sock.sendall(GARBAGE[i // 4 % len(GARBAGE)])
                    kept.append(("garbage", sock))
                case 1:
                    sock.sendall(HUGE[i // 4 % len(HUGE)])
                    kept.append(("huge", sock))
                case 2:
                    kept.append(("silent", sock))
                case _:
                    sock.close()
        yield kept


@pytest.fixture
def guarded(start_dimse: Callable[..., DimseServer]) -> DimseServer:
    return start_dimse(dimse_artim_timeout=ARTIM, dimse_max_associations=4)


@dataclass
class Served:
    """One association as the server lived it: from the TCP connection's acceptance to the
    A-ASSOCIATE-AC and to the release, in seconds."""

    accepted: float = float("nan")
    released: float = float("nan")


def served_associations(server: DimseServer) -> dict[str, Served]:
    """Per calling AE title, its association's timings, filled in as they happen."""
    timings: dict[str, Served] = {}

    def since_connected(event: evt.Event) -> tuple[str, float]:
        sock = event.assoc.dul.socket.socket
        assert isinstance(sock, GuardedSocket)
        return str(event.assoc.requestor.ae_title).strip(), time.monotonic() - sock.accepted_at

    def accepted(event: evt.Event) -> None:
        title, seconds = since_connected(event)
        timings.setdefault(title, Served()).accepted = seconds

    def released(event: evt.Event) -> None:
        title, seconds = since_connected(event)
        timings.setdefault(title, Served()).released = seconds

    assert server._server is not None
    server._server.bind(evt.EVT_ACCEPTED, accepted)
    server._server.bind(evt.EVT_RELEASED, released)
    return timings


@pytest.mark.e2e
def test_a_modality_associates_within_a_second_beside_a_hundred_hostile_connections(
    guarded: DimseServer, archive: Archive, tmp_path: Path
) -> None:
    instance = make_instance()
    path = tmp_path / "ct.dcm"
    path.write_bytes(to_bytes(instance))
    timings = served_associations(guarded)
    with hostile_connections(guarded.port, 100) as kept:
        opened = time.monotonic()
        echo = run("echoscu", "-aet", "MODALITY1", *address(guarded), timeout=30)
        store = run("storescu", "-aet", "MODALITY2", *address(guarded), str(path), timeout=30)
        ran = time.monotonic() - opened
        assert echo.returncode == 0, echo.stderr
        assert store.returncode == 0, store.stderr
        assert archive.stored(instance.SOPInstanceUID) is not None
        # Measured at the server, from the TCP connection's acceptance: the C-ECHO's and the
        # C-STORE's associations accepted, served and released within a second. (The tools'
        # own run time adds their start-up, which a loaded machine stretches: bounded loosely,
        # to show that nothing waited for a timeout.)
        for title in ("MODALITY1", "MODALITY2"):
            served = timings[title]
            assert served.accepted < 1.0, f"{title} accepted after {served.accepted:.2f} s"
            assert served.released < 1.0, f"{title} released after {served.released:.2f} s"
        assert ran < 10, f"echoscu and storescu took {ran:.2f} s"

        # Garbage and huge PDUs were answered with an A-ABORT and closed at once; silent
        # connections are closed when the ARTIM time ends (PS3.8 Table 9-10, AA-1 and AA-2).
        for kind, sock in kept:
            received, closed = until_closed(sock, timeout=ARTIM + 10)
            if kind == "garbage":
                assert abort_reason(received) in (AbortReason.UNRECOGNIZED_PDU,), received
            elif kind == "huge":
                assert abort_reason(received) in (
                    AbortReason.INVALID_PDU_PARAMETER_VALUE,
                    AbortReason.UNEXPECTED_PDU,
                ), received
            else:
                assert received == b""
                lasted = closed - opened
                assert lasted < ARTIM + 5, f"a silent connection lasted {lasted:.1f} s"
    assert guarded.slots.in_use() == 0


def _associate(server: DimseServer, calling: str, source: str = "127.0.0.1") -> Association:
    ae = AE(ae_title=calling)
    ae.add_requested_context(Verification)
    return ae.associate("127.0.0.1", server.port, ae_title="RADCASE", bind_address=(source, 0))


def _wait(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_the_limit_counts_associations_not_connections(guarded: DimseServer) -> None:
    with hostile_connections(guarded.port, 40):
        held = [_associate(guarded, f"MOD{i}") for i in range(4)]
        assert all(a.is_established for a in held)
        assert guarded.slots.in_use() == 4
        fifth = _associate(guarded, "MOD5")
        assert fifth.is_rejected
        # PS3.8 Table 9-21: rejected-transient, service-provider (presentation), local limit.
        rejection = fifth.acceptor.primitive
        assert rejection is not None
        assert (rejection.result, rejection.result_source, rejection.diagnostic) == (2, 3, 2)
        held[0].release()
        assert _wait(lambda: guarded.slots.in_use() == 3, 5)
        again = _associate(guarded, "MOD5")
        assert again.is_established
        for assoc in [*held[1:], again]:
            assoc.release()
    assert _wait(lambda: guarded.slots.in_use() == 0, 5)


def test_one_address_cannot_take_every_slot(start_dimse: Callable[..., DimseServer]) -> None:
    server = start_dimse(dimse_max_associations=4, dimse_max_associations_per_address=2)
    mine = [_associate(server, f"GW{i}") for i in range(2)]
    assert all(a.is_established for a in mine)
    assert _associate(server, "GW3").is_rejected
    other = _associate(server, "MODALITY", source="127.0.0.2")
    assert other.is_established, "another address keeps its share"
    for assoc in [*mine, other]:
        assoc.release()


def test_an_aborted_or_dropped_association_gives_its_slot_back_at_once(
    guarded: DimseServer,
) -> None:
    aborted = _associate(guarded, "ABORTS")
    dropped = _associate(guarded, "DROPS")
    assert guarded.slots.in_use() == 2
    aborted.abort()
    dropped.dul.socket.socket.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]  # gone
    assert _wait(lambda: guarded.slots.in_use() == 0, 2)


def test_a_huge_pdu_during_an_association_is_aborted_before_its_body_is_read(
    start_dimse: Callable[..., DimseServer],
) -> None:
    server = start_dimse(dimse_max_pdu=16384, dimse_network_timeout=60)
    assoc = _associate(server, "BIGPDU")
    assert assoc.is_established
    sent = time.monotonic()
    # A P-DATA-TF announcing 4 GiB, and not one byte of it: reading the body would wait for
    # the network timeout (60 s); the server answers the header alone.
    assoc.dul.socket.socket.sendall(b"\x04\x00\xff\xff\xff\xff")  # type: ignore[union-attr]
    assert _wait(lambda: assoc.is_aborted, 5), "no A-ABORT"
    assert time.monotonic() - sent < 5
    assert _wait(lambda: server.slots.in_use() == 0, 2)
    # A PDU of exactly the announced maximum is fine: C-ECHO on a fresh association.
    again = _associate(server, "AFTER")
    assert again.send_c_echo().Status == 0x0000
    again.release()


def test_a_request_trickled_past_the_artim_time_is_closed(guarded: DimseServer) -> None:
    with socket.create_connection(("127.0.0.1", guarded.port), timeout=5) as sock:
        opened = time.monotonic()
        sock.sendall(b"\x01\x00\x00\x00\x01\x00" + bytes(10))  # 256 bytes announced, 10 sent
        received, closed = until_closed(sock, timeout=ARTIM + 10)
    assert received == b""
    assert ARTIM - 0.5 < closed - opened < ARTIM + 5
    assert guarded.slots.in_use() == 0


def test_an_association_still_works_after_the_hostile_ones_are_gone(
    guarded: DimseServer,
) -> None:
    with hostile_connections(guarded.port, 20) as kept:
        for _, sock in kept:
            sock.close()
    assoc = _associate(guarded, "LATER")
    assert assoc.send_c_echo().Status == 0x0000
    assoc.release()


@pytest.mark.parametrize(
    ("chunks", "max_pdu", "refused"),
    [
        ([b"\x01\x00\x00\x00\x00\x02ab", b"\x04\x00\x00\x00\x00\x03xyz"], 3, None),
        ([b"\x01\x00\x00", b"\x00\x00\x02a", b"b\x04\x00\x00\x00", b"\x00\x04"], 3, "4 bytes"),
        ([b"\x01\x00\x00\x00\x00\x00", b"\x09\x00\x00\x00\x00\x00"], 0, "type 0x09"),
        ([b"\x05\x00\x00\x00\x00\x04"], 0, "before any A-ASSOCIATE-RQ"),
        ([b"\x01\x00\x00\x00\x00\x01x", b"\x04\x00\xff\xff\xff\xff"], 0, None),
    ],
)
def test_framing_checks_each_header_wherever_the_stream_splits_it(
    chunks: list[bytes], max_pdu: int, refused: str | None
) -> None:
    framing = PduFraming(max_pdu)
    refusals = [r for r in (framing.feed(chunk) for chunk in chunks) if r is not None]
    if refused is None:
        assert refusals == []
    else:
        assert len(refusals) == 1 and refused in refusals[0].detail


def test_a_first_header_is_judged_by_its_type_before_its_length_arrives() -> None:
    assert first_pdu_problem(b"G") is not None
    assert first_pdu_problem(b"\x01\x00") is None
    abort = first_pdu_problem(b"\x07\x00\x00\x00\x00\x04")
    assert abort is not None and abort.reason is None  # PS3.8 AA-2: closed, nothing sent
