"""The whole server for a test: a deployment opened over the test's settings (and, where
given, the test's own clinical stores), served through Starlette's TestClient."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from starlette.testclient import TestClient

from radcase_pacs.app import create_app
from radcase_pacs.deployment import open_deployment
from radcase_pacs.settings import Settings
from storage.stores import Stores


@contextmanager
def served(
    settings: Settings,
    *,
    stores: Stores | None = None,
    clock: Callable[[], datetime] | None = None,
    **client_options: Any,
) -> Iterator[TestClient]:
    """A TestClient over ``create_app`` of a freshly opened deployment (closed on exit);
    ``stores``: opened clinical stores the caller keeps (and closes) itself."""
    with (
        open_deployment(settings, clinical=stores, clock=clock) as deployment,
        TestClient(create_app(deployment), **client_options) as client,
    ):
        yield client
