"""Backend URLs: each scheme opens its implementation with the URL's parameters, and no
password ever shows in a repr, a log line or an error message."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.blobs.filesystem import FilesystemBlobStore
from storage.blobs.s3 import S3BlobStore
from storage.cache.memory import MemoryCache
from storage.cache.redis import RedisCache
from storage.database.postgres import PostgresDatabase
from storage.database.sqlite import SqliteDatabase
from storage.index.postgres import PostgresIndex
from storage.index.sqlite import SqliteIndex
from storage.urls import (
    UnsupportedUrl,
    mask_password,
    open_blobs,
    open_cache,
    open_database,
    open_index,
    with_durability,
)


def test_index_urls() -> None:
    sqlite = open_index("sqlite:///tmp/x/index.sqlite3")
    assert isinstance(sqlite, SqliteIndex)
    assert sqlite.database.path == Path("/tmp/x/index.sqlite3")
    for scheme in ("postgresql", "postgres"):
        index = open_index(
            f"{scheme}://u:secret@db:5432/pacs?schema=tenant_a&pool_max=3&sslmode=require"
        )
        assert isinstance(index, PostgresIndex)
        assert index.database.schema == "tenant_a"
        assert (index.database.pool_min, index.database.pool_max) == (1, 3)
        assert index.database.url == f"{scheme}://u:secret@db:5432/pacs?sslmode=require"
        assert index.database.name == "radcase-index"
        assert "secret" not in repr(index)
    with pytest.raises(UnsupportedUrl, match=r"index URL .*schema"):
        open_index("postgresql://db/pacs?schema=bad;name")
    with pytest.raises(UnsupportedUrl, match="pool_max"):
        open_index("postgresql://db/pacs?pool_max=many")


def test_database_urls() -> None:
    sqlite = open_database("sqlite:///tmp/x/cases.sqlite3")
    assert isinstance(sqlite, SqliteDatabase)
    assert (sqlite.dialect, sqlite.path) == ("sqlite", Path("/tmp/x/cases.sqlite3"))
    assert repr(sqlite) == "SqliteDatabase('/tmp/x/cases.sqlite3')"
    for scheme in ("postgresql", "postgres"):
        database = open_database(
            f"{scheme}://u:secret@db:5432/pacs?schema=teaching&pool_min=2&pool_max=4"
            "&application_name=cases"
        )
        assert isinstance(database, PostgresDatabase)
        assert database.dialect == "postgresql"
        assert (database.schema, database.pool_min, database.pool_max) == ("teaching", 2, 4)
        assert database.url == f"{scheme}://u:secret@db:5432/pacs?application_name=cases"
        assert "secret" not in repr(database)
    default = open_database("postgresql://db/pacs")
    assert isinstance(default, PostgresDatabase)
    assert (default.schema, default.pool_min, default.pool_max) == (None, 1, 10)
    local = open_database("postgresql:///pacs?schema=s&host=/run/postgresql")
    assert isinstance(local, PostgresDatabase)
    assert local.url == "postgresql:///pacs?host=%2Frun%2Fpostgresql"
    with pytest.raises(UnsupportedUrl, match=r"database URL .*schema"):
        open_database("postgresql://db/pacs?schema=bad;name")
    with pytest.raises(UnsupportedUrl, match="pool_min"):
        open_database("postgresql://db/pacs?pool_min=few")
    with pytest.raises(UnsupportedUrl, match="scheme must be one of sqlite://"):
        open_database("mysql://db/pacs")


def test_blob_urls() -> None:
    assert isinstance(open_blobs("file:///tmp/blobs"), FilesystemBlobStore)
    store = open_blobs("s3://archive-bucket/clinical/site-a", s3_endpoint_url="http://minio:9000")
    assert isinstance(store, S3BlobStore)
    assert (store.bucket, store.prefix, store.endpoint_url) == (
        "archive-bucket",
        "clinical/site-a/",
        "http://minio:9000",
    )
    bare = open_blobs("s3://archive-bucket")
    assert isinstance(bare, S3BlobStore)
    assert (bare.prefix, bare.endpoint_url) == ("", None)
    with pytest.raises(UnsupportedUrl, match="bucket"):
        open_blobs("s3:///prefix-only")


def test_embedded_stores_are_durable_unless_their_url_says_otherwise() -> None:
    for url, durable in (
        ("file:///tmp/blobs", True),
        ("file:///tmp/blobs?durable=true", True),
        ("file:///tmp/blobs?durable=false", False),
        ("file:///tmp/blobs?durable=0", False),
    ):
        store = open_blobs(url)
        assert isinstance(store, FilesystemBlobStore)
        assert (store.root, store.durable) == (Path("/tmp/blobs"), durable)
    relaxed = open_database("sqlite:///tmp/x/cases.sqlite3?durable=false")
    assert isinstance(relaxed, SqliteDatabase)
    assert (relaxed.path, relaxed.durable) == (Path("/tmp/x/cases.sqlite3"), False)
    for opener in (open_blobs, open_database, open_index):
        scheme = "file" if opener is open_blobs else "sqlite"
        with pytest.raises(UnsupportedUrl, match="durable must be true or false"):
            opener(f"{scheme}:///tmp/x?durable=sometimes")


def test_trading_durability_away_marks_only_urls_that_do_not_choose() -> None:
    assert with_durability("sqlite:///d/index.sqlite3", True) == "sqlite:///d/index.sqlite3"
    assert with_durability("sqlite:///d/i.sqlite3", False) == "sqlite:///d/i.sqlite3?durable=false"
    assert with_durability("file:///d/blobs?x=1", False) == "file:///d/blobs?x=1&durable=false"
    assert with_durability("file:///d?durable=true", False) == "file:///d?durable=true"
    for durable_elsewhere in ("postgresql://db/pacs?schema=s", "s3://bucket/prefix", "memory://"):
        assert with_durability(durable_elsewhere, False) == durable_elsewhere


def test_cache_urls() -> None:
    assert isinstance(open_cache("memory://?max_bytes=1024"), MemoryCache)
    for scheme in ("redis", "rediss"):
        cache = open_cache(
            f"{scheme}://:secret@cache:6380/2?prefix=site-a:&max_value_bytes=1000&default_ttl=60"
        )
        assert isinstance(cache, RedisCache)
        assert (cache.prefix, cache.max_value_bytes, cache.default_ttl) == ("site-a:", 1000, 60.0)
        assert cache.url == f"{scheme}://:secret@cache:6380/2"
        assert "secret" not in repr(cache)
    with pytest.raises(UnsupportedUrl, match="default_ttl"):
        open_cache("redis://cache?default_ttl=soon")


@pytest.mark.parametrize("url", ["mysql://db/x", "http://x", "redis", "", "gs://bucket"])
def test_unknown_schemes_are_refused_with_the_accepted_list(url: str, tmp_path: Path) -> None:
    for opener in (open_index, open_database, open_blobs, open_cache):
        with pytest.raises(UnsupportedUrl, match="scheme must be one of"):
            opener(url)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://u:pw@db/x?schema=a", "postgresql://u:***@db/x?schema=a"),
        ("postgres://u:pw@db/x", "postgres://u:***@db/x"),
        ("postgresql://db/x?user=u&password=pw", "postgresql://db/x?user=u&password=***"),
        ("redis://:pw@cache:6379/0?prefix=a", "redis://:***@cache:6379/0?prefix=a"),
        ("rediss://user:pw@cache/0", "rediss://user:***@cache/0"),
        ("s3://bucket/prefix", "s3://bucket/prefix"),
        ("sqlite:///var/x.sqlite3", "sqlite:///var/x.sqlite3"),
    ],
)
def test_passwords_are_masked(url: str, masked: str) -> None:
    assert mask_password(url) == masked
