"""The read replica of a deployment (``index_read_url``): its router, and what
:func:`radcase_pacs.deployment.open_deployment` wraps around the stores it opens.

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

import logging
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit

from radcase_pacs.metrics import Metrics
from radcase_pacs.settings import Settings
from storage.database.base import Database
from storage.index.base import Index
from storage.namespaces import namespaced_url

if TYPE_CHECKING:  # the replica's modules are imported when there is a replica
    from storage.database.postgres import PostgresDatabase
    from storage.replica.positions import WritePositions
    from storage.replica.router import ReplicaRouter

log = logging.getLogger(__name__)

CLINICAL_SCOPE = "index"
TEACHING_INDEX_SCOPE = "teaching-index"
TEACHING_SCOPE = "teaching"


def on_demand(url: str) -> str:
    """``url`` with a pool that opens no connection up front, so that opening it neither
    waits for nor fails on a replica that is down (reads then go to the primary)."""
    base, _, query = url.partition("?")
    pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "pool_min"]
    return f"{base}?{urlencode([*pairs, ('pool_min', '0')])}"


def replica_router(settings: Settings, metrics: Metrics, replica: Database) -> ReplicaRouter:
    """The router of the replica that ``replica`` is a database of (its connection string is
    what the replica's state is asked on), counting into ``metrics`` (not opened)."""
    from storage.replica.router import ReplicaRouter

    return ReplicaRouter(
        _postgres(replica).url,
        _positions(settings.cache_url),
        max_lag=settings.index_read_max_lag_seconds,
        observer=metrics,
    )


def _positions(cache_url: str) -> WritePositions:
    from storage.replica.positions import LocalPositions, RedisPositions

    if urlsplit(cache_url).scheme.lower() in ("redis", "rediss"):
        return RedisPositions(namespaced_url(cache_url, "replica"))
    log.warning(
        "index_read_url without a Redis cache: a search finds what was just stored through "
        "the same process only (the others may answer it from the replica a moment later)"
    )
    return LocalPositions()


def replicated_index(primary: Index, replica: Index, router: ReplicaRouter, scope: str) -> Index:
    """The ``primary`` index with its searches read from ``replica`` (the same index on the
    replica, never migrated) when ``router`` lets them."""
    from storage.index.postgres import PostgresIndex
    from storage.replica.index import ReplicatedIndex

    if not isinstance(primary, PostgresIndex) or not isinstance(replica, PostgresIndex):
        raise ValueError("a read replica needs the index on PostgreSQL")
    return ReplicatedIndex(primary, replica, router, scope)


def recording_database(database: Database, router: ReplicaRouter) -> Database:
    """The teaching database as its components write to it: each commit's position
    recorded, for the analytics that read from the replica."""
    from storage.replica.database import RecordingDatabase

    return RecordingDatabase(_postgres(database), router, TEACHING_SCOPE)


def analytics_database(primary: Database, replica: Database, router: ReplicaRouter) -> Database:
    """What the teaching analytics read through: ``replica`` once it has replayed the
    teaching database's latest write, else ``primary``."""
    from storage.replica.database import ReplicaReadsDatabase

    return ReplicaReadsDatabase(primary, _postgres(replica), router, TEACHING_SCOPE)


def _postgres(database: Database) -> PostgresDatabase:
    from storage.database.postgres import PostgresDatabase

    if not isinstance(database, PostgresDatabase):
        raise ValueError("a read replica needs the databases on PostgreSQL")
    return database
