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
    deployment_settings,
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
    return deployment_settings(request.param, request, tmp_path, monkeypatch)


@pytest.fixture
def server(server_settings: Settings) -> Iterator[TestClient]:
    """The whole app: /dicomweb, /teaching/dicomweb and /api."""
    with served(server_settings) as client:
        yield client
