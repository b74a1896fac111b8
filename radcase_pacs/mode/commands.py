"""``radcase-pacs read-only status|on|off``: the deployment's mode from the shell.

``migrate --switch`` sets and clears the flag itself; this is for when it cannot: a switch
killed while the source was read-only (``off`` serves writes again), or a rollback done by
other means. ``on`` holds every write of every process of the deployment, for as long as it
stays on (maintenance).
"""

from __future__ import annotations

import argparse

from radcase_pacs.settings import Settings


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    mode = commands.add_parser(
        "read-only", help="show, set or clear the read-only flag of the deployment"
    )
    mode.add_argument("action", choices=("status", "on", "off"))
    mode.add_argument(
        "--retry-after", type=int, default=60, help="seconds refused clients are told to wait"
    )
    mode.add_argument("--reason", default="maintenance", help="said to refused clients")


def run(settings: Settings, args: argparse.Namespace) -> int:
    from radcase_pacs.deployment import open_deployment

    with open_deployment(settings, provision=False, guard_writes=False) as deployment:
        store = deployment.mode
        if args.action == "on":
            store.set_read_only(args.reason, max(1, args.retry_after))
        elif args.action == "off":
            store.set_writable()
        mode = store.mode()
    state = f"read-only since {mode.changed_at} ({mode.reason})" if mode.read_only else "writable"
    print(state)
    if mode.took_over_from:
        print(f"took over from {mode.took_over_from} at {mode.took_over_at}")
    return 0
