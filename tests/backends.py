"""Real production backends for tests: a PostgreSQL schema, a Redis key prefix and an S3 bucket
per test, each removed afterwards, and whole archives over any combination of backends.

PostgreSQL and Redis are the machine's own services (``RADCASE_TEST_POSTGRES_URL``,
``RADCASE_TEST_REDIS_URL`` override where). When one cannot be reached its tests are skipped
with the reason, except under ``CI=true``, where a missing component is a failure: CI is there
to run them. S3 is moto's standalone server on a free loopback port, spoken to over HTTP.

Combinations are named ``INDEX-CACHE-BLOBS``: index ``sqlite`` or ``postgres``, cache ``memory``
or ``redis``, blobs ``folder`` or ``s3`` (e.g. ``postgres-redis-s3``). ``RADCASE_TEST_BACKENDS``
lists the ones the DICOMweb tests marked ``backends`` run over (default: the embedded
``sqlite-memory-folder`` and the production ``postgres-redis-s3``); every other test uses the
embedded one. Each backend on its own is held to its role's contract in tests/storage.

Everything here is per process (the moto server, the schema, prefix and bucket names), so
test processes running side by side (pytest-xdist workers) never share one.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, NoReturn

import pytest

from radcase_pacs.settings import Settings
from storage.archive import Archive
from storage.blobs.base import BlobStore
from storage.blobs.filesystem import FilesystemBlobStore
from storage.cache.base import Cache
from storage.cache.memory import MemoryCache
from storage.index.base import Index
from storage.index.sqlite import SqliteIndex
from storage.stores import Stores
from tests.factories import free_port

POSTGRES_URL = os.environ.get(
    "RADCASE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("RADCASE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
S3_REGION = "us-east-1"
# The combinations a deployment runs: the embedded default and the production set-up.
EMBEDDED = "sqlite-memory-folder"
DEFAULT_BACKENDS = f"{EMBEDDED},postgres-redis-s3"
INDEXES = ("sqlite", "postgres")
CACHES = ("memory", "redis")
BLOB_STORES = ("folder", "s3")


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def unavailable(reason: str) -> NoReturn:
    """Skip the test for a missing real component, or fail it under CI."""
    if under_ci():
        pytest.fail(f"{reason} (CI=true: every backend must be present)", pytrace=False)
    pytest.skip(reason)


def _token() -> str:
    return secrets.token_hex(6)


# -- PostgreSQL ---------------------------------------------------------------------------


@functools.cache
def postgres_problem() -> str | None:
    """Why PostgreSQL cannot be used here, or None (asked once per run)."""
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL, connect_timeout=3) as connection:
            connection.execute("SELECT 1")
    except Exception as exc:  # any reason at all means: not usable
        return f"PostgreSQL at {POSTGRES_URL} is not reachable: {exc}"
    return None


def _with_param(url: str, name: str, value: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{name}={value}"


@contextmanager
def postgres_schema() -> Iterator[str]:
    """An index URL naming a fresh PostgreSQL schema, dropped (with its tables) afterwards."""
    problem = postgres_problem()
    if problem:
        unavailable(problem)
    import psycopg

    name = f"radcase_test_{_token()}"
    try:
        yield _with_param(POSTGRES_URL, "schema", name)
    finally:
        # The teaching collection's schema is derived from the index's (storage.namespaces).
        with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3) as connection:
            for schema in (name, f"{name}_teaching"):
                connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# -- Redis --------------------------------------------------------------------------------


@functools.cache
def redis_problem() -> str | None:
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_timeout=3, socket_connect_timeout=3)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        return f"Redis at {REDIS_URL} is not reachable: {exc}"
    return None


@contextmanager
def redis_prefix() -> Iterator[str]:
    """A key prefix of its own on the shared Redis; its keys are deleted afterwards."""
    problem = redis_problem()
    if problem:
        unavailable(problem)
    import redis

    prefix = f"radcase-test:{_token()}:"
    try:
        yield prefix
    finally:
        client = redis.Redis.from_url(REDIS_URL, socket_timeout=3)
        try:
            names = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if names:
                client.delete(*names)
        finally:
            client.close()


# -- S3 (moto) ----------------------------------------------------------------------------


class MotoS3:
    """moto's standalone S3 server on a free loopback port, started once and shared."""

    def __init__(self) -> None:
        self._server: Any = None
        self._session: Any = None
        self._client: Any = None
        self._lock = threading.Lock()
        self.endpoint = ""

    def start(self) -> MotoS3:
        with self._lock:
            if self._server is None:
                try:
                    from moto.server import ThreadedMotoServer
                except ImportError as exc:
                    unavailable(f"moto's server is not installed: {exc}")
                logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request
                port = free_port()
                server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
                server.start()
                self._server = server
                self.endpoint = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        with self._lock:
            server, self._server = self._server, None
            client, self._client = self._client, None
            if client is not None:
                client.close()
            if server is not None:
                server.stop()

    def session(self) -> Any:
        """A boto3 session with moto's dummy credentials, leaving the real AWS setup alone.
        One session for the run: it loads botocore's service models once for every client."""
        import boto3

        if self._session is None:
            self._session = boto3.session.Session(
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
                region_name=S3_REGION,
            )
        return self._session

    def client(self) -> Any:
        """A client for setting up and tearing down buckets."""
        if self._client is None:
            self._client = self.session().client("s3", endpoint_url=self.endpoint)
        return self._client


