"""The DICOMweb suite runs over every backend combination of ``RADCASE_TEST_BACKENDS``
(default: see tests/backends.py), so the embedded default and the production set-up answer
every request the same way."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.stores import Stores
from tests.backends import backend_names, stores_for


@pytest.fixture(params=backend_names())
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    with stores_for(request.param, tmp_path) as opened:
        yield opened
