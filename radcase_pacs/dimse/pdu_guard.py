"""The bytes a DIMSE peer sends, checked PDU header by PDU header before any body is read.

Every PDU starts with a 6-byte header: type, a reserved byte and a 32-bit length (PS3.8
§9.3.1). pynetdicom reads a header, then reads as many bytes as it announces into memory; it
never asks whether the length is plausible, and a peer that stops in the middle of a PDU holds
its reading thread until the socket times out, which, for an accepted socket, is never. So each
accepted connection is a :class:`GuardedSocket` that follows the PDU boundaries in the stream
and ends the connection, with an A-ABORT (PS3.8 §9.3.8, Table 9-26: source DICOM UL
service-provider), on a header that does not fit, before its body is read:

- the first PDU must be an A-ASSOCIATE-RQ (PS3.8 Table 9-10, Sta2: any other PDU is answered
  with A-ABORT, AA-1) of at most :data:`MAX_ASSOCIATE_RQ` bytes, complete within the ARTIM time
  (PS3.8 §9.1.5; ``dimse_artim_timeout``) from the connection;
- every later PDU at most ``dimse_max_pdu`` bytes long: the Maximum Length we announce in the
  A-ASSOCIATE-AC (PS3.8 Annex D.1; the only PDU that can be long is a P-DATA-TF, the others
  are a few bytes), and at most ``dimse_network_timeout`` silent in the middle of a PDU.

A refused connection reads as closed to pynetdicom (the transport connection closed: PS3.8
Evt17), which ends the association with an A-P-ABORT indication, and so gives its slot back.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from dataclasses import dataclass
from enum import IntEnum

from pynetdicom.pdu import A_ABORT_RQ

log = logging.getLogger(__name__)

PDU_HEADER = 6
A_ASSOCIATE_RQ = 0x01
A_ABORT = 0x07
PDU_TYPES = range(0x01, 0x08)
# The largest A-ASSOCIATE-RQ accepted. One holds at most 128 presentation contexts (odd IDs
# 1-255, PS3.8 §9.3.2.2) of UIDs up to 64 bytes: a request proposing 20 transfer syntaxes for
# each of 128 SOP classes is about 200 KB; user identity items add at most 64 KB each.
MAX_ASSOCIATE_RQ = 1024 * 1024
ABORT_SEND_TIMEOUT = 1.0


class AbortReason(IntEnum):
    """PS3.8 Table 9-26: Reason/Diag. of an A-ABORT whose source is the service-provider."""

    UNRECOGNIZED_PDU = 0x01
    UNEXPECTED_PDU = 0x02
    INVALID_PDU_PARAMETER_VALUE = 0x06


@dataclass(frozen=True)
class Refusal:
    """Why a connection is ended; ``reason`` None: closed without an A-ABORT (PS3.8 AA-2, when
    the ARTIM timer expires or the peer itself aborts)."""

    detail: str
    reason: AbortReason | None

    def abort_pdu(self) -> bytes:
        pdu = A_ABORT_RQ()
        pdu.source = 0x02
        pdu.reason_diagnostic = int(self.reason or 0)
        return pdu.encode()


def first_pdu_problem(header: bytes) -> Refusal | None:
    """What is wrong with the header of a connection's first PDU (at least its type byte),
    None when it announces an A-ASSOCIATE-RQ of an acceptable length."""
    pdu_type = header[0]
    if pdu_type not in PDU_TYPES:
        return Refusal(
            f"not a DICOM PDU (first byte 0x{pdu_type:02X})", AbortReason.UNRECOGNIZED_PDU
        )
    if pdu_type == A_ABORT:
        return Refusal("the peer aborted before requesting an association", None)
    if pdu_type != A_ASSOCIATE_RQ:
        return Refusal(
            f"PDU type 0x{pdu_type:02X} before any A-ASSOCIATE-RQ", AbortReason.UNEXPECTED_PDU
        )
    if len(header) < PDU_HEADER:
        return None
    length = int.from_bytes(header[2:PDU_HEADER], "big")
    if length > MAX_ASSOCIATE_RQ:
        return Refusal(
            f"an A-ASSOCIATE-RQ of {length} bytes announced (at most {MAX_ASSOCIATE_RQ})",
            AbortReason.INVALID_PDU_PARAMETER_VALUE,
        )
    return None


def later_pdu_problem(header: bytes, max_pdu: int) -> Refusal | None:
    """What is wrong with the header of a PDU after the A-ASSOCIATE-RQ; ``max_pdu`` 0: any
    length (the Maximum Length announced as 0, PS3.8 Annex D.1: no limit)."""
    pdu_type = header[0]
    if pdu_type not in PDU_TYPES:
        return Refusal(f"not a DICOM PDU (type 0x{pdu_type:02X})", AbortReason.UNRECOGNIZED_PDU)
    length = int.from_bytes(header[2:PDU_HEADER], "big")
    if max_pdu and length > max_pdu:
        return Refusal(
            f"a PDU of {length} bytes announced, more than the {max_pdu} we accept",
            AbortReason.INVALID_PDU_PARAMETER_VALUE,
        )
    return None


RECV_LOW_WATER = 65536
"""Bytes a read inside a PDU body waits for (see :meth:`GuardedSocket._receive`)."""


class PduFraming:
    """Follows the PDU boundaries of a received byte stream and checks each header as it
    completes, before a byte of its body has been taken from the socket."""

    def __init__(self, max_pdu: int) -> None:
        self.max_pdu = max_pdu
        self.pdus = 0
        """PDUs received whole."""
        self._header = bytearray()
        self._body_left: int | None = None
        """Bytes of the current PDU's body still to come; None while in a header."""

    @property
    def in_body(self) -> bool:
        """Whether the next bytes belong to the body of a PDU whose header has arrived."""
        return self._body_left is not None

    def feed(self, data: bytes) -> Refusal | None:
        """Account for ``data``; the refusal of the first header in it that does not fit."""
        at = 0
        while at < len(data):
            if self._body_left is None:
                take = min(PDU_HEADER - len(self._header), len(data) - at)
                self._header += data[at : at + take]
                at += take
                if len(self._header) < PDU_HEADER:
                    continue
                header = bytes(self._header)
                self._header.clear()
                refusal = (
                    first_pdu_problem(header)
                    if self.pdus == 0
                    else later_pdu_problem(header, self.max_pdu)
                )
                if refusal is not None:
                    return refusal
                self._body_left = int.from_bytes(header[2:], "big")
            else:
                take = min(self._body_left, len(data) - at)
                self._body_left -= take
                at += take
            if self._body_left == 0:
                self._body_left = None
                self.pdus += 1
        return None