MOTO = MotoS3()
atexit.register(MOTO.stop)


@contextmanager
def s3_bucket() -> Iterator[str]:
    """A new bucket on the moto server, emptied and deleted afterwards."""
    client = MOTO.start().client()
    name = f"radcase-test-{_token()}"
    client.create_bucket(Bucket=name)
    try:
        yield name
    finally:
        uploads = client.list_multipart_uploads(Bucket=name).get("Uploads", [])
        for upload in uploads:
            client.abort_multipart_upload(
                Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"]
            )
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            objects = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if objects:
                client.delete_objects(Bucket=name, Delete={"Objects": objects})
        client.delete_bucket(Bucket=name)


# -- stores -------------------------------------------------------------------------------


def make_index(kind: str, stack: ExitStack, tmp_path: Path) -> Index:
    """An index of ``kind`` (not opened); its clean-up is registered on ``stack``."""
    if kind == "sqlite":
        return SqliteIndex(tmp_path / "index.sqlite3")
    if kind == "postgres":
        from storage.urls import open_index

        return open_index(stack.enter_context(postgres_schema()))
    raise ValueError(f"unknown index kind {kind!r}, expected one of {INDEXES}")


def make_cache(kind: str, stack: ExitStack) -> Cache:
    if kind == "memory":
        return MemoryCache(64 * 1024 * 1024)
    if kind == "redis":
        from storage.cache.redis import RedisCache

        return RedisCache(REDIS_URL, prefix=stack.enter_context(redis_prefix()))
    raise ValueError(f"unknown cache kind {kind!r}, expected one of {CACHES}")


def make_blobs(kind: str, stack: ExitStack, tmp_path: Path) -> BlobStore:
    if kind == "folder":
        return FilesystemBlobStore(tmp_path / "blobs")
    if kind == "s3":
        from storage.blobs.s3 import S3BlobStore

        bucket = stack.enter_context(s3_bucket())
        return S3BlobStore(bucket, "archive", endpoint_url=MOTO.endpoint, session=MOTO.session())
    raise ValueError(f"unknown blob store kind {kind!r}, expected one of {BLOB_STORES}")


def backend_names() -> list[str]:
    """The combinations named by ``RADCASE_TEST_BACKENDS`` (comma-separated)."""
    raw = os.environ.get("RADCASE_TEST_BACKENDS", "") or DEFAULT_BACKENDS
    names = [n.strip() for n in raw.split(",") if n.strip()]
    for name in names:
        parts = name.split("-")
        if (
            len(parts) != 3
            or parts[0] not in INDEXES
            or parts[1] not in CACHES
            or parts[2] not in BLOB_STORES
        ):
            raise ValueError(
                f"RADCASE_TEST_BACKENDS: {name!r} is not INDEX-CACHE-BLOBS with INDEX in "
                f"{INDEXES}, CACHE in {CACHES}, BLOBS in {BLOB_STORES}"
            )
    return names


@contextmanager
def stores_for(name: str, tmp_path: Path) -> Iterator[Stores]:
    """Opened stores of the combination ``name``; everything they stored is removed
    afterwards (schema dropped, keys deleted, bucket deleted, files left to ``tmp_path``)."""
    index_kind, cache_kind, blob_kind = name.split("-")
    with ExitStack() as stack:
        stores = Stores(
            index=make_index(index_kind, stack, tmp_path),
            blobs=make_blobs(blob_kind, stack, tmp_path),
            cache=make_cache(cache_kind, stack),
        )
        stores.open()
        stack.callback(stores.close)
        yield stores


@contextmanager
def archive_for(name: str, tmp_path: Path) -> Iterator[Archive]:
    """An opened archive over the combination ``name`` (see :func:`stores_for`)."""
    with stores_for(name, tmp_path) as stores:
        yield Archive(stores)


# -- fixtures (import them into a conftest to use them) -----------------------------------


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoS3]:
    """The session's moto S3 server."""
    yield MOTO.start()
    MOTO.stop()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """An index URL with a schema of this test's own."""
    with postgres_schema() as url:
        yield url


@pytest.fixture
def redis_key_prefix() -> Iterator[str]:
    with redis_prefix() as prefix:
        yield prefix


@pytest.fixture
def s3_bucket_name(s3_server: MotoS3) -> Iterator[str]:
    with s3_bucket() as name:
        yield name


