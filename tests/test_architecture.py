"""The dependency direction of DESIGN.md and the one-error-tree rule, checked."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import storage.errors
from dicomweb.errors import STATUS_BY_ERROR, status_for

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "storage": {"dicomweb", "teaching", "radcase_pacs", "conformance"},
    "dicomweb": {"teaching", "radcase_pacs", "conformance"},
    "teaching": {"dicomweb", "radcase_pacs", "conformance"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_packages_import_only_downstream(package: str) -> None:
    modules = list((ROOT / package).rglob("*.py"))
    assert modules
    for path in modules:
        wrong = _imports(path) & FORBIDDEN[package]
        assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"


def _archive_errors() -> list[type[storage.errors.ArchiveError]]:
    return [
        cls
        for _, cls in inspect.getmembers(storage.errors, inspect.isclass)
        if issubclass(cls, storage.errors.ArchiveError)
    ]


@pytest.mark.parametrize("error", _archive_errors(), ids=lambda c: c.__name__)
def test_every_archive_error_has_its_own_http_status(error: type) -> None:
    assert error in STATUS_BY_ERROR, f"{error.__name__} has no HTTP status"
    instance = error("p", "r") if error is storage.errors.InvalidQuery else error("reason")
    status = status_for(instance)
    client_fault = not issubclass(error, storage.errors.BackendFailure) and (
        error is not storage.errors.ArchiveError
    )
    assert (400 <= status < 500) if client_fault else status >= 500
