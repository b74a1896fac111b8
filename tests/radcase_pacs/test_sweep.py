"""The orphan sweep of a whole deployment: clinical and teaching blob stores, held-back copies
of flagged instances kept while a case holds them, ``radcase-pacs sweep``, the sweep's
settings and the periodic run inside ``serve``."""

from __future__ import annotations

import io
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from pydicom.uid import generate_uid

from radcase_pacs.cli import main
from radcase_pacs.deployment import Deployment, open_deployment
from radcase_pacs.settings import Settings, load_settings, read_toml
from radcase_pacs.sweep_runner import PeriodicSweep, periodic_sweep
from radcase_pacs.sweeping import LOCK, sweep_deployment
from storage.archive import HELD_PREFIX
from storage.blobs.base import BlobStore
from storage.database.locks import exclusive
from storage.sweep import SweepReport
from storage.urls import open_blobs, open_database
from teaching.cases.models import CaseCreate, CaseStatus, PixelReview, PixelReviewIn
from teaching.cases.store import CaseStore, NewCase, TeachingInstance
from tests.backends import deployment_settings, free_port
from tests.factories import make_instance, to_bytes
from tests.serving import serve

TENANT = "default"
HOUR = timedelta(hours=1)


@pytest.fixture(params=["embedded", "production"])
def settings(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """SQLite and folders, or PostgreSQL, S3 and Redis (the teaching stores derived)."""
    return deployment_settings(request.param, request, tmp_path, monkeypatch)


@contextmanager
def blob_stores(settings: Settings) -> Iterator[tuple[BlobStore, BlobStore]]:
    """The clinical and teaching blob stores, opened apart from any archive."""
    with ExitStack() as stack:
        opened = []
        for url in (settings.resolved_blob_url, settings.resolved_teaching_blob_url):
            store = open_blobs(url, s3_endpoint_url=settings.s3_endpoint_url)
            store.open()
            stack.callback(store.close)
            opened.append(store)
        yield opened[0], opened[1]


@pytest.fixture
def deployment(settings: Settings) -> Iterator[Deployment]:
    with open_deployment(settings) as opened:
        yield opened


def held_key(tenant: str, sop_uid: str) -> str:
    """Where the archive holds a copy (storage.archive.Archive.hold)."""
    return f"{HELD_PREFIX}/{tenant}/{sop_uid}.dcm"


def flagged_study(count: int = 1, *, plain: int = 0) -> tuple[str, list[bytes]]:
    """A study of ``count`` instances with burned-in text and ``plain`` without."""
    study = generate_uid()
    instances = []
    for number in range(count + plain):
        ds = make_instance(study_uid=study, instance_number=number + 1)
        if number < count:
            ds.BurnedInAnnotation = "YES"
        instances.append(to_bytes(ds))
    return study, instances


def put(store: BlobStore, key: str, data: bytes = b"orphan") -> None:
    store.put(key, io.BytesIO(data), len(data))


def an_orphan_key() -> str:
    return f"{TENANT}/{generate_uid()}/{generate_uid()}/{generate_uid()}.0123456789abcdef.dcm"


def by_label(reports: list[SweepReport] | None) -> dict[str, SweepReport]:
    assert reports is not None
    return {report.store.split(" (")[0]: report for report in reports}


def test_the_sweep_keeps_held_back_copies_of_live_cases_and_removes_every_orphan(
    settings: Settings, deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = deployment.cases
    live_study, live = flagged_study(1, plain=1)
    deleted_study, deleted = flagged_study(1)
    crashed_study, crashed = flagged_study(1)
    for data in [*live, *deleted, *crashed]:
        deployment.clinical.ingest(io.BytesIO(data))
    live_case = service.create(
        TENANT, CaseCreate(study_instance_uid=live_study, title="Live"), "educator"
    )
    gone = service.create(
        TENANT, CaseCreate(study_instance_uid=deleted_study, title="Gone"), "educator"
    )
    # The case store forgets the case and the process dies before removing the copy.
    assert service.store.delete(TENANT, gone.id) is not None
    # The copy is written, then the process dies before the case is recorded.
    with monkeypatch.context() as patched:
        patched.setattr(service.store, "insert_case", _crash)
        with pytest.raises(RuntimeError):
            service.create(
                TENANT, CaseCreate(study_instance_uid=crashed_study, title="Crash"), "educator"
            )
    with blob_stores(settings) as (clinical, teaching):
        clinical_orphan, teaching_orphan = an_orphan_key(), an_orphan_key()
        put(clinical, clinical_orphan)
        put(teaching, teaching_orphan)
        put(teaching, "operator/readme.txt", b"not ours")
        clinical_before, teaching_before = set(clinical.keys()), set(teaching.keys())
        held = {k for k in teaching_before if k.startswith("_pending/")}
        assert len(held) == 3
        (live_copy,) = [i for i in live_case.instances if i.review is PixelReview.PENDING]
        kept_copy = held_key(TENANT, live_copy.sop_instance_uid)
        assert kept_copy in held

        young = by_label(sweep_deployment(deployment, grace=HOUR))
        assert set(clinical.keys()) == clinical_before
        assert set(teaching.keys()) == teaching_before
        assert young["clinical blobs"].too_young == 1
        assert young["teaching blobs"].too_young == 3  # two copies and the orphan

        reports = by_label(sweep_deployment(deployment, grace=timedelta(0)))
        assert set(clinical.keys()) == clinical_before - {clinical_orphan}
        assert set(teaching.keys()) == teaching_before - (held - {kept_copy}) - {teaching_orphan}
        assert (reports["clinical blobs"].removed, reports["clinical blobs"].referenced) == (1, 4)
        assert reports["teaching blobs"].removed == 3
        assert reports["teaching blobs"].referenced == 2  # the live copy and the plain instance
        assert reports["teaching blobs"].foreign == 1
    reviewed = service.review(
        TENANT, live_case.id, live_copy.sop_instance_uid, PixelReviewIn(action="confirm_clean")
    )
    assert reviewed.pending_reviews == 0
    assert service.publish(TENANT, live_case.id).status == "published"


def _crash(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError("the process died here")


def test_a_deployment_with_one_blob_store_for_both_collections_loses_nothing(
    tmp_path: Path,
) -> None:
    shared = f"file:///{tmp_path / 'blobs'}"
    settings = Settings(data_dir=tmp_path / "data", blob_url=shared, teaching_blob_url=shared)
    with open_deployment(settings) as deployment:
        study, instances = flagged_study(1, plain=1)
        for data in instances:
            deployment.clinical.ingest(io.BytesIO(data))
        deployment.cases.create(
            TENANT, CaseCreate(study_instance_uid=study, title="Shared"), "educator"
        )
        with blob_stores(settings) as (store, _):
            before = set(store.keys())
            assert len(before) == 4  # two clinical instances, a teaching copy, a held copy
            (report,) = sweep_deployment(deployment, grace=timedelta(0)) or []
            assert report.store.startswith("blobs (")
            assert (report.referenced, report.removed) == (4, 0)
            assert set(store.keys()) == before


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_held_keys_names_the_copies_cases_hold_asked_in_batches(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'teaching.sqlite3'}"
        if kind == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    store = CaseStore(open_database(url))
    store.open()
    try:
        held = [held_key(TENANT, generate_uid()) for _ in range(3)]
        for number, key in enumerate(held):
            case = NewCase(
                tenant=TENANT,
                case_id=f"case-{number}",
                content={"title": "t"},
                status=CaseStatus.DRAFT,
                author="a",
                note="",
                origin="api",
                source_study_uid="1.2",
                teaching_study_uid="2.25.1",
                created_at=datetime.now(UTC),
            )
            store.insert_case(case, [_held_instance(key)], [])
        others = [held_key(TENANT, generate_uid()) for _ in range(1100)]
        assert store.held_keys([*others[:600], *held, *others[600:]]) == set(held)
        assert store.delete(TENANT, "case-1") is not None
        assert store.held_keys(held) == {held[0], held[2]}
        assert store.held_keys([]) == set()
    finally:
        store.close()


def _held_instance(key: str) -> TeachingInstance:
    return TeachingInstance(
        sop_uid=key.rsplit("/", 1)[1].removesuffix(".dcm"),
        study_uid="2.25.1",
        series_uid="2.25.2",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
        burned_in=True,
        reasons=("flagged",),
        review=PixelReview.PENDING,
        pending_key=key,
    )


# == radcase-pacs sweep ======================================================================


def test_the_sweep_command_reports_removes_and_defers_to_a_running_sweep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    settings = Settings(data_dir=data)
    with open_deployment(settings) as deployment:
        kept = deployment.archive.ingest(io.BytesIO(to_bytes(make_instance())))
    with blob_stores(settings) as (clinical, _):
        orphan = an_orphan_key()
        put(clinical, orphan, b"x" * 2048)
        stale = data / "blobs" / TENANT / "1.2" / "3.4" / ".5.0123456789abcdef.dcm.abcdefgh.tmp"
        stale.parent.mkdir(parents=True)
        stale.write_bytes(b"half")
        hours_ago = time.time() - 7200
        os.utime(stale, (hours_ago, hours_ago))
        os.utime(data / "blobs" / orphan, (hours_ago, hours_ago))
        flags = ["--data-dir", str(data), "sweep"]

        assert main([*flags, "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert "clinical blobs (file://" in out and "teaching blobs (file://" in out
        assert "would remove 1 orphans (2.0 KiB)" in out
        assert "would remove 1 abandoned partial writes (4 bytes)" in out
        assert clinical.exists(orphan) and stale.exists()

        database = open_database(settings.resolved_index_url)
        with exclusive(database, LOCK) as held:
            assert held
            assert main(flags) == 1
            assert "another process is sweeping" in capsys.readouterr().err
        assert clinical.exists(orphan)

        assert main([*flags, "--grace", "-1"]) == 2
        assert main(flags) == 0  # the default grace: an hour, and they are two hours old
        out = capsys.readouterr().out
        assert "removed 1 orphans (2.0 KiB)" in out
        assert "removed 1 abandoned partial writes (4 bytes)" in out
        assert not clinical.exists(orphan) and not stale.exists()
        assert len(list(clinical.keys())) == 1
    with open_deployment(settings) as deployment:
        archive = deployment.archive
        (stored,) = archive.instances(kept.study_uid, kept.series_uid, kept.sop_uid)
        assert archive.read(stored)[128:132] == b"DICM"


# == settings ================================================================================


def test_the_sweep_settings_default_to_an_hour_of_grace_every_six_hours(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert (settings.sweep_grace_seconds, settings.sweep_interval_seconds) == (3600, 21600)
    documented = read_toml(Path(__file__).resolve().parents[2] / "config" / "radcase.toml")
    assert documented["sweep_grace_seconds"] == 3600
    assert documented["sweep_interval_seconds"] == 21600
    assert Settings(data_dir=tmp_path, sweep_interval_seconds=0).sweep_interval_seconds == 0


def test_a_grace_period_too_short_for_an_ingest_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RADCASE_SWEEP_GRACE_SECONDS", "5")
    with pytest.raises(ValidationError, match="sweep_grace_seconds"):
        load_settings(None)


# == the periodic sweep ======================================================================


def test_the_periodic_sweep_runs_every_interval_until_stopped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs: list[float] = []
    three = threading.Event()

    def sweep(stop: Any) -> list[SweepReport] | None:
        runs.append(time.monotonic())
        if len(runs) == 2:
            raise OSError("the store is away")
        if len(runs) >= 3:
            three.set()
        return None if len(runs) == 3 else []

    sweeper = PeriodicSweep(sweep, interval=0.05, first_delay=0)
    with caplog.at_level(logging.INFO, logger="radcase_pacs.sweep_runner"):
        sweeper.start()
        assert three.wait(10)
        sweeper.stop()
    count = len(runs)
    time.sleep(0.2)
    assert len(runs) == count  # stopped
    messages = [r.getMessage() for r in caplog.records]
    assert any("the orphan sweep failed" in m for m in messages)
    assert any("another process is sweeping" in m for m in messages)


def test_a_periodic_sweep_with_interval_zero_never_runs() -> None:
    sweeper = PeriodicSweep(lambda stop: pytest.fail("swept"), interval=0)
    sweeper.start()
    time.sleep(0.1)
    sweeper.stop()
    assert sweeper.first_delay == 0


def test_the_first_periodic_sweep_comes_within_ten_minutes_of_start(tmp_path: Path) -> None:
    with open_deployment(Settings(data_dir=tmp_path)) as deployment:
        sweeper = periodic_sweep(deployment)
    assert (sweeper.interval, sweeper.first_delay) == (21600, 600)


@pytest.mark.e2e
def test_serve_sweeps_old_orphans_while_it_serves_and_keeps_young_ones(tmp_path: Path) -> None:
    """A real server process with a one-second interval (end to end: a few seconds)."""
    data = tmp_path / "data"
    settings = Settings(data_dir=data)
    with blob_stores(settings) as (clinical, _):
        old, young = an_orphan_key(), an_orphan_key()
        put(clinical, old)
        put(clinical, young)
        hours_ago = time.time() - 7200
        os.utime(data / "blobs" / old, (hours_ago, hours_ago))
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("RADCASE_")},
            "RADCASE_AUTH": "off",
            "RADCASE_DATA_DIR": str(data),
            "RADCASE_DIMSE_PORT": str(free_port()),
            "RADCASE_SWEEP_INTERVAL_SECONDS": "1",
        }
        with serve(env, log=tmp_path / "server.log") as base:
            deadline = time.monotonic() + 20
            while clinical.exists(old) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert not clinical.exists(old)
            assert clinical.exists(young)
            assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
    assert "orphan sweep: clinical blobs" in (tmp_path / "server.log").read_text()
