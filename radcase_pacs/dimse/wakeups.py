"""Association threads that wake when there is work, instead of every millisecond, and read
a PDU in large reads.

pynetdicom runs each association with two threads that poll: the DUL thread checks its socket
and its outgoing queue, sleeping a millisecond whenever both were empty; the association
thread sleeps a millisecond before each look for a complete DIMSE message. On one C-STORE
association that is up to three such sleeps per instance (the data set's last PDU, the
message handed to the handler, the response handed back to the socket), and with several
associations open, every one of their threads wakes a thousand times a second and asks for
the interpreter lock the ingest in progress needs.

For the associations this server accepts, the waits become waits on the events themselves:
- the DUL thread waits in ``select`` on its socket and on a doorbell (an eventfd) that rings
  whenever a primitive is queued for it to send;
- the association thread waits on a flag raised when a DIMSE message or an A-RELEASE or
  A-ABORT reaches it.
Each waits at most :data:`IDLE_WAIT`, so the checks pynetdicom makes between events (the ARTIM
timer, the idle timeout, a killed association) still run, twenty times a second.

Only pynetdicom's queues and its socket's ``ready`` test are replaced, by subclasses that keep
their behaviour and add the wake-up; the state machine and the DIMSE handling are untouched.
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import threading
from typing import TYPE_CHECKING, Any

from pynetdicom import evt
from pynetdicom.transport import AssociationSocket

if TYPE_CHECKING:
    from pynetdicom.association import Association

IDLE_WAIT = 0.05
"""Longest wait for an event, in seconds: how late pynetdicom's periodic checks may run."""


class Doorbell:
    """An eventfd that other threads ring and the DUL thread waits on with its socket. Rung
    after :meth:`close`, it does nothing (its descriptor number may belong to a new file)."""

    def __init__(self) -> None:
        self._fd: int | None = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._lock = threading.Lock()

    def fileno(self) -> int:
        if self._fd is None:
            raise ValueError("the doorbell is closed")
        return self._fd

    def ring(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.eventfd_write(self._fd, 1)

    def clear(self) -> None:
        with self._lock:
            if self._fd is not None:
                with contextlib.suppress(BlockingIOError):  # not rung
                    os.eventfd_read(self._fd)

    def close(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


class RingingQueue(queue.Queue[Any]):
    """A queue whose every put rings ``ring`` (a doorbell's or a flag's)."""

    def __init__(self, ring: Any) -> None:
        super().__init__()
        self._ring = ring

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        self._ring()


class WaitingQueue(RingingQueue):
    """The DIMSE message queue: a non-blocking get, pynetdicom's poll, waits up to
    :data:`IDLE_WAIT` for ``flag`` (raised by this queue's puts and by those of the queue of
    A-RELEASE and A-ABORT primitives) before it answers that the queue is empty."""

    def __init__(self, flag: threading.Event) -> None:
        super().__init__(flag.set)
        self._flag = flag

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        if block:
            return super().get(block, timeout)
        try:
            return super().get(block=False)
        except queue.Empty:
            # Cleared after the wait, not before: whatever was put before the clear is in its
            # queue for this get or the reactor's next checks, and whatever comes after it
            # raises the flag again for the next wait.
            self._flag.wait(IDLE_WAIT)
            self._flag.clear()
            return super().get(block=False)


class WakingSocket(AssociationSocket):
    """pynetdicom's socket wrapper, whose readiness test waits for the socket or the
    doorbell instead of answering at once."""

    doorbell: Doorbell

    @property
    def ready(self) -> bool:
        sock = self.socket
        if sock is None or self._is_connected is False:
            return False
        waited: list[Any] = [sock, self.doorbell]
        try:
            readable, _, _ = select.select(waited, [], [], IDLE_WAIT)
        except (OSError, ValueError):
            # As pynetdicom's own test: the connection is gone (Evt17).
            self.event_queue.put("Evt17")
            return False
        if self.doorbell in readable:
            self.doorbell.clear()
        return sock in readable

    def recv(self, nr_bytes: int) -> bytearray:
        """``nr_bytes`` (the rest of a PDU), or what arrived before the connection closed.

        pynetdicom reads a PDU 4 KB at a time, about 130 reads of a 512 KB instance, each a
        trip through Python and two system calls; here each read asks for everything still
        missing, and the socket (:class:`radcase_pacs.dimse.pdu_guard.GuardedSocket`) waits
        for a good share of it to be there."""
        sock = self.socket
        assert sock is not None
        received = bytearray()
        while len(received) < nr_bytes:
            data = sock.recv(nr_bytes - len(received))
            if not data:
                break
            received += data
        return received


def wake_on_work(assoc: Association) -> None:
    """Make an acceptor association, not yet started, wait on events instead of polling."""
    doorbell = Doorbell()
    socket = assoc.dul.socket
    assert socket is not None and type(socket) is AssociationSocket
    socket.__class__ = WakingSocket
    socket.doorbell = doorbell  # type: ignore[attr-defined]
    assoc.dul._run_loop_delay = 0
    assoc.dul.to_provider_queue = RingingQueue(doorbell.ring)
    flag = threading.Event()
    assoc.dimse.msg_queue = WaitingQueue(flag)
    assoc.dul.to_user_queue = RingingQueue(flag.set)
    assoc.bind(evt.EVT_CONN_CLOSE, lambda event: doorbell.close())
