"""The switch: the source made read-only for the few seconds of a last copy, then the target
verified and marked as the deployment that took over.

1. A pass while the source still serves, and every target blob read back: the bulk of the
   work, done before anything is refused.
2. Read-only: the flag is set in the source's database; the switch waits as long as a server
   process may still trust its last read of it (``read_only_check_seconds``), then drains the
   writers of every source database (:meth:`storage.database.base.Database.drain_writers`):
   whatever was being written has committed, and nothing more will be.
3. A last pass and the whole verification: every table compared, every instance's index
   values, and the bytes of those copied since step 1 read back.
4. If all is identical, the target is marked as having taken over (so that no later copy
   undoes its writes) and made writable (a rollback's target was read-only); the source
   stays read-only until its servers are stopped. If not, the source is made writable again
   and the differences are listed.

The read-only moment is measured from the flag to the end of step 4.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from radcase_pacs.migration.passes import Progress, copy_pass
from radcase_pacs.migration.report import pass_lines, verification_lines
from radcase_pacs.migration.sides import Sides
from radcase_pacs.migration.verify import ReadBack, verify

MARGIN = 0.2
"""Seconds added to ``read_only_check_seconds``: clocks of processes and thread wake-ups."""


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
    verify(sides, read_back, archives_only=True)
    say("every instance copied so far read back from the target; the source goes read-only")

    began = time.monotonic()
    source.mode.set_read_only(f"switching over to {sides.target_name()}", retry_after)
    try:
        time.sleep(source.settings.read_only_check_seconds + MARGIN)
        for database in source.guarded:
            database.drain_writers()
        drained = time.monotonic() - began
        last = copy_pass(sides, number=2, workers=workers)
        checked_at = time.monotonic()
        result = verify(sides, read_back)
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
