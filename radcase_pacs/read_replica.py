"""The read replica of a deployment (``index_read_url``), as :func:`radcase_pacs.deployment.
open_deployment` builds it into the stores.

What reads from the replica: the clinical and teaching indexes' searches (QIDO-RS on both
DICOMweb roots, C-FIND, the matching of C-MOVE and C-GET, the educators' study search), and
the teaching analytics (a learner's progress and review log, a group's progress, xAPI), the
latter only when the teaching database is the index's own namespace (``teaching_index_url``
unset) and so on the replica too. Everything else reads and writes the primary.

Write positions (see :mod:`storage.replica.positions`) are shared through Redis when the cache
is Redis, under the deployment's prefix (``PREFIXreplica:``); otherwise each process keeps its
own, and read-your-writes holds for what the same process wrote.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit

from radcase_pacs.metrics import Metrics
from radcase_pacs.settings import Settings
from storage.database.base import Database
from storage.index.base import Index
from storage.namespaces import namespaced_url
from storage.urls import open_database, open_index

if TYPE_CHECKING:  # the replica's modules are imported when there is a replica
    from storage.database.postgres import PostgresDatabase
    from storage.replica.positions import WritePositions
    from storage.replica.router import ReplicaRouter

CLINICAL_SCOPE = "index"
TEACHING_INDEX_SCOPE = "teaching-index"
TEACHING_SCOPE = "teaching"


def replica_router(settings: Settings, metrics: Metrics) -> ReplicaRouter | None:
    """The router of the replica ``settings`` name, counting into ``metrics`` (not opened);
    None when there is no replica."""
    url = settings.resolved_index_read_url
    if url is None:
        return None
    from storage.replica.router import ReplicaRouter

    return ReplicaRouter(
        _replica_database(url, "radcase-replica").url,
        _positions(settings.cache_url),
        max_lag=settings.index_read_max_lag_seconds,
        observer=metrics,
    )


def _positions(cache_url: str) -> WritePositions:
    from storage.replica.positions import LocalPositions, RedisPositions

    if urlsplit(cache_url).scheme.lower() in ("redis", "rediss"):
        return RedisPositions(namespaced_url(cache_url, "replica"))
    return LocalPositions()


def replicated_index(
    index: Index, read_url: str | None, router: ReplicaRouter | None, scope: str
) -> Index:
    """``index`` (the primary's) with its searches read from the replica at ``read_url``;
    ``index`` itself when there is no replica to read from."""
    if router is None or read_url is None:
        return index
    from storage.index.postgres import PostgresIndex
    from storage.replica.index import ReplicatedIndex

    if not isinstance(index, PostgresIndex):
        raise ValueError("a read replica needs the index on PostgreSQL")
    replica = open_index(_on_demand(read_url), name="radcase-index-replica")
    assert isinstance(replica, PostgresIndex)
    return ReplicatedIndex(index, replica, router, scope)


def teaching_database(settings: Settings, router: ReplicaRouter | None) -> Database:
    """The teaching database (cases, learning) as its components write to it (not opened):
    with the analytics on the replica, each commit's position is recorded."""
    database = open_database(settings.resolved_teaching_index_url)
    if router is None or settings.resolved_teaching_index_read_url is None:
        return database
    from storage.database.postgres import PostgresDatabase
    from storage.replica.database import RecordingDatabase

    assert isinstance(database, PostgresDatabase)
    return RecordingDatabase(database, router, TEACHING_SCOPE)


def analytics_database(
    settings: Settings, primary: Database, router: ReplicaRouter | None
) -> Database | None:
    """What the teaching analytics read through (not opened): the replica once it has
    replayed the teaching database's latest write, else ``primary``; None when the
    analytics have no replica to read from."""
    read_url = settings.resolved_teaching_index_read_url
    if router is None or read_url is None:
        return None
    from storage.replica.database import ReplicaReadsDatabase

    replica = _replica_database(read_url, "radcase-teaching-replica")
    return ReplicaReadsDatabase(primary, replica, router, TEACHING_SCOPE)


def _replica_database(url: str, name: str) -> PostgresDatabase:
    from storage.database.postgres import PostgresDatabase

    database = open_database(_on_demand(url), name=name)
    assert isinstance(database, PostgresDatabase)
    return database


def _on_demand(url: str) -> str:
    """``url`` with a pool that opens no connection up front, so that opening it neither
    waits for nor fails on a replica that is down (reads then go to the primary)."""
    base, _, query = url.partition("?")
    pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "pool_min"]
    return f"{base}?{urlencode([*pairs, ('pool_min', '0')])}"
