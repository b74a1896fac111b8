"""A client-side deadline on database connections: the socket of a connection still waiting
for its server past its deadline is shut down, so the waiting call fails at once.

Why the server's own ``statement_timeout`` is not enough: it is a timer in the server
process. A server that is frozen (stopped, swapped out, cut off behind a firewall that drops
packets) runs no timer and sends nothing, while the kernel keeps acknowledging our packets,
so neither TCP keepalives nor ``tcp_user_timeout`` notice anything; psycopg then waits on
the socket forever, holding a worker thread and a pooled connection. Only the client can end
that wait, and shutting the socket down (``shutdown(2)``, not ``close``: the descriptor stays
the driver's) is what wakes a thread blocked on it, from another thread.

One thread per database watches every connection it lends out; arming and disarming cost a
lock and a dictionary entry, so every statement can afford it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger(__name__)


class HasSocket(Protocol):
    """What the watchdog needs of a connection: the descriptor of its socket."""

    def fileno(self) -> int: ...


@dataclass(eq=False)
class Watch:
    """One armed deadline; ``expired`` tells the caller its wait was cut short by it."""

    deadline: float
    connection: HasSocket
    expired: bool = field(default=False)


class Watchdog:
    def __init__(self, name: str) -> None:
        self.name = name
        self._watches: set[Watch] = set()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def start(self) -> None:
        with self._wake:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(
                target=self._run, name=f"watchdog {self.name}", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        with self._wake:
            thread, self._thread = self._thread, None
            self._stopping = True
            self._wake.notify()
        if thread is not None:
            thread.join(timeout=5)

    @contextmanager
    def watching(self, connection: HasSocket, seconds: float) -> Iterator[Watch]:
        """Arm a deadline ``seconds`` from now on ``connection`` for the block's duration."""
        watch = Watch(time.monotonic() + seconds, connection)
        with self._wake:
            self._watches.add(watch)
            self._wake.notify()
        try:
            yield watch
        finally:
            with self._wake:
                self._watches.discard(watch)

    def _run(self) -> None:
        with self._wake:
            while not self._stopping:
                now = time.monotonic()
                for watch in [w for w in self._watches if w.deadline <= now]:
                    # Still armed, so the connection is still lent out and its descriptor
                    # still its own: the block that armed it disarms before giving it back.
                    self._watches.discard(watch)
                    watch.expired = True
                    _cut(watch.connection, self.name)
                upcoming = min((w.deadline for w in self._watches), default=None)
                self._wake.wait(None if upcoming is None else max(0.0, upcoming - now))


def _cut(connection: HasSocket, name: str) -> None:
    try:
        fd = connection.fileno()
        # A descriptor of our own for the same socket: closing it leaves the driver's open.
        with socket.socket(fileno=os.dup(fd)) as duplicate:
            duplicate.shutdown(socket.SHUT_RDWR)
    except OSError as exc:  # already closed: the wait it guarded is over anyway
        log.debug("%s: the socket of an overdue connection could not be shut: %s", name, exc)
        return
    log.warning("%s did not answer in time: the connection was cut", name)
