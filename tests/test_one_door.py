"""Guards against the shapes the architecture review of 2026-12 found and this codebase left:
the deployment assembled in several places, stores reached past the Archive, metrics by
dynamic proxy, and access policy by rewriting another layer's URLs."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from radcase_pacs import learner_view
from radcase_pacs.metrics import CountedCache, TimedBlobStore, TimedIndex
from storage.archive import Archive
from storage.blobs.base import BlobStore
from storage.cache.base import Cache
from storage.index.base import Index

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ("storage", "dicomweb", "teaching", "radcase_pacs")
STORE_FACTORIES = {"open_index", "open_blobs", "open_cache", "open_database", "Stores"}
COMPOSITION_ROOT = ROOT / "radcase_pacs" / "deployment.py"


def _modules(*packages: str) -> list[Path]:
    return [path for package in packages for path in sorted((ROOT / package).rglob("*.py"))]


def _calls(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Call):
            func = node.func
            names.add(func.id if isinstance(func, ast.Name) else getattr(func, "attr", ""))
    return names


def test_only_the_composition_root_builds_stores() -> None:
    """Every store is opened by open_deployment (storage itself aside): the deployment is
    assembled once, so every edge gets the same measured, observed archive."""
    builders = {
        path.relative_to(ROOT).as_posix()
        for path in _modules("dicomweb", "teaching", "radcase_pacs")
        if _calls(path) & STORE_FACTORIES
    }
    assert builders == {"radcase_pacs/deployment.py", "radcase_pacs/metrics.py"}
    # metrics only re-wraps the stores it is handed (Metrics.instrument)
    assert _calls(ROOT / "radcase_pacs" / "metrics.py") & STORE_FACTORIES == {"Stores"}


def test_nothing_outside_storage_reaches_past_the_archive() -> None:
    """The Archive's stores are private and no one outside storage touches them."""
    archive_attributes = set(dir(Archive))
    assert not {"index", "blobs", "cache", "stores"} & archive_attributes
    offenders = [
        path.relative_to(ROOT).as_posix()
        for path in _modules("dicomweb", "teaching", "radcase_pacs")
        if "._stores" in path.read_text()
    ]
    assert offenders == []


@pytest.mark.parametrize(
    ("protocol", "wrapper"),
    [(Index, TimedIndex), (BlobStore, TimedBlobStore), (Cache, CountedCache)],
    ids=["index", "blobs", "cache"],
)
def test_every_store_operation_is_implemented_by_its_metrics_wrapper(
    protocol: type, wrapper: type
) -> None:
    """Typed wrappers, not a __getattr__ proxy: each operation of the protocol is written
    out (mypy then checks its signature), so a new operation cannot slip past the metrics."""
    operations = {
        name
        for name, member in inspect.getmembers(protocol)
        if not name.startswith("_") and inspect.isfunction(member)
    }
    assert operations
    missing = {name for name in operations if name not in vars(wrapper)}
    assert not missing, f"{wrapper.__name__} does not implement {sorted(missing)}"
    assert "__getattr__" not in vars(wrapper)


def test_the_learner_view_knows_no_dicomweb_url() -> None:
    """Access policy is a property of the archive view; the middleware that sets it reads
    neither the path nor the query string of the request."""
    source = inspect.getsource(learner_view)
    for grammar in ('"path"', "query_string", "/studies", "StudyInstanceUID", "studyUID"):
        assert grammar not in source, grammar
