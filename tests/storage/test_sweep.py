"""The orphan sweep over every blob store and index: listing with ages, the batched reference
check, removal of unreferenced blobs older than the grace period only, and the remains of
writes that never completed."""

from __future__ import annotations

import io
import logging
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydicom.uid import generate_uid

from storage.archive import Archive, IngestResult, is_archive_key
from storage.blobs.base import BlobStore
from storage.blobs.filesystem import FilesystemBlobStore
from storage.cache.memory import MemoryCache
from storage.database.locks import exclusive
from storage.errors import BackendFailure
from storage.index.base import Index
from storage.stores import Stores
from storage.sweep import SweepReport, sweep_store
from storage.urls import open_database
from tests.backends import MOTO, make_blobs, s3_bucket, stores_for
from tests.factories import make_instance, to_bytes

HOUR = timedelta(hours=1)
COMBINATIONS = ["sqlite-memory-folder", "postgres-memory-s3", "sqlite-memory-s3"]


def _put(store: BlobStore, key: str, data: bytes) -> None:
    store.put(key, io.BytesIO(data), len(data))


def _later(hours: float = 2) -> datetime:
    """A sweep's "now" that far ahead: everything written so far is that much older."""
    return datetime.now(UTC) + timedelta(hours=hours)


def orphan_key(tenant: str = "default") -> str:
    return f"{tenant}/{generate_uid()}/{generate_uid()}/{generate_uid()}.0123456789abcdef.dcm"


def with_bulk_value() -> bytes:
    """An instance with a non-pixel value above the bulk threshold: it gets a sidecar blob."""
    ds = make_instance()
    ds.add_new(0x00282000, "OB", b"\x5a" * 4000)  # ICC Profile
    return to_bytes(ds)


# == listing, ages and conditional deletion (both blob stores) ==============================


