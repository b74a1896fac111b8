"""What ingest records so that a retrieve can decide before it answers whether an instance can
be sent as Explicit VR Little Endian: the outcome of decoding its first frame."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from storage.archive import Archive
from storage.blobs.filesystem import FilesystemBlobStore
from storage.cache.memory import MemoryCache
from storage.index.schema import MIGRATIONS
from storage.index.sqlite import SqliteIndex
from storage.prepare import prepare
from storage.records import StoredInstance
from storage.stores import Stores
from storage.transcode import EXPLICIT_VR_LITTLE_ENDIAN, transcode_problem
from tests.factories import CORPUS_DIR, make_instance, to_bytes

UNDECODABLE = "JPEG-lossy.dcm"
"""12-bit JPEG Extended whose scan header the installed libjpeg refuses and Pillow cannot
read at 12 bits: a decoder exists for the syntax, not for these bits."""


def _stored(archive: Archive, data: bytes) -> StoredInstance:
    result = archive.ingest(io.BytesIO(data))
    (instance,) = archive.instances(result.study_uid, result.series_uid, result.sop_uid)
    return instance


def _sqlite_stores(path: Path) -> Stores:
    return Stores(
        index=SqliteIndex(path / "index.sqlite3"),
        blobs=FilesystemBlobStore(path / "blobs"),
        cache=MemoryCache(1024 * 1024),
    )


def test_ingest_records_why_an_instance_with_an_installed_decoder_still_does_not_decode(
    archive: Archive,
) -> None:
    instance = _stored(archive, (CORPUS_DIR / UNDECODABLE).read_bytes())
    assert instance.decode_problem is not None
    assert instance.decode_problem.startswith("frame 1 cannot be decoded")
    problem = transcode_problem(instance, EXPLICIT_VR_LITTLE_ENDIAN)
    assert problem is not None and instance.decode_problem in problem
    assert transcode_problem(instance, instance.transfer_syntax) is None


@pytest.mark.parametrize(
    "name", ["JPGExtended.dcm", "JPEG2000.dcm", "MR_small_jpeg_ls_lossless.dcm", "SC_rgb_rle.dcm"]
)
def test_ingest_records_nothing_for_compressed_instances_that_decode(
    name: str, archive: Archive
) -> None:
    instance = _stored(archive, (CORPUS_DIR / name).read_bytes())
    assert instance.decode_problem is None
    assert transcode_problem(instance, EXPLICIT_VR_LITTLE_ENDIAN) is None


@pytest.mark.parametrize(
    "name",
    [
        "JPEG2000.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "SC_rgb_rle.dcm",
    ],
)
def test_syntaxes_whose_decoders_implement_them_whole_are_not_decoded_at_ingest(
    name: str, archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decoding a JPEG 2000 frame costs ten times the rest of an ingest: only the JPEG DCT
    processes, which codecs implement in part, are tried."""
    import storage.transcode

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded at ingest")

    monkeypatch.setattr(storage.transcode, "decode_frame", refuse)
    assert _stored(archive, (CORPUS_DIR / name).read_bytes()).decode_problem is None


def test_native_instances_are_never_decoded_at_ingest() -> None:
    prepared = prepare(io.BytesIO(to_bytes(make_instance())))
    assert prepared.decode_problem is None


def test_a_syntax_we_do_not_compress_to_is_refused_whatever_the_instance(
    archive: Archive,
) -> None:
    instance = _stored(archive, to_bytes(make_instance()))
    problem = transcode_problem(instance, "1.2.840.10008.1.2.4.50")
    assert problem is not None and "never compressed on the fly" in problem


def test_rows_stored_before_the_column_existed_are_decided_by_their_syntax(
    tmp_path: Path,
) -> None:
    """The migration adds the column empty: such rows decide as they always did."""
    stores = _sqlite_stores(tmp_path)
    archive = Archive(stores)
    archive.open()
    before = _stored(archive, (CORPUS_DIR / UNDECODABLE).read_bytes())
    assert before.decode_problem is not None
    database = stores.index.database  # type: ignore[attr-defined]
    with database.transaction() as cur:  # the schema as it was before migration 2
        cur.execute("ALTER TABLE instances DROP COLUMN decode_problem")
        cur.execute("DROP INDEX instances_blob_key")  # migration 3
        cur.execute("DROP INDEX instances_sidecar_key")
        cur.execute("DROP TABLE archive_generation")  # migration 4
        cur.execute("DELETE FROM schema_version WHERE version > 1")
    archive.close()

    again = _sqlite_stores(tmp_path)
    reopened = Archive(again)
    reopened.open()
    try:
        (after,) = reopened.instances(before.study_uid, before.series_uid, before.sop_uid)
        with again.index.database.read() as cur:  # type: ignore[attr-defined]
            versions = [row[0] for row in cur.execute("SELECT version FROM schema_version")]
    finally:
        reopened.close()
    assert versions == list(range(1, len(MIGRATIONS) + 1))
    assert after.decode_problem is None
    assert transcode_problem(after, EXPLICIT_VR_LITTLE_ENDIAN) is None
