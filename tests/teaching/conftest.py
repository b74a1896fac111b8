"""A whole server (clinical and teaching stores) on the embedded default and on the
production backends, for the teaching layer's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from radcase_pacs.settings import Settings
from tests.apps import served
from tests.backends import (
    MOTO,
    REDIS_URL,
    postgres_url,
    redis_key_prefix,
    s3_bucket_name,
    s3_server,
)

__all__ = ["postgres_url", "redis_key_prefix", "s3_bucket_name", "s3_server"]


@pytest.fixture(params=["embedded", "production"])
def server_settings(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """Settings of a server on SQLite + folder + memory, or PostgreSQL + S3 + Redis."""
    if request.param == "embedded":
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


@pytest.fixture
def server(server_settings: Settings) -> Iterator[TestClient]:
    """The whole app: /dicomweb, /teaching/dicomweb and /api."""
    with served(server_settings) as client:
        yield client