@pytest.fixture(params=["folder", "s3"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    with ExitStack() as stack:
        store = make_blobs(request.param, stack, tmp_path)
        store.open()
        stack.callback(store.close)
        yield store


def test_entries_list_every_object_with_its_size_and_time_of_writing(blobs: BlobStore) -> None:
    before = datetime.now(UTC) - timedelta(seconds=2)
    _put(blobs, "default/1/2/a.dcm", b"12345")
    _put(blobs, "default/1/3/b.dcm", b"")
    _put(blobs, "other/9/c.dcm", b"xy")
    after = datetime.now(UTC) + timedelta(seconds=2)
    listed = {e.key: e for e in blobs.entries()}
    assert {k: e.size for k, e in listed.items()} == {
        "default/1/2/a.dcm": 5,
        "default/1/3/b.dcm": 0,
        "other/9/c.dcm": 2,
    }
    assert all(before <= e.modified <= after for e in listed.values())
    assert sorted(e.key for e in blobs.entries("default/1/")) == [
        "default/1/2/a.dcm",
        "default/1/3/b.dcm",
    ]
    assert [e.key for e in blobs.entries("defa")] != []
    assert list(blobs.entries("nothing/")) == []


def test_delete_if_older_removes_only_what_was_written_before_the_cutoff(
    blobs: BlobStore,
) -> None:
    _put(blobs, "t/k.dcm", b"data")
    assert not blobs.delete_if_older("t/k.dcm", datetime.now(UTC) - HOUR)
    assert blobs.get("t/k.dcm") == b"data"
    assert blobs.delete_if_older("t/k.dcm", _later())
    assert not blobs.exists("t/k.dcm")
    assert not blobs.delete_if_older("t/k.dcm", _later())  # already gone
    assert list(blobs.partial_writes()) == []  # nothing left aside


def test_a_blob_written_again_after_listing_survives_its_conditional_delete(
    blobs: BlobStore,
) -> None:
    """An orphan's instance sent again after the crash lands on the same key: between the
    sweep's listing and its delete, that write makes the blob young again."""
    _put(blobs, "t/again.dcm", b"same content")
    (listed,) = blobs.entries("t/")
    time.sleep(1.1)  # S3 keeps the time of writing to the second
    cutoff = datetime.now(UTC)
    time.sleep(1.1)
    _put(blobs, "t/again.dcm", b"same content")
    assert listed.modified < cutoff
    assert not blobs.delete_if_older("t/again.dcm", cutoff)
    assert blobs.get("t/again.dcm") == b"same content"


# -- partial writes -----------------------------------------------------------------------


def test_a_crash_before_the_rename_leaves_a_partial_write_that_is_not_listed_as_a_blob(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FilesystemBlobStore(tmp_path / "blobs")
    store.open()

    def crash(*args: Any) -> None:
        raise KeyboardInterrupt  # stands for the process dying: nothing after this runs

    with monkeypatch.context() as patched:
        patched.setattr(os, "replace", crash)
        patched.setattr(Path, "unlink", lambda *a, **k: None)  # no clean-up either
        with pytest.raises(KeyboardInterrupt):
            _put(store, "default/1/2/3.dcm", b"half")
    assert list(store.keys()) == []
    assert list(store.entries()) == []
    (write,) = store.partial_writes()
    assert write.name == "default/1/2/3.dcm"
    assert write.size == 4
    store.discard_partial(write)
    assert list(store.partial_writes()) == []
    assert not any(p.is_file() for p in (tmp_path / "blobs").rglob("*"))


def test_the_folder_store_refuses_to_discard_what_is_not_a_partial_write(
    tmp_path: Path,
) -> None:
    from storage.blobs.base import PartialWrite

    store = FilesystemBlobStore(tmp_path / "blobs")
    store.open()
    _put(store, "a/b.dcm", b"x")
    with pytest.raises(BackendFailure, match="not the remains"):
        store.discard_partial(PartialWrite("a/b.dcm", "a/b.dcm", 1, datetime.now(UTC)))
    assert store.exists("a/b.dcm")


def test_an_s3_upload_in_parts_never_completed_is_a_partial_write_until_aborted(
    s3_server: Any,
) -> None:
    from storage.blobs.s3 import S3BlobStore

    with s3_bucket() as bucket:
        store = S3BlobStore(bucket, "archive", endpoint_url=MOTO.endpoint, session=MOTO.session())
        store.open()
        client = store.client
        upload = client.create_multipart_upload(Bucket=bucket, Key="archive/default/1/2/3.dcm")
        client.upload_part(
            Bucket=bucket,
            Key="archive/default/1/2/3.dcm",
            UploadId=upload["UploadId"],
            PartNumber=1,
            Body=b"\x01" * 1000,
        )
        client.create_multipart_upload(Bucket=bucket, Key="elsewhere/x.dcm")
        assert list(store.entries()) == []
        (write,) = store.partial_writes()
        assert (write.name, write.handle, write.size) == (
            "default/1/2/3.dcm",
            upload["UploadId"],
            1000,
        )
        store.discard_partial(write)
        assert list(store.partial_writes()) == []
        store.discard_partial(write)  # aborting twice is fine
        remaining = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        assert [u["Key"] for u in remaining] == ["elsewhere/x.dcm"]
        store.close()


# == the index's reference check (both dialects) ============================================


def test_referenced_keys_names_blobs_and_sidecars_of_every_tenant_in_batches(
    index: Index, tmp_path: Path
) -> None:
    blobs = FilesystemBlobStore(tmp_path / "b")
    archive = Archive(Stores(index=index, blobs=blobs, cache=MemoryCache(1024 * 1024)))
    archive.open()
    plain = archive.ingest(io.BytesIO(to_bytes(make_instance())))
    bulky = archive.ingest(io.BytesIO(with_bulk_value()))
    elsewhere = archive.with_tenant("other").ingest(io.BytesIO(to_bytes(make_instance())))
    stored = [_stored(archive, plain), _stored(archive, bulky)]
    stored.append(_stored(archive.with_tenant("other"), elsewhere))
    real = {s.blob_key for s in stored} | {s.sidecar_key for s in stored if s.sidecar_key}
    assert len(real) == 4
    unknown = [orphan_key() for _ in range(1200)]  # three batches and more
    asked = [*unknown[:700], *sorted(real), *unknown[700:]]
    assert index.referenced_keys(asked) == real
    assert index.referenced_keys(unknown) == set()
    assert index.referenced_keys([]) == set()


def _stored(archive: Archive, result: IngestResult) -> Any:
    (found,) = archive.instances(result.study_uid, result.series_uid, result.sop_uid)
    return found


# == the sweep, over whole archives =========================================================


@dataclass(frozen=True)
class World:
    """An archive and its index and blob store, held apart from it: the sweep works on the
    stores, the archive only ingests and reads."""

    archive: Archive
    index: Index
    blobs: BlobStore


@pytest.fixture(params=COMBINATIONS)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    with stores_for(request.param, tmp_path) as stores:
        yield World(Archive(stores), stores.index, stores.blobs)


def _sweep(blobs: BlobStore, references: list[Any], **options: Any) -> SweepReport:
    return sweep_store(blobs, references, owned=is_archive_key, **options)


def test_every_key_the_archive_writes_is_one_the_sweep_may_claim(world: World) -> None:
    world.archive.ingest(io.BytesIO(to_bytes(make_instance())))
    world.archive.with_tenant("site-2").ingest(io.BytesIO(with_bulk_value()))
    keys = list(world.blobs.keys())
    assert len(keys) == 3
    assert all(is_archive_key(key) for key in keys)
    assert is_archive_key(world.archive.hold(generate_uid(), b"held"))
    foreign = ("notes.txt", "default/x.dcm", "_pending/1.dcm", "a/b/c/d/e.dcm")
    nested = "_teaching/default/1.2/3.4/5.6.0123456789abcdef.dcm"  # a store inside this one
    for key in (*foreign, nested):
        assert not is_archive_key(key)


def test_the_sweep_removes_old_orphans_and_keeps_referenced_young_and_foreign_blobs(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    stored = [_stored(world.archive, world.archive.ingest(io.BytesIO(data))) for data in _two()]
    old = [orphan_key(), orphan_key("site-2"), f"{orphan_key()}.bulk"]
    for key in old:
        _put(world.blobs, key, b"orphan bytes")
    _put(world.blobs, "operator/notes.txt", b"not ours")
    before = set(world.blobs.keys())
    with caplog.at_level(logging.DEBUG, logger="storage.sweep"):
        report = _sweep(world.blobs, [world.index.referenced_keys], grace=HOUR, now=_later())
    assert set(world.blobs.keys()) == before - set(old)
    assert (report.listed, report.referenced, report.foreign) == (len(before), 3, 1)
    assert (report.removed, report.removed_bytes, report.too_young) == (3, 36, 0)
    assert {r.getMessage().split()[3] for r in caplog.records} == set(old)
    for instance in stored:
        assert world.archive.read(instance) == world.blobs.get(instance.blob_key)
        assert world.blobs.exists(instance.blob_key)


def test_an_unreferenced_blob_younger_than_the_grace_period_is_kept(world: World) -> None:
    """It may belong to an ingest between its blob write and its index commit."""
    young = orphan_key()
    _put(world.blobs, young, b"mid-ingest")
    report = _sweep(world.blobs, [world.index.referenced_keys], grace=HOUR)
    assert (report.removed, report.too_young) == (0, 1)
    assert world.blobs.get(young) == b"mid-ingest"
    report = _sweep(world.blobs, [world.index.referenced_keys], grace=HOUR, now=_later())
    assert (report.removed, report.too_young) == (1, 0)
    assert not world.blobs.exists(young)


def test_one_sweep_tells_old_orphans_from_young_ones_by_their_time_of_writing(
    world: World,
) -> None:
    old = orphan_key()
    _put(world.blobs, old, b"old")
    time.sleep(1.1)  # S3 keeps the time of writing to the second
    now = datetime.now(UTC)
    time.sleep(1.1)
    young = orphan_key()
    _put(world.blobs, young, b"young")
    report = _sweep(world.blobs, [world.index.referenced_keys], grace=timedelta(0), now=now)
    assert (report.removed, report.too_young) == (1, 1)
    assert set(world.blobs.keys()) == {young}


def test_a_dry_run_reports_what_would_go_and_removes_nothing(world: World) -> None:
    for _ in range(3):
        _put(world.blobs, orphan_key(), b"12")
    before = set(world.blobs.keys())
    report = _sweep(
        world.blobs, [world.index.referenced_keys], grace=HOUR, now=_later(), dry_run=True
    )
    assert (report.removed, report.removed_bytes) == (3, 6)
    assert "would remove 3 orphans (6 bytes)" in report.summary()
    assert set(world.blobs.keys()) == before


def test_the_sweep_works_in_pages_asking_the_index_once_per_page(world: World) -> None:
    stored = [_stored(world.archive, world.archive.ingest(io.BytesIO(d))) for d in _two()]
    referenced = [k for s in stored for k in (s.blob_key, s.sidecar_key) if k]
    assert len(referenced) == 3
    orphans = [orphan_key() for _ in range(23)]
    for key in orphans:
        _put(world.blobs, key, b"o")
    asked: list[int] = []

    def counting(keys: Any) -> set[str]:
        asked.append(len(keys))
        return world.index.referenced_keys(keys)

    report = _sweep(world.blobs, [counting], grace=HOUR, now=_later(), page_size=10)
    assert asked == [10, 10, 6]
    assert report.removed == 23
    assert sorted(world.blobs.keys()) == sorted(referenced)


def test_a_key_any_source_references_is_kept(world: World) -> None:
    """The teaching side adds sources: held-back copies named by a case."""
    held, dropped = orphan_key(), orphan_key()
    for key in (held, dropped):
        _put(world.blobs, key, b"copy")
    sources = [world.index.referenced_keys, lambda keys: {held} & set(keys)]
    report = _sweep(world.blobs, sources, grace=HOUR, now=_later())
    assert (report.removed, report.referenced) == (1, 1)
    assert set(world.blobs.keys()) == {held}


def test_a_stopped_sweep_ends_between_pages(world: World) -> None:
    for _ in range(5):
        _put(world.blobs, orphan_key(), b"o")
    pages: list[int] = []

    def stop() -> bool:
        pages.append(1)
        return len(pages) > 2

    report = _sweep(
        world.blobs,
        [world.index.referenced_keys],
        grace=HOUR,
        now=_later(),
        stop=stop,
        page_size=2,
    )
    assert report.interrupted and report.removed == 4
    assert len(list(world.blobs.keys())) == 1


def test_stale_partial_writes_go_and_fresh_ones_stay(tmp_path: Path) -> None:
    with stores_for("sqlite-memory-folder", tmp_path) as opened:
        store = opened.blobs
        assert isinstance(store, FilesystemBlobStore)
        folder = store.root / "default" / "1.2" / "3.4"
        folder.mkdir(parents=True)
        stale = folder / ".5.6.0123456789abcdef.dcm.k3j4h5g6.tmp"
        fresh = folder / ".5.7.0123456789abcdef.dcm.a1b2c3d4.tmp"
        stale.write_bytes(b"x" * 100)
        fresh.write_bytes(b"y" * 10)
        two_hours_ago = time.time() - 7200
        os.utime(stale, (two_hours_ago, two_hours_ago))
        report = _sweep(store, [opened.index.referenced_keys], grace=HOUR)
        assert (report.partial_removed, report.partial_bytes, report.partial_too_young) == (
            1,
            100,
            1,
        )
        assert not stale.exists() and fresh.exists()
        assert report.listed == 0


def test_the_archives_own_sweep_keeps_what_its_index_or_a_holder_names(world: World) -> None:
    """Held copies are named by no index row: whoever holds them says which to keep."""
    stored = _stored(world.archive, world.archive.ingest(io.BytesIO(to_bytes(make_instance()))))
    kept = world.archive.hold(generate_uid(), b"held, still awaited")
    dropped = world.archive.with_tenant("site-2").hold(generate_uid(), b"held, case deleted")
    assert is_archive_key(kept) and is_archive_key(dropped)
    orphan = orphan_key()
    _put(world.blobs, orphan, b"o")
    report = world.archive.sweep(
        grace=timedelta(0), also_referenced=[lambda keys: {kept} & set(keys)], label="clinical"
    )
    assert (report.store, report.removed, report.referenced) == ("clinical", 2, 2)
    assert set(world.blobs.keys()) == {stored.blob_key, kept}
    assert world.archive.held(kept) == b"held, still awaited"
    assert world.archive.referenced_keys([stored.blob_key, orphan]) == {stored.blob_key}


def test_a_negative_grace_period_is_refused(world: World) -> None:
    with pytest.raises(ValueError, match="negative"):
        _sweep(world.blobs, [], grace=timedelta(seconds=-1))


def _two() -> list[bytes]:
    return [to_bytes(make_instance()), with_bulk_value()]


# == one sweeper at a time ===================================================================


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_the_sweep_lock_is_held_by_one_holder_at_a_time(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'index.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
    first, second = open_database(url), open_database(url)
    first.open()
    second.open()
    try:
        with exclusive(first, "orphan-sweep") as held:
            assert held
            with exclusive(second, "orphan-sweep") as also:
                assert not also
            with exclusive(second, "another-job") as other:
                assert other
        with exclusive(second, "orphan-sweep") as held_after:
            assert held_after
    finally:
        first.close()
        second.close()


def test_a_lock_name_cannot_leave_the_database_folder(tmp_path: Path) -> None:
    database = open_database(f"sqlite:///{tmp_path / 'index.sqlite3'}")
    with pytest.raises(ValueError, match="invalid lock name"), exclusive(database, "../x"):
        pass
