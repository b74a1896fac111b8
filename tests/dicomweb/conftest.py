"""The DICOMweb suite runs over every backend combination of ``RADCASE_TEST_BACKENDS``
(default: see tests/backends.py), so the embedded default and the production set-up answer
every request the same way."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.archive import Archive
from tests.backends import archive_for, backend_names


@pytest.fixture(params=backend_names())
def archive(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Archive]:
    with archive_for(request.param, tmp_path) as store:
        yield store
