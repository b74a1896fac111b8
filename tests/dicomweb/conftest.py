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

from storage.stores import Stores
from tests.backends import EMBEDDED, backend_names, stores_for


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "stores" in metafunc.fixturenames and metafunc.definition.get_closest_marker("backends"):
        metafunc.parametrize("stores", backend_names(), indirect=True)


@pytest.fixture
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    """The test's stores (``archive`` and the whole deployment's clinical stores are these)."""
    with stores_for(getattr(request, "param", EMBEDDED), tmp_path) as opened:
        yield opened