# -- a Redis server a test can stop and restart ------------------------------------------


class PrivateRedis:
    """A redis-server of the test's own, so it can be killed and brought back."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        import redis

        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("the private redis-server did not start") from None
                time.sleep(0.05)
        client.close()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed")
    server = PrivateRedis(free_port())
    server.start()
    try:
        yield server
    finally:
        server.kill()


def deployment_settings(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """Settings of a whole server: ``embedded`` (SQLite, folders, memory) or ``production``
    (PostgreSQL, S3 and Redis, each of this test's own), the teaching stores derived."""
    if kind == "embedded":
        return Settings(data_dir=tmp_path / "data")
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    return Settings(
        data_dir=tmp_path / "unused",
        index_url=request.getfixturevalue("postgres_url"),
        cache_url=f"{REDIS_URL}?prefix={request.getfixturevalue('redis_key_prefix')}",
        blob_url=f"s3://{request.getfixturevalue('s3_bucket_name')}/archive",
        s3_endpoint_url=MOTO.endpoint,
    )


# -- backends a test can freeze and thaw --------------------------------------------------


def _freeze(pid: int) -> None:
    """SIGSTOP: the process keeps its sockets, and the kernel keeps accepting connections
    on them and acknowledging what is sent, but nothing answers (a saturated, swapped-out or
    partitioned server as its clients see it). A process that has just ended is skipped."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGSTOP)


def _thaw(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)


class Freezable:
    """A private server whose one process can be frozen (SIGSTOP) and thawed."""

    process: subprocess.Popen[bytes] | None

    def freeze(self) -> None:
        assert self.process is not None
        _freeze(self.process.pid)

    def thaw(self) -> None:
        assert self.process is not None
        _thaw(self.process.pid)


class PrivateMoto(Freezable):
    """moto's S3 server in a process of the test's own (never the shared one), to freeze."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        import httpx

        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{self.endpoint}/moto-api/", timeout=1)
                return
            except httpx.TransportError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("the private moto server did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.thaw()
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture(scope="module")
def private_moto() -> Iterator[PrivateMoto]:
    try:
        import moto.server  # noqa: F401
    except ImportError as exc:
        unavailable(f"moto's server is not installed: {exc}")
    server = PrivateMoto(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _postgres_program(name: str) -> str | None:
    found = shutil.which(name)
    if found is None:
        candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
        found = str(candidates[-1]) if candidates else None
    return found


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux's /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # ended meanwhile
            continue
        # "pid (command) state ppid ...": the command may hold spaces and parentheses.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own in a temporary folder, on a free port: freezing
    it stops the postmaster and every process it started. As root, it runs as the
    ``postgres`` account (PostgreSQL refuses to run as root)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        self.folder = Path(tempfile.mkdtemp(prefix="radcase-pg-"))
        self.process: subprocess.Popen[bytes] | None = None
        self._user = "postgres" if os.geteuid() == 0 else None

    def start(self) -> None:
        import psycopg

        initdb, postgres = _postgres_program("initdb"), _postgres_program("postgres")
        if initdb is None or postgres is None:
            unavailable("PostgreSQL's initdb and postgres programs are not installed")
        data = self.folder / "data"
        if self._user is not None:
            shutil.chown(self.folder, self._user, self._user)
        subprocess.run(
            [initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"],
            user=self._user,
            check=True,
            capture_output=True,
        )
        self.process = subprocess.Popen(
            [
                *(postgres, "-D", str(data), "-p", str(self.port), "-k", str(self.folder)),
                *("-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"),
            ],
            user=self._user,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(self.url, connect_timeout=2) as connection:
                    connection.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("the private PostgreSQL did not start") from None
                time.sleep(0.1)

    def freeze(self) -> None:
        """The postmaster first (it forks no new backend then), then every child: each
        backend is a session of its own (PostgreSQL calls setsid), out of the group."""
        assert self.process is not None
        _freeze(self.process.pid)
        for pid in _children(self.process.pid):
            _freeze(pid)

    def thaw(self) -> None:
        assert self.process is not None
        for pid in _children(self.process.pid):
            _thaw(pid)
        _thaw(self.process.pid)

    def stop(self) -> None:
        if self.process is not None:
            self.thaw()
            self.process.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                for pid in [*_children(self.process.pid), self.process.pid]:
                    os.kill(pid, signal.SIGKILL)
                self.process.wait()
            self.process = None
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres(free_port())
    try:
        server.start()
        yield server
    finally:
        server.stop()


class FreezableRedis(Freezable, PrivateRedis):
    """A private redis-server that can also be frozen."""

    def kill(self) -> None:
        if self.process is not None:
            self.thaw()
        super().kill()


@pytest.fixture(scope="module")
def freezable_redis() -> Iterator[FreezableRedis]:
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed")
    server = FreezableRedis(free_port())
    server.start()
    try:
        yield server
    finally:
        server.kill()
