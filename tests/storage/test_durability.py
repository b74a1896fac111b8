"""Durable by default: the folder store syncs each file before its name appears and each
folder entry before a put returns; SQLite commits with synchronous=FULL; the one setting
``durable_writes = false`` trades both away."""

from __future__ import annotations

import errno
import io
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from radcase_pacs.settings import Settings
from storage.blobs.filesystem import FilesystemBlobStore
from storage.database.sqlite import SqliteDatabase
from storage.errors import BackendFailure
from storage.index.sqlite import SqliteIndex
from storage.urls import open_blobs, open_database, open_index

FULL, NORMAL = 2, 1  # PRAGMA synchronous answers


@dataclass
class Syncs:
    """Every os.fsync: the path synced, whether it is a folder, and whether the path
    ``watch`` names existed at that moment."""

    calls: list[tuple[Path, bool, bool]] = field(default_factory=list)
    watch: Path | None = None
    fail: Callable[[Path], bool] = lambda path: False

    @property
    def files(self) -> list[Path]:
        return [path for path, is_folder, _ in self.calls if not is_folder]

    @property
    def folders(self) -> list[Path]:
        return [path for path, is_folder, _ in self.calls if is_folder]


@pytest.fixture
def syncs(monkeypatch: pytest.MonkeyPatch) -> Syncs:
    recorded = Syncs()
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        path = Path(os.readlink(f"/proc/self/fd/{fd}"))
        is_folder = stat.S_ISDIR(os.fstat(fd).st_mode)
        watched = recorded.watch is not None and recorded.watch.exists()
        recorded.calls.append((path, is_folder, watched))
        if recorded.fail(path):
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return recorded


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FilesystemBlobStore]:
    blobs = FilesystemBlobStore(tmp_path.resolve() / "blobs")
    blobs.open()
    yield blobs
    blobs.close()


def _put(store: FilesystemBlobStore, key: str, data: bytes) -> None:
    store.put(key, io.BytesIO(data), len(data))


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def test_a_put_syncs_the_file_before_its_name_appears_and_every_new_folder_entry(
    store: FilesystemBlobStore, syncs: Syncs
) -> None:
    root = store.root
    key = "default/1.2/1.2.3/1.2.3.4.dcm"
    final = root / key
    syncs.watch = final
    _put(store, key, b"DICM" * 1000)

    (synced_file,) = [(p, seen) for p, is_folder, seen in syncs.calls if not is_folder]
    path, visible = synced_file
    assert path.parent == final.parent and path.name.endswith(".tmp")
    assert not visible, "the file was synced only after its name was visible"
    # The file's own folder, synced once its name is in it, and the entry of each folder
    # the put created in its parent, up to the root.
    assert sorted(syncs.folders) == sorted(
        [root, root / "default", root / "default/1.2", root / "default/1.2/1.2.3"]
    )
    assert (final.parent, True, True) in syncs.calls
    assert final.read_bytes() == b"DICM" * 1000


def test_opening_a_store_syncs_the_entry_of_every_folder_it_made(
    tmp_path: Path, syncs: Syncs
) -> None:
    base = tmp_path.resolve()
    FilesystemBlobStore(base / "data" / "site" / "blobs").open()
    assert sorted(syncs.folders) == [base, base / "data", base / "data" / "site"]
    assert syncs.files == []


def test_a_put_into_a_known_folder_syncs_the_file_and_that_folder_only(
    store: FilesystemBlobStore, syncs: Syncs
) -> None:
    _put(store, "default/1.2/1.2.3/a.dcm", b"a")
    syncs.calls.clear()
    _put(store, "default/1.2/1.2.3/b.dcm", b"b")
    assert len(syncs.files) == 1
    assert syncs.folders == [store.root / "default/1.2/1.2.3"]


def test_a_folder_another_process_created_has_its_entry_synced_again(
    store: FilesystemBlobStore, syncs: Syncs
) -> None:
    """Its creator may not have synced its entry yet: a put into it must not return first."""
    (store.root / "default/1.2/1.2.9").mkdir(parents=True)
    _put(store, "default/1.2/1.2.9/x.dcm", b"x")
    assert set(syncs.folders) == {
        store.root,
        store.root / "default",
        store.root / "default/1.2",
        store.root / "default/1.2/1.2.9",
    }


def test_publish_syncs_every_file_before_any_name_appears_and_each_folder_once(
    store: FilesystemBlobStore, syncs: Syncs
) -> None:
    keys = [f"default/1.2/{series}/{n}.dcm" for series in ("1.2.3", "1.2.4") for n in range(3)]
    staged = [store.stage(key, io.BytesIO(key.encode()), len(key)) for key in keys]
    assert not any(store.exists(key) for key in keys), "staged objects are not visible yet"
    syncs.calls.clear()
    syncs.watch = store.root / keys[0]

    assert store.publish(staged) == [None] * len(keys)

    assert len(syncs.files) == len(keys)
    assert not any(seen for _, is_folder, seen in syncs.calls if not is_folder)
    assert sorted(syncs.folders) == [
        store.root / "default/1.2/1.2.3",
        store.root / "default/1.2/1.2.4",
    ]
    assert [store.get(key) for key in keys] == [key.encode() for key in keys]
    assert _leftovers(store.root) == []


