"""``serve --workers N``: N HTTP worker processes accepting on one listening socket, supervised
by the process that bound it (which also keeps the one DIMSE listener).

uvicorn has a supervisor of its own (``uvicorn.run(workers=N)``), but on SIGTERM it signals
its workers and then waits for them while still holding its own copy of the listening socket:
once the workers have closed theirs, the socket stays open in the kernel, completes new
connections into its backlog and never answers them, so a load balancer's requests hang there
instead of being refused and retried elsewhere. This supervisor lets go of its copy as soon as
draining starts; the workers' copies keep the port listening until their listeners close
together, after the drain delay, and from then on a connection is refused at once.

Each worker runs :class:`radcase_pacs.drain.DrainingServer` with the same delay and grace
period; the supervisor forwards SIGTERM and SIGINT to them, replaces a worker that dies while
the server runs, and kills one still alive past the grace period (plus
:data:`radcase_pacs.drain.EXIT_MARGIN`).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.context import SpawnProcess
from types import FrameType
from typing import Any

import uvicorn
from starlette.types import ASGIApp
from uvicorn.config import STARTUP_FAILURE

from radcase_pacs.drain import EXIT_MARGIN, Drain, DrainingServer, behind_balancer

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
"""How often the supervisor looks for a dead worker while nothing else happens."""


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker process is started with (pickled to it): uvicorn's options, the factory
    of its app (given the worker's own drain clock) and the drain timing."""

    options: dict[str, Any]
    app_factory: Callable[[Drain], ASGIApp]
    delay: float
    grace: float


def run_worker(spec: WorkerSpec, sockets: list[socket.socket]) -> None:
    """The body of a worker process."""
    drain = Drain(spec.delay, spec.grace)
    app = behind_balancer(spec.app_factory(drain), drain)
    config = uvicorn.Config(app, **spec.options)
    DrainingServer(config, drain, force_on_interrupt=False).run(sockets=sockets)


class WorkerGroup:
    """The supervisor: :meth:`run` binds the port, starts the workers and returns the exit
    status once they are all gone (1 when a worker could not start at all)."""

    def __init__(
        self,
        spec: WorkerSpec,
        count: int,
        drain: Drain,
        *,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.spec = spec
        self.count = count
        self.drain = drain
        self.on_close = on_close
        self.workers: list[SpawnProcess] = []
        self._signals: list[int] = []
        self._wake = threading.Event()
        self._forced = False
        self._status = 0

    def run(self) -> int:
        multiprocessing.allow_connection_pickling()  # the socket travels to each worker
        config = uvicorn.Config("radcase_pacs", **self.spec.options)
        sock = config.bind_socket()
        handled = (signal.SIGTERM, signal.SIGINT)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in handled}
        try:
            self.workers = [self._start(sock) for _ in range(self.count)]
            self._serve(sock)
            sock.close()
            self._wait_for_listeners()
            if self.on_close is not None:
                self.on_close()
            self._wait_for_workers()
        finally:
            sock.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self._status

    def _start(self, sock: socket.socket) -> SpawnProcess:
        spawn = multiprocessing.get_context("spawn")
        process = spawn.Process(target=run_worker, args=(self.spec, [sock]), daemon=False)
        process.start()
        return process

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        self._signals.append(sig)
        self._wake.set()

    def _pause(self, seconds: float) -> None:
        """Sleep until ``seconds`` pass or a signal comes, then act on the signals."""
        self._wake.wait(max(0.0, seconds))
        self._wake.clear()
        while self._signals:
            self._handle(self._signals.pop(0))

    def _handle(self, sig: int) -> None:
        if sig == signal.SIGINT:
            if self.drain.listeners_due():
                log.warning("second interrupt: the workers are stopped now")
                self._forced = True
                return
            self.drain.begin(wait=False)
        else:
            self.drain.begin()
        self._signal_workers(sig)

    def _signal_workers(self, sig: int) -> None:
        for worker in self.workers:
            if worker.pid is not None and worker.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, sig)

    def _serve(self, sock: socket.socket) -> None:
        """Until draining starts: replace the workers that die. A worker that exits with
        uvicorn's start-up failure (its deployment could not be opened) stops the server:
        every replacement would fail alike."""
        while not self.drain.draining:
            self._pause(POLL_SECONDS)
            if self.drain.draining:
                return
            for index, worker in enumerate(self.workers):
                if worker.exitcode is None:
                    continue
                if worker.exitcode == STARTUP_FAILURE:
                    log.error("an HTTP worker could not start: the server stops")
                    self._status = 1
                    self.drain.begin(wait=False)
                    self._signal_workers(signal.SIGTERM)
                    return
                log.warning(
                    "HTTP worker %s ended (exit status %s); starting another",
                    worker.pid,
                    worker.exitcode,
                )
                self.workers[index] = self._start(sock)

    def _wait_for_listeners(self) -> None:
        while not self.drain.listeners_due():
            self._pause(min(POLL_SECONDS, self.drain.until_listeners_close()))

    def _wait_for_workers(self) -> None:
        stop = self.drain.deadline + EXIT_MARGIN
        while not self._forced and any(w.exitcode is None for w in self.workers):
            if self.drain.clock() >= stop:
                break
            self._pause(0.1)
        for worker in self.workers:
            if worker.exitcode is None:
                log.warning("HTTP worker %s did not stop in time: killed", worker.pid)
                worker.kill()
            worker.join()
        self.workers = []
