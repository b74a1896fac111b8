"""The DICOMweb suite's archive: the embedded default (SQLite, memory cache, folder), and, for
tests marked ``backends``, each combination of ``RADCASE_TEST_BACKENDS`` (default: the
embedded one and the production set-up, see tests/backends.py).

A test is marked ``backends`` when what it checks passes through the stores: what STOW-RS
keeps, what QIDO-RS finds, what WADO-RS reads back. HTTP semantics over the same stored bytes
(caching, ranges, compression, negotiation, CORS) cannot differ between backends and run once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.archive import Archive
from tests.backends import EMBEDDED, archive_for, backend_names


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "archive" in metafunc.fixturenames and metafunc.definition.get_closest_marker("backends"):
        metafunc.parametrize("archive", backend_names(), indirect=True)


@pytest.fixture
def archive(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Archive]:
    with archive_for(getattr(request, "param", EMBEDDED), tmp_path) as store:
        yield store
