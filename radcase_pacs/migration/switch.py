"""The switch: the source made read-only for the few seconds of a last copy, then the target
checked and marked as the deployment that took over.

1. While the source still serves: a pass, then every target blob read back and the
   append-only logs (the audit log, the review log) compared row by row. What no pass could
   make good (bytes or a log row that differ) stops the switch before anything is refused.
   Then up to :data:`SETTLING` more passes, each copying what arrived during the one before
   and checking what it wrote, until one finds nothing new.
2. Read-only: the flag is set in the source's database; the switch waits as long as a server
   process may still trust its last read of it (``read_only_check_seconds``), then drains the
   writers of every source database (:meth:`storage.database.base.Database.drain_writers`):
   whatever was being written has committed, and nothing more will be.
3. The last pass. It reads every row of both sides and compares it (instances by their
   SHA-256), writing what differs; then the last check: every table's and every archive's
   count, and everything the last pass wrote, read back (rows compared, blobs hashed).
   Together with step 1 every row and every blob has then been compared after its last
   copy, without reading everything twice while writes are refused.
4. If all agrees, the target is marked as having taken over (so that no later copy undoes
   its writes) and made writable (a rollback's target was read-only); the source stays
   read-only until its servers are stopped. If not, the source is made writable again and
   the differences are listed.

The read-only moment is measured from the flag to the end of step 4.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from radcase_pacs.migration.passes import Progress, copy_pass
from radcase_pacs.migration.report import pass_lines, verification_lines
from radcase_pacs.migration.sides import Sides
from radcase_pacs.migration.tables import Kind
from radcase_pacs.migration.verify import ReadBack, verify, verify_writes

MARGIN = 0.2
"""Seconds added to ``read_only_check_seconds``: clocks of processes and thread wake-ups."""
SETTLING = 3
"""Passes at most between the first check and the read-only moment, each copying (and
checking) what arrived during the one before, so that little is left for the last one."""


def switch(
    sides: Sides,
    *,
    workers: int,
    retry_after: int,
    out: TextIO,
    first_progress: Callable[[], tuple[Progress | None, Callable[[], None]]],
) -> int:
    def say(line: str) -> None:
        print(line, file=out, flush=True)

    source, target = sides.source, sides.target
    read_back = ReadBack()
    progress, done = first_progress()
    try:
        catch_up = copy_pass(sides, number=1, workers=workers, progress=progress)
    finally:
        done()
    for line in pass_lines(catch_up):
        say(line)
    early = verify(sides, read_back, kinds=(Kind.LOG,), workers=workers)
    conflicts = early.conflicts()
    if conflicts:
        for problem in conflicts:
            say(f"problem: {problem}")
        say("switch not started: the target holds what a copy cannot make good (above)")
        return 1
    say("every blob copied so far read back and the logs compared")
    for number in range(2, 2 + SETTLING):  # what arrived meanwhile, checked as it comes
        since = copy_pass(sides, number=number, workers=workers)
        for line in pass_lines(since):
            say(line)
        conflicts = verify_writes(sides, [since], read_back, final=False).conflicts()
        if conflicts:
            for problem in conflicts:
                say(f"problem: {problem}")
            say("switch not started: the target holds what a copy cannot make good (above)")
            return 1
        if not since.changes:
            break
    say("the source goes read-only")

    began = time.monotonic()
    source.mode.set_read_only(f"switching over to {sides.target_name()}", retry_after)
    try:
        time.sleep(source.settings.read_only_check_seconds + MARGIN)
        for database in source.guarded:
            database.drain_writers()
        drained = time.monotonic() - began
        last = copy_pass(sides, number=since.number + 1, workers=workers)
        checked_at = time.monotonic()
        result = verify_writes(sides, [last], read_back, final=True, workers=workers)
        checking = time.monotonic() - checked_at
    except BaseException:
        source.mode.set_writable()
        say("switch abandoned: the source serves writes again")
        raise
    for line in pass_lines(last):
        say(line)
    for line in verification_lines(result):
        say(line)
    if not result.ok or last.problems:
        source.mode.set_writable()
        say("switch abandoned: the source serves writes again (see the problems above)")
        return 1
    target.mode.set_writable()
    target.mode.mark_taken_over(sides.source_name())
    source.mode.clear_taken_over()
    moment = time.monotonic() - began
    say(
        f"switched: the source has been read-only for {moment:.1f} s (flag seen and writers "
        f"drained in {drained:.1f} s, last copy {last.seconds:.1f} s, last check "
        f"{checking:.1f} s) and stays read-only; start the servers on the target's settings now"
    )
    return 0