class GuardedSocket(socket.socket):
    """An accepted DIMSE connection whose received PDUs are checked by :class:`PduFraming`,
    with the first PDU due within the ARTIM time and later ones never stalled mid-PDU for
    longer than the network timeout. Once refused, it reads as closed."""

    _framing: PduFraming
    _deadline: float
    _artim: float
    _network_timeout: float
    _refused: Refusal | None
    peer: str
    accepted_at: float
    """When the connection was accepted (``time.monotonic()``): the ARTIM time runs from it."""

    @classmethod
    def adopt(
        cls, accepted: socket.socket, *, artim: float, network_timeout: float, max_pdu: int
    ) -> GuardedSocket:
        """Take over ``accepted`` (which is left detached); the ARTIM time runs from now."""
        try:
            host, port = accepted.getpeername()[:2]
            peer = f"{host}:{port}"
        except OSError:
            peer = "?"
        sock = cls(accepted.family, accepted.type, accepted.proto, fileno=accepted.detach())
        sock._framing = PduFraming(max_pdu)
        sock._artim = artim
        sock.accepted_at = time.monotonic()
        sock._deadline = sock.accepted_at + artim
        sock._network_timeout = network_timeout
        sock._refused = None
        sock.peer = peer
        return sock

    @property
    def refusal(self) -> Refusal | None:
        return self._refused

    def wait_for_associate_request(self) -> Refusal | None:
        """Wait, within the ARTIM time, for the header of the first PDU without taking it from
        the socket; None when it announces an acceptable A-ASSOCIATE-RQ, else why not. Most
        scanners and broken peers are turned away here, before any association exists."""
        while True:
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                return Refusal(f"no A-ASSOCIATE-RQ within {self._artim:g} s (ARTIM)", None)
            self.settimeout(remaining)
            try:
                head = super().recv(PDU_HEADER, socket.MSG_PEEK)
            except TimeoutError:
                continue
            except OSError as exc:
                return Refusal(f"connection failed: {exc}", None)
            if not head:
                return Refusal("closed before sending anything", None)
            if len(head) == PDU_HEADER or head[0] != A_ASSOCIATE_RQ:
                return first_pdu_problem(head)
            time.sleep(0.01)  # part of a header: the rest is on its way, or ARTIM ends it

    def refuse(self, refusal: Refusal) -> None:
        """Send the refusal's A-ABORT (if any) and shut the connection down."""
        self._refused = refusal
        with contextlib.suppress(OSError):
            if refusal.reason is not None:
                self.settimeout(ABORT_SEND_TIMEOUT)
                self.sendall(refusal.abort_pdu())
        with contextlib.suppress(OSError):
            self.shutdown(socket.SHUT_RDWR)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if self._refused is not None:
            return b""
        if flags:
            return super().recv(bufsize, flags)
        first = self._framing.pdus == 0
        if first:
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                return self._refusing(
                    Refusal(f"A-ASSOCIATE-RQ not complete within {self._artim:g} s", None)
                )
            self.settimeout(remaining)
        try:
            data = self._receive(bufsize)
        except TimeoutError:
            return self._refusing(Refusal("the peer stopped in the middle of a PDU", None))
        refusal = self._framing.feed(data)
        if refusal is not None:
            return self._refusing(refusal)
        if first and self._framing.pdus > 0:
            self.settimeout(self._network_timeout)
        return data

    def _receive(self, bufsize: int) -> bytes:
        """Up to ``bufsize`` bytes; inside a PDU body, only once a good share of them is
        there (``SO_RCVLOWAT``).

        A sender's data set arrives a few kilobytes at a time, and a receiver that takes each
        as it comes made about 130 reads of a 512 KB instance, each a trip through this class
        and pynetdicom's reading loop: a tenth of a C-STORE's CPU. The low-water mark makes
        the kernel wake the read once :data:`RECV_LOW_WATER` bytes (or the rest of the PDU)
        are in. It is set only inside a PDU body, whose remaining length is known, and put
        back to one byte after: the wait for the next PDU header must wake on any byte. A
        peer that sends slowly but steadily is not taken for a silent one: when the network
        timeout passes short of the mark, what did arrive is taken, and only nothing at all
        ends the association."""
        want = min(bufsize, RECV_LOW_WATER) if self._framing.in_body else 1
        if want <= 1:
            return super().recv(bufsize)
        self.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, want)
        try:
            return super().recv(bufsize)
        except TimeoutError:
            self.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)
            timeout = self.gettimeout()
            self.setblocking(False)
            try:
                return super().recv(bufsize)
            except BlockingIOError:
                raise TimeoutError("nothing arrived within the network timeout") from None
            finally:
                self.settimeout(timeout)
        finally:
            self.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)

    def _refusing(self, refusal: Refusal) -> bytes:
        stage = "before association" if self._framing.pdus == 0 else "during its association"
        log.warning("DIMSE connection from %s ended %s: %s", self.peer, stage, refusal.detail)
        self.refuse(refusal)
        return b""