def test_a_key_the_sweep_puts_back_is_on_disk_again_before_it_returns(
    store: FilesystemBlobStore, syncs: Syncs
) -> None:
    """The sweep moves a key aside to judge it; one written since its listing goes back, and
    that acknowledged write must not depend on an unsynced folder entry."""
    key = "default/1.2/1.2.3/a.dcm"
    _put(store, key, b"a")
    syncs.calls.clear()
    assert store.delete_if_older(key, datetime(2000, 1, 1, tzinfo=UTC)) is False
    assert store.get(key) == b"a"
    assert syncs.folders == [store.root / "default/1.2/1.2.3"]


def test_a_file_that_cannot_be_synced_is_not_stored(
    store: FilesystemBlobStore, syncs: Syncs
) -> None:
    syncs.fail = lambda path: path.name.endswith(".tmp")
    with pytest.raises(BackendFailure):
        _put(store, "default/1.2/1.2.3/a.dcm", b"a")
    assert not store.exists("default/1.2/1.2.3/a.dcm")
    assert _leftovers(store.root) == []


def test_publish_refuses_only_the_objects_that_could_not_be_synced(
    store: FilesystemBlobStore, syncs: Syncs
) -> None:
    keys = ["default/1.2/1.2.3/a.dcm", "default/1.2/1.2.3/b.dcm", "default/1.2/1.2.3/c.dcm"]
    staged = [store.stage(key, io.BytesIO(b"x"), 1) for key in keys]
    syncs.fail = lambda path: str(path) == staged[1].handle
    failures = store.publish(staged)
    assert failures[0] is None and failures[2] is None
    assert isinstance(failures[1], BackendFailure)
    assert [store.exists(key) for key in keys] == [True, False, True]
    assert _leftovers(store.root) == []


def test_a_store_that_is_not_durable_never_syncs(tmp_path: Path, syncs: Syncs) -> None:
    store = FilesystemBlobStore(tmp_path / "blobs", durable=False)
    store.open()
    _put(store, "default/1.2/1.2.3/a.dcm", b"a")
    staged = store.stage("default/1.2/1.2.4/b.dcm", io.BytesIO(b"b"), 1)
    assert store.publish([staged]) == [None]
    assert syncs.calls == []
    assert store.get("default/1.2/1.2.3/a.dcm") == b"a"
    assert store.get("default/1.2/1.2.4/b.dcm") == b"b"


def _synchronous(database: SqliteDatabase) -> int:
    database.open()
    try:
        with database.transaction() as cur:
            value = cur.execute("PRAGMA synchronous").fetchone()[0]
        return int(value)
    finally:
        database.close()


def test_sqlite_commits_are_synced_in_full_unless_the_url_trades_it_away(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'index.sqlite3'}"
    database = open_database(url)
    assert isinstance(database, SqliteDatabase)
    assert _synchronous(database) == FULL
    index = open_index(url)
    assert isinstance(index, SqliteIndex)
    assert _synchronous(index.database) == FULL
    relaxed = open_database(f"{url}?durable=false")
    assert isinstance(relaxed, SqliteDatabase)
    assert _synchronous(relaxed) == NORMAL


@pytest.mark.parametrize("durable", [True, False])
def test_the_durable_writes_setting_reaches_every_embedded_store(
    tmp_path: Path, durable: bool
) -> None:
    """The index and the tables beside it (audit log, users, cases, learning) open the same
    URLs, clinical and teaching alike."""
    settings = Settings(data_dir=tmp_path / "data", durable_writes=durable)
    for url in (settings.resolved_index_url, settings.resolved_teaching_index_url):
        database = open_database(url)
        assert isinstance(database, SqliteDatabase)
        assert _synchronous(database) == (FULL if durable else NORMAL)
    for url in (settings.resolved_blob_url, settings.resolved_teaching_blob_url):
        blobs = open_blobs(url)
        assert isinstance(blobs, FilesystemBlobStore)
        assert blobs.durable is durable


def test_the_audit_log_does_not_wait_for_its_commits_to_sync_and_the_index_does(
    tmp_path: Path,
) -> None:
    """One audit entry per clinical request: its commit is written, not synced (a process
    crash loses none; see radcase_pacs.deployment.audit_url). The index in the same file
    still commits in full."""
    from radcase_pacs.deployment import audit_url

    settings = Settings(data_dir=tmp_path / "data")
    audit = open_database(audit_url(settings))
    assert isinstance(audit, SqliteDatabase)
    assert _synchronous(audit) == NORMAL
    index = open_index(settings.resolved_index_url)
    assert isinstance(index, SqliteIndex)
    assert _synchronous(index.database) == FULL
    postgres = "postgresql://postgres@127.0.0.1:5432/test?schema=s"
    production = settings.model_copy(update={"index_url": postgres})
    # PostgreSQL's own URL, with the configured time bounds only: nothing about durability.
    assert audit_url(production) == production.bounded(postgres) == production.resolved_index_url
    assert audit_url(production).startswith(postgres + "&")
    assert "durable" not in audit_url(production)
