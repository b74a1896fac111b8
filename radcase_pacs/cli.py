"""``radcase-pacs``: serve (HTTP and DIMSE), import, migrate, sweep, user, read-only.

``main(argv)`` returns an exit code instead of exiting, so tests call it directly.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from radcase_pacs.auth import commands as user_commands
from radcase_pacs.metrics import IngestEdge, share_folder
from radcase_pacs.mode import commands as mode_commands
from radcase_pacs.settings import Settings, load_settings
from storage.urls import UnsupportedUrl

if TYPE_CHECKING:
    from radcase_pacs.drain import Drain

log = logging.getLogger(__name__)

MAX_DEFAULT_WORKERS = 4
"""Beyond this many HTTP workers by default, a busy machine's other work (the DIMSE listener,
the database, the other services) would have no core left; ``--workers`` sets more."""


def default_workers() -> int:
    """One HTTP worker per core the process may run on, at most :data:`MAX_DEFAULT_WORKERS`:
    one interpreter runs Python on one core at a time, and a second worker on a 2-core machine
    took ingest, frames and retrieval 1.3 to 1.8 times faster (README, "The benchmark")."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_DEFAULT_WORKERS))


def shared_settings(settings: Settings, workers: int) -> Settings:
    """The settings every process of a ``workers``-process server runs with: a cache private
    to each process (``memory://``) becomes one file in the data folder that they all share
    (:class:`storage.cache.sqlite.SqliteCache`), so that a login made through one worker is
    known to the others and a logout ends it in all of them."""
    if workers <= 1 or not settings.cache_url.lower().startswith("memory:"):
        return settings
    _, _, query = settings.cache_url.partition("?")
    path = settings.data_dir.resolve() / "cache.sqlite3"
    url = f"sqlite:///{path}" + (f"?{query}" if query else "")
    return settings.model_copy(update={"cache_url": url})


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radcase-pacs", description=__doc__)
    parser.add_argument("--config", type=Path, help="TOML settings file")
    parser.add_argument("--data-dir", type=Path, help="data folder (RADCASE_DATA_DIR)")
    parser.add_argument("--index-url", help="index backend URL (RADCASE_INDEX_URL)")
    parser.add_argument("--blob-url", help="blob store URL (RADCASE_BLOB_URL)")
    parser.add_argument("--cache-url", help="cache URL (RADCASE_CACHE_URL)")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP (DICOMweb) server")
    serve.add_argument("--host", help="bind address (RADCASE_HOST)")
    serve.add_argument("--port", type=int, dest="http_port", help="HTTP port")
    serve.add_argument("--log-level", help="debug, info, warning, error")
    serve.add_argument("--dimse-port", type=int, help="DIMSE port, 0 for none")
    serve.add_argument("--ae-title", help="the server's AE title (RADCASE_AE_TITLE)")
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        help=f"HTTP worker processes sharing the port (default: one per core, at most "
        f"{MAX_DEFAULT_WORKERS})",
    )

    from radcase_pacs.migration import command as migration_command

    migration_command.add_parser(commands)

    load = commands.add_parser("import", help="store DICOM files from files and folders")
    load.add_argument("paths", nargs="+", type=Path)
    load.add_argument("--no-progress", action="store_true", help="no progress bar")
    sweep = commands.add_parser(
        "sweep",
        help="remove blobs no index row references (crash leftovers) older than a grace period",
    )
    sweep.add_argument(
        "--grace",
        type=float,
        metavar="SECONDS",
        help="keep what is younger (default sweep_grace_seconds; below the longest ingest, "
        "only while nothing is being stored)",
    )
    sweep.add_argument("--dry-run", action="store_true", help="report, remove nothing")
    user_commands.add_parser(commands)
    mode_commands.add_parser(commands)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    flags = {
        key: getattr(args, key, None)
        for key in (
            "data_dir",
            "index_url",
            "blob_url",
            "cache_url",
            "host",
            "http_port",
            "log_level",
            "dimse_port",
            "ae_title",
        )
    }
    return load_settings(args.config, **flags)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "migrate":
        from radcase_pacs.migration import command as migration_command

        return migration_command.run(args)
    try:
        settings = _settings(args)
    except (ValidationError, ValueError, OSError) as exc:
        print(f"radcase-pacs: invalid settings: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if settings.log_level.lower() != "debug":
        # pynetdicom narrates every PDU at INFO; our own log says what an operator needs.
        # Its narrating handlers also build their text before the logger drops it: unbound.
        from pynetdicom import _config as pynetdicom_config

        logging.getLogger("pynetdicom").setLevel(logging.WARNING)
        pynetdicom_config.LOG_HANDLER_LEVEL = "none"
    try:
        if args.command == "serve":
            workers = default_workers() if args.workers is None else max(1, args.workers)
            return _serve(shared_settings(settings, workers), workers=workers)
        if args.command == "user":
            return user_commands.run(settings, args)
        if args.command == "read-only":
            return mode_commands.run(settings, args)
        if args.command == "sweep":
            from radcase_pacs.sweeping import run_sweep

            return run_sweep(settings, grace_seconds=args.grace, dry_run=args.dry_run)
        return _import(settings, args.paths, progress=not args.no_progress)
    except UnsupportedUrl as exc:
        print(f"radcase-pacs: {exc}", file=sys.stderr)
        return 2


def _serve(settings: Settings, *, workers: int = 1) -> int:
    """The HTTP server and, unless ``dimse_port`` is 0, the one DIMSE listener beside it,
    both over this process's deployment: the listener starts before HTTP and stops after it.

    With ``workers`` > 1, that many HTTP processes share the one port
    (:class:`radcase_pacs.workers.WorkerGroup`); this process supervises them and keeps the
    single DIMSE listener. Each worker opens its own deployment from the same settings (every
    resolved value is exported to it), and all of them, this one included, write metrics to
    one folder that lives as long as the server.

    SIGTERM stops it gracefully (:mod:`radcase_pacs.drain`): unready at once, listeners
    closed after ``shutdown_drain_seconds``, the work in flight given
    ``shutdown_grace_seconds``, then exit status 0."""
    import uvicorn

    _tune_process()
    from radcase_pacs.app import create_app
    from radcase_pacs.deployment import open_deployment
    from radcase_pacs.dimse.server import DimseServer
    from radcase_pacs.drain import Drain, DrainingServer, behind_balancer
    from radcase_pacs.sweep_runner import periodic_sweep

    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.http_port,
        "log_level": settings.log_level.lower(),
        "access_log": settings.http_access_log,
        "proxy_headers": bool(settings.trusted_proxies),
    }
    if settings.trusted_proxies:
        options["forwarded_allow_ips"] = settings.trusted_proxies
    drain = Drain.from_settings(settings)
    with contextlib.ExitStack() as stack:
        if workers > 1:
            metrics_dir = stack.enter_context(
                tempfile.TemporaryDirectory(prefix="radcase-metrics-")
            )
            os.environ.update(settings_environment(settings))
            share_folder(metrics_dir)
        deployment = stack.enter_context(open_deployment(settings))
        sweeper = periodic_sweep(deployment)
        sweeper.start()
        stack.callback(sweeper.stop)
        close_dimse = None
        if settings.dimse_port:
            dimse = DimseServer(
                settings,
                deployment.clinical_via(IngestEdge.C_STORE),
                audit=deployment.audit,
                metrics=deployment.metrics,
            )
            try:
                dimse.start()
            except OSError as exc:
                print(f"radcase-pacs: DIMSE port {settings.dimse_port}: {exc}", file=sys.stderr)
                return 1
            stack.callback(lambda: dimse.stop(until=drain.deadline if drain.draining else None))
            close_dimse = dimse.stop_accepting
        if workers > 1:
            from radcase_pacs.workers import WorkerGroup, WorkerSpec

            spec = WorkerSpec(options, worker_app, drain.delay, drain.grace)
            return WorkerGroup(spec, workers, drain, on_close=close_dimse).run()
        app = create_app(deployment, draining=lambda: drain.draining)
        config = uvicorn.Config(behind_balancer(app, drain), **options)
        _freeze_startup_objects()
        DrainingServer(config, drain, on_close=close_dimse).run()
    return 0


