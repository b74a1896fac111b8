"""Graceful shutdown of ``radcase-pacs serve``, in the order a load balancer needs.

On SIGTERM (a service manager's stop, one step of a rolling restart):

1. At once the process is *draining*: ``/healthz`` answers 503 ``{"status": "draining"}``
   and every response carries ``Connection: close``, while every request is still served.
   A balancer that polls the health check takes the instance out of rotation; one that keeps
   connections open to it (nginx's upstream ``keepalive``) sees each closed after its next
   answer, and closes the idle ones itself (its keepalive timeout being shorter than the
   delay), so none is left to be reused at the moment the listener closes.
2. After ``shutdown_drain_seconds`` the listeners close (HTTP and DIMSE): a new connection is
   refused, which a balancer retries on another instance whatever the method, since nothing
   of the request was sent. The HTTP listener first stops taking connections and serves
   those already made, in its accept queue or not yet past their request's head
   (:mod:`radcase_pacs.listener_close`): closed under them, they would be reset with their
   request sent, which a balancer cannot retry for a POST.
3. The requests in flight finish and the open DIMSE associations end
   (:mod:`radcase_pacs.dimse.drain`) within ``shutdown_grace_seconds``; what is left then is
   cut, the stores are closed and the process exits with status 0.

A process that dies instead (SIGKILL, a crash) fails what it was serving; the balancer can
send a request elsewhere only while nothing of its answer has reached it, which
:class:`HeadWithBody` makes last as long as possible.

SIGINT (Ctrl+C at a terminal) skips the wait of step 1 (an operator at a terminal wants the
server gone, not a balancer told); in a single-process server a second SIGINT once the
listeners are closed stops waiting for the requests in flight, as uvicorn's own message says
("CTRL+C to force quit").
"""

from __future__ import annotations

import asyncio
import logging
import math
import signal
import socket
import time
from collections.abc import Callable
from types import FrameType

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from radcase_pacs.listener_close import take_in
from radcase_pacs.settings import Settings

log = logging.getLogger(__name__)

EXIT_MARGIN = 5.0
"""Seconds beyond the grace period a process may still take to exit: cutting what is left,
letting a DIMSE operation that was under way at the deadline send its response, closing the
stores. A supervisor kills a worker that has not exited by then."""


class Drain:
    """One process's shutdown clock: whether it is draining, when its listeners close and
    until when the work in flight may go on. Set from the signal handler, read by the health
    check, the server loop and the DIMSE listener (plain attribute reads, safe across threads).
    """

    def __init__(
        self, delay: float, grace: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.delay = delay
        self.grace = grace
        self.clock = clock
        self._close_at: float | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Drain:
        return cls(settings.shutdown_drain_seconds, settings.shutdown_grace_seconds)

    @property
    def draining(self) -> bool:
        return self._close_at is not None

    def begin(self, *, wait: bool = True) -> None:
        """Start draining; the listeners close after ``delay`` seconds, or now when ``wait``
        is false. Again while draining: only ``wait=False`` changes anything (it brings the
        closing forward to now)."""
        now = self.clock()
        if self._close_at is None:
            self._close_at = now + (self.delay if wait else 0.0)
            log.info(
                "draining: /healthz answers 503, the listeners close in %.1f s",
                self._close_at - now,
            )
        elif not wait and self._close_at > now:
            self._close_at = now

    def listeners_due(self) -> bool:
        """Whether the listeners should be closed by now."""
        return self._close_at is not None and self.clock() >= self._close_at

    def until_listeners_close(self) -> float:
        """Seconds left before the listeners close (0 when due or not draining)."""
        if self._close_at is None:
            return 0.0
        return max(0.0, self._close_at - self.clock())

    @property
    def deadline(self) -> float:
        """The ``clock()`` instant past which the work in flight is cut; the grace period
        from now when not draining (a server stopping for another reason)."""
        start = self._close_at if self._close_at is not None else self.clock()
        return start + self.grace

    def remaining(self) -> float:
        """Seconds left until :attr:`deadline`, at least 0."""
        return max(0.0, self.deadline - self.clock())


class CloseWhileDraining:
    """ASGI wrapper: once draining, every HTTP response says ``Connection: close`` (RFC 9112
    §9.6), so that the client (a balancer's pooled connection) opens its next connection
    elsewhere, or finds the listener closed, rather than reusing this one just as it closes."""

    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self.app = app
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start" and self.drain.draining:
                headers = [*message.get("headers", ()), (b"connection", b"close")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, sending)


class HeadWithBody:
    """ASGI wrapper: the head of each HTTP response (``http.response.start``) is held back
    until the first part of its body is ready and then sent with it.

    A balancer passes a request on to another instance when the first one fails before
    answering anything (nginx's proxy_next_upstream), but once the head has reached it the
    answer is committed. Apps send the head first and the body after some work (a stream's
    first chunk read in a worker thread, the middlewares in between): an instance that dies
    in that gap leaves a GET cut off that could have been retried. Held back, the head leaves
    with the body, and a process killed in between has sent nothing. Headers sent earlier
    alone would give the client nothing it could act on, and the body comes no later."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held: Message | None = None

        async def sending(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                held = message
                return
            if held is not None:
                head, held = held, None
                await send(head)
            await send(message)

        await self.app(scope, receive, sending)
        if held is not None:  # a head without a body: an app outside the ASGI contract
            await send(held)


def behind_balancer(app: ASGIApp, drain: Drain) -> ASGIApp:
    """``app`` as ``serve`` runs it: :class:`CloseWhileDraining` over :class:`HeadWithBody`."""
    return CloseWhileDraining(HeadWithBody(app), drain)


class DrainingServer(uvicorn.Server):
    """uvicorn's server, stopped in the three steps of this module instead of at once.

    uvicorn alone closes its listener on the first SIGTERM (step 2 without step 1), and after
    its graceful shutdown raises the caught signal again, which ends the process before the
    caller's clean-up (the DIMSE listener, the stores) could run; here the process returns
    normally. ``on_close`` runs when the listeners close (the DIMSE listener's own closing);
    ``force_on_interrupt`` false leaves the forced stop to a supervisor (a worker process
    receives a terminal's SIGINT both from the terminal and from its supervisor)."""

    def __init__(
        self,
        config: uvicorn.Config,
        drain: Drain,
        *,
        on_close: Callable[[], None] | None = None,
        force_on_interrupt: bool = True,
    ) -> None:
        super().__init__(config)
        self.drain = drain
        self.on_close = on_close
        self.force_on_interrupt = force_on_interrupt

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGINT:
            if self.force_on_interrupt and self.should_exit and self.drain.listeners_due():
                self.force_exit = True
            self.drain.begin(wait=False)
        else:
            self.drain.begin()

    async def on_tick(self, counter: int) -> bool:
        if self.drain.listeners_due():
            self.should_exit = True
        return await super().on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.config.timeout_graceful_shutdown = math.ceil(self.drain.remaining())
        if self.on_close is not None:
            await asyncio.to_thread(self.on_close)
        # Before uvicorn closes the listeners: no new connection, and the ones already made
        # accepted and their requests read (radcase_pacs.listener_close).
        await take_in(
            [sock for server in self.servers for sock in server.sockets],
            self.server_state.connections,
        )
        await super().shutdown(sockets)
