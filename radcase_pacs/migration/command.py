"""``radcase-pacs migrate``: the command line over the package.

Each side is read from its TOML file only (``RADCASE_*`` variables meant for a server must
not apply to both).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from pydantic import ValidationError

from radcase_pacs.deployment import open_deployment
from radcase_pacs.migration.follow import follow
from radcase_pacs.migration.passes import Progress, copy_pass, work_to_do
from radcase_pacs.migration.report import pass_lines, verification_lines
from radcase_pacs.migration.sides import Refused, Sides, refusals, unknown_tables
from radcase_pacs.migration.switch import switch
from radcase_pacs.migration.verify import verify
from radcase_pacs.settings import file_settings
from storage.database.locks import exclusive

"""The auth namespace of the cache file the workers of ``serve`` share (see module doc)."""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    move = commands.add_parser(
        "migrate",
        help="copy a whole deployment into another, verify it, follow it and switch over",
        description="Copies everything the deployment described by --from keeps (both "
        "archives, users, keys, teaching cases, questions, the review log, groups, the audit "
        "log...) into the one described by --to, then compares every table and every blob. "
        "A second run copies only what is missing or changed. --follow keeps copying while "
        "the source serves; --switch makes the source read-only for a last copy and check.",
    )
    move.add_argument("--from", dest="source", type=Path, required=True, help="source TOML")
    move.add_argument("--to", dest="target", type=Path, required=True, help="target TOML")
    mode = move.add_mutually_exclusive_group()
    mode.add_argument("--verify-only", action="store_true", help="compare without copying")
    mode.add_argument(
        "--follow", action="store_true", help="copy pass after pass until Ctrl-C or SIGTERM"
    )
    mode.add_argument(
        "--switch", action="store_true", help="catch up, then read-only, last copy and check"
    )
    move.add_argument("--interval", type=float, default=2.0, help="seconds between passes")
    move.add_argument(
        "--retry-after",
        type=int,
        default=5,
        help="seconds a client refused during the switch is told to wait (Retry-After)",
    )
    move.add_argument("--workers", type=int, default=4, help="instances copied at once")
    move.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    logging.basicConfig(level="WARNING", format="%(asctime)s %(levelname)s %(message)s")
    try:
        source_settings = file_settings(args.source)
        target_settings = file_settings(args.target)
    except (ValidationError, ValueError, OSError) as exc:
        print(f"radcase-pacs: invalid settings: {exc}", file=sys.stderr)
        return 2
    with (
        open_deployment(source_settings, provision=False, guard_writes=False) as source,
        open_deployment(target_settings, provision=False, guard_writes=False) as target,
        exclusive(target.databases["clinical"], "migrate") as alone,
    ):
        if not alone:
            print("radcase-pacs: another migrate is copying into this target", file=sys.stderr)
            return 2
        sides = Sides(source, target)
        try:
            return _run(sides, args, out)
        except Refused as exc:
            print(f"radcase-pacs: {exc}", file=sys.stderr)
            return 2


def _run(sides: Sides, args: argparse.Namespace, out: TextIO) -> int:
    for note in unknown_tables(sides):
        print(note, file=out)
    workers = max(1, args.workers)
    if args.verify_only:
        result = verify(sides, workers=workers)
        for line in verification_lines(result):
            print(line, file=out)
        return 0 if result.ok else 1
    refused = refusals(sides)
    if refused:
        for reason in refused:
            print(f"radcase-pacs: {reason}", file=sys.stderr)
        return 2
    first = progress_bar(sides, disabled=args.no_progress)
    if args.switch:
        return switch(
            sides,
            workers=workers,
            retry_after=max(1, args.retry_after),
            out=out,
            first_progress=first,
        )
    if args.follow:
        with stop_on_signals() as stop:
            return follow(
                sides,
                interval=max(0.0, args.interval),
                workers=workers,
                stop=stop,
                out=out,
                first_progress=first,
            )
    progress, done = first()
    try:
        report = copy_pass(sides, workers=workers, progress=progress)
    finally:
        done()
    for line in pass_lines(report):
        print(line, file=out)
    result = verify(sides, workers=workers)
    for line in verification_lines(result):
        print(line, file=out)
    return 0 if result.ok and not report.problems else 1


def progress_bar(
    sides: Sides, *, disabled: bool
) -> Callable[[], tuple[Progress | None, Callable[[], None]]]:
    """A progress bar for a first pass (everything the source holds), or none."""

    def start() -> tuple[Progress | None, Callable[[], None]]:
        if disabled:
            return None, lambda: None
        from tqdm import tqdm

        bar = tqdm(total=work_to_do(sides), unit=" items", dynamic_ncols=True)
        return bar.update, bar.close

    return start


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by the first Ctrl-C or SIGTERM (the pass under way finishes); a second
    Ctrl-C interrupts at once."""
    stop = threading.Event()

    def stopping(signum: int, frame: object) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()

    previous = {s: signal.signal(s, stopping) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
