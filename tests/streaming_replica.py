"""A private PostgreSQL primary and its streaming replica on free loopback ports, in a temporary
folder, for the tests of the read replica; both stopped and the folder removed afterwards.

Made with Debian's PostgreSQL tools as an operator makes one: ``initdb`` for the primary, then
``pg_basebackup -R`` (which writes ``standby.signal`` and ``primary_conninfo``) for the
replica. PostgreSQL refuses to run as root, so under root the tools run as the ``postgres``
user, who then owns the folder. The binaries are found under ``/usr/lib/postgresql/*/bin``
(``RADCASE_TEST_PG_BINDIR`` overrides); without them the tests are skipped, and fail under
``CI=true``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import psycopg

from tests.backends import unavailable
from tests.factories import free_port

SETTINGS = """
listen_addresses = '127.0.0.1'
unix_socket_directories = '{folder}'
port = {port}
max_connections = 100
shared_buffers = 16MB
wal_level = replica
max_wal_senders = 4
fsync = off
full_page_writes = off
log_min_messages = warning
"""


def postgres_bindir() -> Path:
    """Where initdb, pg_ctl and pg_basebackup are (the newest installed version's)."""
    given = os.environ.get("RADCASE_TEST_PG_BINDIR")
    found = [Path(given)] if given else []
    found += sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    for folder in found:
        if all((folder / tool).is_file() for tool in ("initdb", "pg_ctl", "pg_basebackup")):
            return folder
    unavailable("PostgreSQL's server tools (initdb, pg_ctl, pg_basebackup) are not installed")


class StreamingPair:
    """A primary and a hot standby streaming from it, each a server of its own."""

    def __init__(self, bindir: Path, folder: Path) -> None:
        self.bindir = bindir
        self.folder = folder
        self.primary_port = free_port()
        self.replica_port = free_port()
        self._as_postgres = os.geteuid() == 0

    def url(self, port: int, **params: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return f"postgresql://postgres@127.0.0.1:{port}/postgres" + (f"?{query}" if query else "")

    @property
    def primary_url(self) -> str:
        return self.url(self.primary_port)

    @property
    def replica_url(self) -> str:
        return self.url(self.replica_port)

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bindir / tool), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed: {done.stdout}{done.stderr}")

    def _settings(self, data: Path, port: int) -> None:
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(SETTINGS.format(folder=self.folder, port=port))

    def create(self) -> None:
        primary, replica = self.folder / "primary", self.folder / "replica"
        self._run(
            "initdb",
            *("-D", str(primary), "-U", "postgres", "--auth=trust", "--no-sync"),
            *("-E", "UTF8", "--locale=C"),
        )
        self._settings(primary, self.primary_port)
        self._run(
            "pg_ctl", "-D", str(primary), "-l", str(self.folder / "primary.log"), "-w", "start"
        )
        self._run(
            "pg_basebackup",
            *("-h", "127.0.0.1", "-p", str(self.primary_port), "-U", "postgres"),
            *("-D", str(replica), "-R", "-X", "stream", "--no-sync", "-c", "fast"),
        )
        self._settings(replica, self.replica_port)  # the last line of a setting wins
        self.start_replica()

    def start_replica(self) -> None:
        replica = self.folder / "replica"
        self._run("pg_ctl", "-D", str(replica), "-l", f"{replica}.log", "-w", "start")
        self.wait_streaming()

    def stop_replica(self) -> None:
        self._run("pg_ctl", "-D", str(self.folder / "replica"), "-m", "fast", "-w", "stop")

    def stop(self) -> None:
        for data in ("replica", "primary"):
            if (self.folder / data / "postmaster.pid").exists():
                with suppress(RuntimeError):
                    self._run("pg_ctl", "-D", str(self.folder / data), "-m", "immediate", "stop")

    def replica_sql(self, sql: str) -> list[tuple[Any, ...]]:
        """The rows ``sql`` returns on the replica (none for a command)."""
        return _rows(self.replica_url, sql)

    def primary_sql(self, sql: str) -> list[tuple[Any, ...]]:
        """The rows ``sql`` returns on the primary (none for a command)."""
        return _rows(self.primary_url, sql)

    def wait_streaming(self, timeout: float = 30) -> None:
        """Until the primary lists the replica as streaming."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.primary_sql("SELECT state FROM pg_stat_replication")
            if ("streaming",) in rows:
                return
            assert time.monotonic() < deadline, "the replica did not start streaming"
            time.sleep(0.05)

    def wait_caught_up(self, timeout: float = 30) -> None:
        """Until the replica has replayed everything the primary had written when asked, and
        a transaction committed just then: the replica's last replayed commit is recent, so
        its lag (measured from that commit's time) is near zero, as on a busy primary."""
        self.primary_sql("SELECT txid_current()")
        target = self.primary_sql("SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn")[0][0]
        deadline = time.monotonic() + timeout
        while True:
            replayed = self.replica_sql("SELECT pg_last_wal_replay_lsn() - '0/0'::pg_lsn")[0][0]
            if replayed is not None and replayed >= target:
                return
            assert time.monotonic() < deadline, "the replica did not catch up"
            time.sleep(0.02)

    def pause_replay(self) -> None:
        self.replica_sql("SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        self.replica_sql("SELECT pg_wal_replay_resume()")


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        cursor = conn.execute(sql)
        return cursor.fetchall() if cursor.description is not None else []


@contextmanager
def streaming_pair() -> Iterator[StreamingPair]:
    """A primary and its replica, running; stopped and deleted afterwards."""
    bindir = postgres_bindir()
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        unavailable("running PostgreSQL as root needs runuser to become the postgres user")
    folder = Path(tempfile.mkdtemp(prefix="radcase-replica-"))
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(folder)
            unavailable("PostgreSQL refuses root and there is no postgres user to run it as")
        os.chown(folder, account.pw_uid, account.pw_gid)
    pair = StreamingPair(bindir, folder)
    try:
        pair.create()
        yield pair
    finally:
        pair.stop()
        shutil.rmtree(folder, ignore_errors=True)