def _tune_process() -> None:
    """Settings of a long-running server process that cost nothing in behaviour.

    pydicom checks every value it converts or writes against its VR (a regular expression
    per UID, date, code string) and only warns: the server stores values as received and
    answers with what was stored either way, so the checks are turned off (they were a tenth
    of the CPU of a C-STORE: its response, the presentation contexts copied for each
    association, the data set read at ingest). And the objects made while starting are
    moved out of the garbage collector's reach (``gc.freeze``): they live as long as the
    process, and each full collection would otherwise walk them all again."""

    from pydicom import config

    config.settings.reading_validation_mode = config.IGNORE
    config.settings.writing_validation_mode = config.IGNORE


def _freeze_startup_objects() -> None:
    """See :func:`_tune_process`; called once the app is built, just before serving."""
    import gc

    gc.collect()
    gc.freeze()


def worker_app(drain: Drain) -> Any:
    """The app of each HTTP worker of ``serve --workers N``: that of
    :func:`radcase_pacs.app.app_from_environment`, its health check reporting the worker's
    own ``drain``, in a process tuned as the single-process server is, that dies with the
    process that started it."""
    _die_with_parent()
    _tune_process()
    from radcase_pacs.app import app_from_environment

    app = app_from_environment(lambda: drain.draining)
    _freeze_startup_objects()
    return app


PR_SET_PDEATHSIG = 1
"""prctl(2) option: the signal the kernel sends this process when its parent ends."""


def _die_with_parent() -> None:
    """A worker ends when its supervisor does, however that one ended: a supervisor killed
    with SIGKILL cannot stop its workers, and they would go on serving on the port, unseen.
    They get SIGKILL too, as if the whole server had been killed (what they acknowledged is
    durable already). Linux only; elsewhere a worker outlives a killed supervisor."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import multiprocessing
    import signal

    supervisor = multiprocessing.parent_process()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        log.warning("cannot tie this worker to its supervisor: errno %d", ctypes.get_errno())
    elif supervisor is not None and os.getppid() != supervisor.pid:
        os._exit(1)  # the supervisor ended before the tie was made


def settings_environment(settings: Settings) -> dict[str, str]:
    """Every resolved setting as its RADCASE_* variable, so a worker process rebuilds exactly
    these settings whatever file and flags produced them."""
    return {
        f"RADCASE_{name.upper()}": str(value)
        for name, value in settings.model_dump().items()
        if value is not None
    }


def _import(settings: Settings, paths: list[Path], *, progress: bool) -> int:
    from radcase_pacs.deployment import open_deployment
    from radcase_pacs.importer import import_paths

    missing = [p for p in paths if not p.exists()]
    if missing:
        print(f"radcase-pacs: no such file or folder: {missing[0]}", file=sys.stderr)
        return 2
    with open_deployment(settings) as deployment:
        summary = import_paths(
            deployment.clinical_via(IngestEdge.IMPORT),
            paths,
            progress=progress,
            audit=deployment.audit,
        )
    summary.report(sys.stdout)
    return 1 if summary.failed else 0
