"""The periodic orphan sweep of ``radcase-pacs serve``: a daemon thread that sweeps the
server's own deployment (its archives and case store) every ``sweep_interval_seconds``
(0: never), started and stopped with the server.

The first sweep comes a short while after start (at most ten minutes), not a whole interval
later, so that servers restarted more often than the interval still sweep. Every server
process runs a sweeper; the lock in :func:`radcase_pacs.sweeping.sweep_deployment` lets one
of them sweep at a time and the others skip that turn. A failed sweep is logged and tried
again at the next turn; it never stops the server. Stopping asks a running sweep to end
after its current page.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

from radcase_pacs.deployment import Deployment
from radcase_pacs.sweeping import sweep_deployment
from storage.sweep import SweepReport

log = logging.getLogger(__name__)

FIRST_SWEEP_AFTER = 600.0

Sweep = Callable[[Callable[[], bool]], list[SweepReport] | None]
"""One sweep, given what to ask whether to stop; None when another process is sweeping."""


class PeriodicSweep:
    def __init__(self, sweep: Sweep, interval: float, first_delay: float | None = None) -> None:
        self.sweep = sweep
        self.interval = interval
        self.first_delay = min(interval, FIRST_SWEEP_AFTER) if first_delay is None else first_delay
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start sweeping in the background (nothing when the interval is 0)."""
        if self.interval <= 0 or self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="orphan-sweep", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop, waiting up to ``timeout`` seconds for a sweep in progress to end its page."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping.set()
            thread.join(timeout)

    def _run(self) -> None:
        delay = self.first_delay
        while not self._stopping.wait(delay):
            self.run_once()
            delay = self.interval

    def run_once(self) -> None:
        try:
            reports = self.sweep(self._stopping.is_set)
        except Exception:
            log.exception("the orphan sweep failed; next attempt in %g s", self.interval)
            return
        if reports is None:
            log.info("orphan sweep skipped: another process is sweeping")
            return
        for report in reports:
            log.info("orphan sweep: %s", report.summary())


def periodic_sweep(deployment: Deployment) -> PeriodicSweep:
    """The sweeper of a server's deployment (not started), on its settings' interval and
    grace period."""
    settings = deployment.settings
    grace = timedelta(seconds=settings.sweep_grace_seconds)

    def sweep(stop: Callable[[], bool]) -> list[SweepReport] | None:
        return sweep_deployment(deployment, grace=grace, stop=stop)

    return PeriodicSweep(sweep, settings.sweep_interval_seconds)
