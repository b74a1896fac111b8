"""A Redis server the storage tests can stop and restart, a PostgreSQL schema of a test's own,
moto's S3 server, and a database and an index of each dialect for the SQL written once for
both."""

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from storage.database.base import Database
from storage.index.base import Index
from storage.urls import open_database
from tests.backends import make_index, postgres_schema, postgres_url, private_redis, s3_server

__all__ = ["database", "postgres_url", "private_redis", "s3_server"]


@pytest.fixture(params=["sqlite", "postgres"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Index]:
    """An opened index of each dialect, gone after the test."""
    with ExitStack() as stack:
        opened = make_index(request.param, stack, tmp_path)
        opened.open()
        stack.callback(opened.close)
        yield opened


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
