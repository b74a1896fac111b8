"""Shared fixtures: real stores in temp folders, the DICOMweb app alone, the whole server in
process and on a free loopback port. What tests build and send (instances, STOW-RS bodies,
the corpus of pydicom's test files) is in tests/factories.py.

Every test using ``client`` or ``live_server`` also checks, at teardown, that the audit log
holds an entry of the right action for every clinical DICOMweb request the test made.
``dicomweb_client`` is the DICOMweb app alone, for protocol tests: no audit, authentication
or teaching layer, so none is built for them.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from radcase_pacs.app import create_app
from radcase_pacs.deployment import Deployment, open_deployment
from radcase_pacs.settings import Settings
from storage.archive import Archive
from storage.blobs.filesystem import FilesystemBlobStore
from storage.cache.memory import MemoryCache
from storage.index.sqlite import SqliteIndex
from storage.stores import Stores
from tests.factories import dicomweb_app, free_port

# The protocol and teaching suites exercise what a server answers, not who may ask: they run
# with authentication off (as a loopback demo would). The auth tests turn it on explicitly.
os.environ.setdefault("RADCASE_AUTH", "off")

# Modules holding an end-to-end or slow test take most of the suite's time (a server, a
# browser, DCMTK or Orthanc of their own).
LONG_MARKERS = ("e2e", "slow")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long modules first, each module's tests kept together and in order.

    ``--dist loadfile --no-loadscope-reorder`` hands whole modules to the workers in
    collection order (xdist's own reorder puts the modules with the most tests first, which
    are not the long ones). Started last, a long module keeps one worker busy after the
    others have run out of work; started first, the short ones fill in around it."""
    long_modules = {
        item.path for item in items if any(item.get_closest_marker(m) for m in LONG_MARKERS)
    }
    items.sort(key=lambda item: item.path not in long_modules)


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Stores]:
    """Opened embedded stores (tests/dicomweb runs over every backend combination instead)."""
    opened = Stores(
        index=SqliteIndex(tmp_path / "index.sqlite3"),
        blobs=FilesystemBlobStore(tmp_path / "blobs"),
        cache=MemoryCache(64 * 1024 * 1024),
    )
    opened.open()
    yield opened
    opened.close()


@pytest.fixture
def archive(stores: Stores) -> Archive:
    """The default tenant's archive over ``stores`` (no ingest observers: what a test stores
    through it is not counted or taken in as a KOS; the deployment's archive is)."""
    return Archive(stores)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


CLINICAL_ROOT = re.compile(r"^/dicomweb(/|$)")
STUDY_IN_PATH = re.compile(r"/studies/([^/]+)")
SEARCHES = ("/studies", "/series", "/instances")
# Refused by authentication before the clinical app: nothing was read, nothing to audit.
NOT_ADMITTED = (401, 403)


def expected_action(method: str, path: str) -> str:
    """The action a request on the clinical root must be audited as (written here from
    PS3.18's resource names, not taken from the middleware)."""
    if method in ("GET", "HEAD"):
        return "clinical.search" if path.rstrip("/").endswith(SEARCHES) else "clinical.read"
    return {"POST": "clinical.store", "DELETE": "clinical.delete"}.get(method, "clinical.other")


class ClinicalRequests:
    """The app as tests reach it, noting each clinical DICOMweb request (CORS preflights
    aside) and its status, so that teardown can hold the audit log to one entry each."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.requests: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:  # client.app.state... reaches the app's
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] == "OPTIONS"
            or not CLINICAL_ROOT.match(scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        request = {"method": scope["method"], "path": scope["path"], "status": None}
        self.requests.append(request)

        async def noting_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                request["status"] = message["status"]
            await send(message)

        await self.app(scope, receive, noting_status)

    def assert_audited(self) -> None:
        admitted = [r for r in self.requests if r["status"] not in NOT_ADMITTED]
        expected = Counter(expected_action(r["method"], r["path"]) for r in admitted)
        _, entries = self.app.state.audit.search(
            None, channel="http", limit=len(self.requests) + 1000
        )
        clinical = [e for e in entries if e.action.startswith("clinical.")]
        recorded = Counter(e.action for e in clinical)
        missing = expected - recorded
        assert not missing, f"clinical requests without an audit entry: {dict(missing)}"
        assert len(clinical) <= len(self.requests), "more audit entries than requests"
        in_paths = {m.group(1) for r in admitted if (m := STUDY_IN_PATH.search(r["path"]))}
        unaudited = in_paths - {e.study_uid for e in clinical}
        assert not unaudited, f"studies read without an audit entry naming them: {unaudited}"


@pytest.fixture
def deployment(settings: Settings, stores: Stores) -> Iterator[Deployment]:
    """The whole deployment over the test's clinical stores (the same data ``archive``
    sees), its other stores in the test's folder."""
    with open_deployment(settings, clinical=stores) as opened:
        yield opened


@pytest.fixture
def client(deployment: Deployment) -> Iterator[TestClient]:
    app = ClinicalRequests(create_app(deployment))
    with TestClient(app) as test_client:
        yield test_client
        app.assert_audited()


@pytest.fixture
def live_server(deployment: Deployment) -> Iterator[str]:
    """A real uvicorn server on a free loopback port; yields the DICOMweb root URL."""
    port = free_port()
    app = ClinicalRequests(create_app(deployment))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/dicomweb"
        app.assert_audited()
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def dicomweb_client(archive: Archive) -> Iterator[TestClient]:
    """The DICOMweb app alone over ``archive`` (tests/factories.py ``dicomweb_app``)."""
    with TestClient(dicomweb_app(archive)) as test_client:
        yield test_client
