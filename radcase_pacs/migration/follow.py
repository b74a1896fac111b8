"""Follow mode: pass after pass while the source keeps serving, each copying what arrived or
changed since the one before, until the operator stops it (Ctrl-C or SIGTERM, which let the
pass under way finish) to switch."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TextIO

from radcase_pacs.migration.passes import Progress, copy_pass
from radcase_pacs.migration.report import pass_lines
from radcase_pacs.migration.sides import Sides


def follow(
    sides: Sides,
    *,
    interval: float,
    workers: int,
    stop: threading.Event,
    out: TextIO,
    first_progress: Callable[[], tuple[Progress | None, Callable[[], None]]],
) -> int:
    """``first_progress`` gives the first pass a progress callback and its closing (the
    first pass copies everything; the later ones only a lag behind)."""
    number = 0
    while not stop.is_set():
        number += 1
        progress, done = first_progress() if number == 1 else (None, lambda: None)
        try:
            report = copy_pass(sides, number=number, workers=workers, progress=progress)
        finally:
            done()
        for line in pass_lines(report, lag=time.time() - report.began):
            print(line, file=out, flush=True)
        stop.wait(interval)
    print(
        "stopped following: run `radcase-pacs migrate` with --switch to switch over",
        file=out,
        flush=True,
    )
    return 0
