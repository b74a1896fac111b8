"""The dependency direction of DESIGN.md and the one-error-tree rule, checked."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import storage.errors
from storage.errors import ArchiveError, BackendFailure
from storage.statuses import (
    DIMSE_STATUS_BY_ERROR,
    HTTP_STATUS_BY_ERROR,
    DimseStatus,
    dimse_status,
    http_status,
)

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("storage", "dicomweb", "teaching", "radcase_pacs")
FORBIDDEN = {
    "storage": {"dicomweb", "teaching", "radcase_pacs", "conformance"},
    "dicomweb": {"teaching", "radcase_pacs", "conformance"},
    "teaching": {"dicomweb", "radcase_pacs", "conformance"},
    # A black box: it speaks HTTP and DIMSE to the server, never imports it.
    "conformance": {"storage", "dicomweb", "teaching", "radcase_pacs"},
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


def _tree() -> list[type[ArchiveError]]:
    """The classes of the one error tree, ``storage.errors``."""
    return [
        cls
        for _, cls in inspect.getmembers(storage.errors, inspect.isclass)
        if issubclass(cls, ArchiveError)
    ]


def _every_subclass() -> list[type[ArchiveError]]:
    """ArchiveError and every subclass of it anywhere in the four packages (each module
    imported first, so that a subclass a backend or the teaching layer declares is seen)."""
    for package in PACKAGES:
        root = importlib.import_module(package)
        for module in pkgutil.walk_packages(root.__path__, f"{package}."):
            if not module.name.endswith("__main__"):  # running it is the CLI
                importlib.import_module(module.name)

    def below(cls: type[ArchiveError]) -> Iterator[type[ArchiveError]]:
        for sub in cls.__subclasses__():
            yield sub
            yield from below(sub)

    return sorted({ArchiveError, *below(ArchiveError)}, key=lambda c: c.__qualname__)


def _instance(error: type[ArchiveError]) -> ArchiveError:
    """An instance, with a text for each positional parameter its constructor requires (one,
    for the classes that keep Exception's constructor)."""
    if not any("__init__" in vars(c) for c in error.__mro__ if issubclass(c, ArchiveError)):
        return error("reason")
    required = [
        p
        for p in inspect.signature(error).parameters.values()
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    return error(*["reason"] * len(required))


def _client_fault(error: type[ArchiveError]) -> bool:
    return error is not ArchiveError and not issubclass(error, BackendFailure)


@pytest.mark.parametrize("error", _tree(), ids=lambda c: c.__name__)
def test_every_class_of_the_tree_is_in_both_tables(error: type[ArchiveError]) -> None:
    assert error in HTTP_STATUS_BY_ERROR, f"{error.__name__} has no HTTP status"
    assert error in DIMSE_STATUS_BY_ERROR, f"{error.__name__} has no DIMSE status"


@pytest.mark.parametrize("error", _every_subclass(), ids=lambda c: c.__qualname__)
def test_every_archive_error_anywhere_answers_a_status_of_its_own_branch(
    error: type[ArchiveError],
) -> None:
    """A subclass outside the tree (a backend's, the teaching layer's) answers as the tree
    class it refines; one hung on the root itself would fall through to the catch-all."""
    mapped = [c for c in error.__mro__ if c in HTTP_STATUS_BY_ERROR]
    assert mapped == [c for c in error.__mro__ if c in DIMSE_STATUS_BY_ERROR]
    nearest = mapped[0]
    assert nearest is not ArchiveError or error is ArchiveError, (
        f"{error.__module__}.{error.__qualname__} derives from ArchiveError itself; derive "
        "it from the tree class it is a case of, or add it to both tables"
    )
    exc = _instance(error)
    assert http_status(exc) == HTTP_STATUS_BY_ERROR[nearest]
    assert dimse_status(exc) == DIMSE_STATUS_BY_ERROR[nearest]


@pytest.mark.parametrize("error", _every_subclass(), ids=lambda c: c.__qualname__)
def test_client_faults_are_4xx_and_store_failures_5xx(error: type[ArchiveError]) -> None:
    status = http_status(_instance(error))
    assert (400 <= status < 500) if _client_fault(error) else (status >= 500)


@pytest.mark.parametrize("error", _every_subclass(), ids=lambda c: c.__qualname__)
def test_every_dimse_status_is_a_failure(error: type[ArchiveError]) -> None:
    """PS3.7 Annex C and PS3.4 B.2.3 / C.4: failures are 0x01xx (general), 0xA7xx (out of
    resources), 0xA9xx (does not match) and 0xCxxx; a refusal never reads as success,
    pending, cancel or a warning."""
    status = dimse_status(_instance(error))
    assert isinstance(status, DimseStatus)
    assert status >> 8 in (0x01, 0xA7, 0xA9) or status >> 12 == 0xC, hex(status)


def test_a_store_failure_is_not_the_peers_unreadable_data() -> None:
    """0xC000 tells a modality its data set cannot be understood; a failing store is ours."""
    assert dimse_status(BackendFailure("disk")) == DimseStatus.PROCESSING_FAILURE
    assert dimse_status(storage.errors.OutOfResources("full")) == DimseStatus.OUT_OF_RESOURCES
