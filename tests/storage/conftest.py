"""A Redis server the storage tests can stop and restart, a PostgreSQL schema of a test's own,
moto's S3 server, and a database of each dialect for the SQL written once for both."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from storage.database.base import Database
from storage.urls import open_database
from tests.backends import postgres_schema, postgres_url, private_redis, s3_server

__all__ = ["database", "postgres_url", "private_redis", "s3_server"]


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An opened database of each dialect (a file of the test's own, or its own schema)."""
    with postgres_schema() if request.param == "postgresql" else _sqlite(tmp_path) as url:
        db = open_database(url)
        db.open()
        yield db
        db.close()


@contextmanager
def _sqlite(folder: Path) -> Iterator[str]:
    yield f"sqlite:///{folder / 'database.sqlite3'}"
