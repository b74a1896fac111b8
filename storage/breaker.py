"""A circuit breaker per backend: fail at once while a store is known not to answer, and let
one call find out when it answers again.

Why: every call to a frozen store (a server that accepts the connection and never answers)
costs its full time bound, and holds a thread for it. A few such calls in a row say enough;
making every later request wait out the same bound only piles threads up behind a store that
will not answer them. So:

    closed     calls go through; ``threshold`` outages in a row open the breaker
    open       calls fail at once with BackendUnavailable (Retry-After: the seconds left)
               for ``cooldown`` seconds
    half-open  after the cooldown, one call goes through as a probe while the others still
               fail at once; its success closes the breaker, its outage opens it again

An outage is a call the store did not answer (a timeout, a refused or dropped connection).
A call the store answered, even with an error (a missing key, a failed constraint), proves
it is there and counts as a success. The stores decide which is which; the breaker only
counts. Thread-safe: one breaker serves every thread of a process.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

from storage.errors import BackendUnavailable

log = logging.getLogger(__name__)

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half-open"


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        threshold: int = 3,
        cooldown: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 1 or cooldown <= 0:
            raise ValueError("a breaker needs a threshold of 1 or more and a positive cooldown")
        self.name = name
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._outages = 0
        self._opened_at: float | None = None
        self._probing = False
        self.last_outage = ""
        """What the latest outage was (for /healthz and the log)."""

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, {self.state})"

    @property
    def state(self) -> str:
        with self._lock:
            return self._state()

    def _state(self) -> str:
        if self._opened_at is None:
            return CLOSED
        if self._clock() - self._opened_at < self.cooldown:
            return OPEN
        return HALF_OPEN

    @property
    def troubled(self) -> bool:
        """The store just failed to answer (an outage since its last answer): calls should
        not start what they cannot finish in the time they have left."""
        with self._lock:
            return self._outages > 0

    def retry_after(self) -> int:
        """Whole seconds until the breaker lets a probe through (the cooldown when closed)."""
        with self._lock:
            if self._opened_at is None:
                return math.ceil(self.cooldown)
            left = self.cooldown - (self._clock() - self._opened_at)
            return max(1, math.ceil(left))

    def before(self) -> bool:
        """Call before each call to the store: raises BackendUnavailable while the breaker is
        open (or another call is probing); otherwise the call may go, and it must report
        :meth:`succeeded` or :meth:`failed`. True when this call is the probe."""
        with self._lock:
            state = self._state()
            if state == CLOSED:
                return False
            if state == HALF_OPEN and not self._probing:
                self._probing = True
                return True
            left = self.cooldown - (self._clock() - (self._opened_at or 0.0))
        raise BackendUnavailable(
            f"{self.name} is not answering ({self.last_outage}); not asked again for now",
            retry_after=max(1, math.ceil(left)),
        )

    def succeeded(self) -> None:
        """The store answered."""
        with self._lock:
            reopened = self._opened_at is not None
            self._outages = 0
            self._opened_at = None
            self._probing = False
        if reopened:
            log.warning("%s answers again", self.name)

    def failed(self, why: str) -> None:
        """The store did not answer (a timeout, a refused or dropped connection)."""
        with self._lock:
            self.last_outage = why
            self._outages += 1
            was = self._state()
            opens = was == HALF_OPEN or (was == CLOSED and self._outages >= self.threshold)
            if opens:
                self._opened_at = self._clock()
            self._probing = False
        if opens and was == CLOSED:
            log.error(
                "%s did not answer %d times in a row (%s): failing at once for %.0f s, "
                "then probing",
                self.name,
                self.threshold,
                why,
                self.cooldown,
            )

    def released(self, probe: bool) -> None:
        """A call that reported neither way (an error of the caller's own): a probe that
        proved nothing gives the next call the chance to probe."""
        if probe:
            with self._lock:
                self._probing = False
