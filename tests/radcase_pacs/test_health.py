"""/healthz: readiness names each backend and fails for a database, never for a blob store
or cache; liveness asks no backend; a check that hangs is waited for briefly and never
started twice; the outer layers' 503s are readable cross-origin and say when to retry."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from radcase_pacs.audit.store import AuditEntry
from radcase_pacs.health import Check, Health
from radcase_pacs.settings import Settings
from storage.errors import BackendFailure, BackendUnavailable
from storage.stores import Stores
from tests.apps import served


def test_a_check_that_hangs_is_waited_for_briefly_and_never_started_twice() -> None:
    release = threading.Event()
    calls: list[float] = []

    def frozen() -> None:
        calls.append(time.monotonic())
        release.wait(10)

    def down() -> None:
        raise BackendFailure("refused")

    health = Health(
        [
            Check("index", lambda: None, required=True),
            Check("blobs", frozen, required=False),
            Check("cache", down, required=False),
        ],
        timeout=0.2,
    )
    try:
        started = time.monotonic()
        first = anyio.run(health.report)
        second = anyio.run(health.report)
        took = time.monotonic() - started
    finally:
        release.set()
    assert took < 1.0
    assert len(calls) == 1  # the second report did not start another thread on it
    assert first.ready and first.status == "degraded"
    assert first.as_json()["backends"] == {
        "index": {"status": "ok", "required": True},
        "blobs": {"status": "failing", "required": False, "detail": "no answer within 0.2 s"},
        "cache": {"status": "failing", "required": False, "detail": "refused"},
    }
    assert first.reason == "blobs: no answer within 0.2 s"
    blobs = second.as_json()["backends"]["blobs"]  # type: ignore[index]
    assert blobs["detail"].startswith("no answer yet, asked")


def test_readiness_fails_for_a_database_and_liveness_does_not(
    tmp_path: Path, stores: Stores, postgres_url: str
) -> None:
    settings = Settings(data_dir=tmp_path / "data", index_url=postgres_url)
    with served(settings, stores=stores) as client:
        app: Any = client.app
        assert client.get("/healthz?probe=ready").status_code == 200
        app.state.audit.close()
        ready = client.get("/healthz")
        assert ready.status_code == 503
        report = ready.json()
        assert report["status"] == "unavailable"
        assert report["reason"].startswith("audit log: ") and "not open" in report["reason"]
        assert report["backends"]["audit log"]["status"] == "failing"
        assert report["backends"]["index"]["status"] == "ok"
        live = client.get("/healthz?probe=live")
        assert live.status_code == 200 and live.json()["status"] == "ok"
        assert live.json()["blob_threads"]["threads"] == 16
        bad = client.get("/healthz?probe=sometimes")
        assert bad.status_code == 400 and "probe" in bad.json()["detail"]


@pytest.mark.parametrize("origins", ["*", "https://viewer.example"])
def test_the_audit_refusal_is_readable_cross_origin_and_says_when_to_retry(
    tmp_path: Path, stores: Stores, monkeypatch: pytest.MonkeyPatch, origins: str
) -> None:
    settings = Settings(data_dir=tmp_path / "data", cors_origins=origins)
    with served(settings, stores=stores) as client:
        app: Any = client.app

        def silent(entry: AuditEntry) -> None:
            raise BackendUnavailable("PostgreSQL did not answer within 5 s", retry_after=7)

        monkeypatch.setattr(app.state.audit, "record", silent)
        viewer = {"Origin": "https://viewer.example"}
        refused = client.get("/dicomweb/studies", headers=viewer)
        assert refused.status_code == 503 and "audit log is unavailable" in refused.text
        assert refused.headers["retry-after"] == "7"
        assert refused.headers["access-control-allow-origin"] == (
            "*" if origins == "*" else "https://viewer.example"
        )
        assert "Retry-After" in refused.headers["access-control-expose-headers"]
        stranger = client.get("/dicomweb/studies", headers={"Origin": "https://elsewhere.example"})
        if origins != "*":
            assert "access-control-allow-origin" not in stranger.headers
        assert "access-control-allow-origin" not in client.get("/api/cases", headers=viewer).headers
