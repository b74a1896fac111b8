"""A deadline for the blob work of one request, carried in a context variable, so that the
time a request waited for a blob thread counts against its budget.

Why: a request that queued behind others stuck on a frozen store, then made its own call,
could take its wait plus a whole budget. The edge that queues the work (the DICOMweb blob
lane) opens a deadline when the request starts waiting; the S3 store ends its request by it
as by its own budget, and once the store has just failed to answer, it does not start an
attempt that cannot end before the deadline. Worker threads see the variable because the lane
runs each call in a copy of the caller's context.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_DEADLINE: ContextVar[float | None] = ContextVar("blob_deadline", default=None)


@contextmanager
def within(seconds: float | None) -> Iterator[None]:
    """Work inside the block ends within ``seconds`` from now (or an earlier deadline
    already open); None opens none."""
    if seconds is None:
        yield
        return
    ends = time.monotonic() + seconds
    current = _DEADLINE.get()
    token = _DEADLINE.set(ends if current is None else min(current, ends))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def deadline() -> float | None:
    """The ``time.monotonic()`` by which the current work must end, if any."""
    return _DEADLINE.get()
