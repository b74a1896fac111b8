"""``/healthz``: which backend answers and which does not, and what that means for the
process: ready for work, or only alive.

Two questions, asked by two different machines, with two different answers when S3 is down:

* **Readiness** (``/healthz``, ``/healthz?probe=ready``): should a load balancer send this
  process work? Not when a database it needs for nearly every request fails (the clinical
  and teaching indexes, the audit log every clinical request is written to first, the cases):
  503, so that the balancer sends the work to a process that can do it. A failing blob store
  or cache does not make it unready: searches, cached metadata and the web app still work,
  and every process shares the same S3 and Redis, so taking them all out of the balancer
  would turn a partial outage into a whole one. The answer then says ``degraded``.
* **Liveness** (``/healthz?probe=live``): should an orchestrator restart this process?
  Only when the process itself no longer answers; a restart cures no backend. So it answers
  200 from the event loop, asking nothing of any backend.

Each backend is asked in a thread of the check's own (never one that requests need), and
waited for at most ``health_timeout``: a backend that has not answered by then is reported
as not answering, so the page answers within that time even when a backend is frozen. A
check still running from an earlier request is not started again (a frozen backend would
otherwise gain a thread per poll); until it ends, it is reported as still waiting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import anyio
import anyio.to_thread

from storage.errors import ArchiveError

OK = "ok"
FAILING = "failing"


@dataclass(frozen=True)
class Check:
    """One backend as ``/healthz`` names it; ``required``: readiness fails when it fails."""

    name: str
    ping: Callable[[], None]
    required: bool


@dataclass(frozen=True)
class Finding:
    name: str
    required: bool
    problem: str | None
    """None when the backend answered, else what went wrong."""

    def as_json(self) -> dict[str, object]:
        found: dict[str, object] = {
            "status": OK if self.problem is None else FAILING,
            "required": self.required,
        }
        if self.problem is not None:
            found["detail"] = self.problem
        return found


@dataclass(frozen=True)
class Report:
    findings: list[Finding]

    @property
    def ready(self) -> bool:
        return not any(f.problem for f in self.findings if f.required)

    @property
    def status(self) -> str:
        if not self.ready:
            return "unavailable"
        return "degraded" if any(f.problem for f in self.findings) else "ok"

    @property
    def reason(self) -> str | None:
        """The first problem, a required backend's first."""
        ordered = sorted(self.findings, key=lambda f: not f.required)
        return next((f"{f.name}: {f.problem}" for f in ordered if f.problem), None)

    def as_json(self) -> dict[str, object]:
        body: dict[str, object] = {"status": self.status}
        if self.reason is not None:
            body["reason"] = self.reason
        body["backends"] = {f.name: f.as_json() for f in self.findings}
        return body


@dataclass
class _Probe:
    """One check's thread, while it runs (``since``), and its latest answer."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    since: float | None = None


class Health:
    def __init__(self, checks: Sequence[Check], timeout: float) -> None:
        self.checks = list(checks)
        self.timeout = timeout
        self._probes = {check.name: _Probe() for check in self.checks}
        self._limiter = anyio.CapacityLimiter(max(1, len(self.checks)))

    async def report(self) -> Report:
        findings: dict[str, Finding] = {}

        async def ask(check: Check) -> None:
            findings[check.name] = Finding(check.name, check.required, await self._ask(check))

        async with anyio.create_task_group() as group:
            for check in self.checks:
                group.start_soon(ask, check)
        return Report([findings[check.name] for check in self.checks])

    async def _ask(self, check: Check) -> str | None:
        probe = self._probes[check.name]
        with probe.lock:
            if probe.since is not None:
                waited = time.monotonic() - probe.since
                return f"no answer yet, asked {waited:.1f} s ago"
            probe.since = time.monotonic()
        answer: list[str | None] = []

        def run() -> None:
            try:
                check.ping()
                answer.append(None)
            except ArchiveError as exc:
                answer.append(str(exc) or type(exc).__name__)
            finally:
                with probe.lock:
                    probe.since = None

        with anyio.move_on_after(self.timeout):
            await anyio.to_thread.run_sync(run, abandon_on_cancel=True, limiter=self._limiter)
        if not answer:
            return f"no answer within {self.timeout:g} s"
        return answer[0]
