"""The one composition root: every store of a deployment opened once, in one order, and
closed in reverse.

``serve`` (its HTTP app and its DIMSE listener), ``import``, ``migrate``, ``sweep`` and the
tests all go through :func:`open_deployment`, so an instance stored by STOW-RS, C-STORE or
``import`` meets the same archive: measured, with teaching-file KOS intake, under the same
audit log. Nothing else builds a store.

Open order (the reverse is the close order): the deployment's mode first (the write guard
reads it), then the audit log, so that nothing is served while it cannot record; then the
clinical stores, the users, the teaching collection and its cases, and the learning tables.
Once all are open, every database a write can reach gets the write guard of the mode
(:mod:`radcase_pacs.mode`), so that a switch to other stores can hold every process's writes
for its final moment.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from radcase_pacs.audit.store import AuditLog
from radcase_pacs.auth.layer import AuthLayer
from radcase_pacs.auth.users import UserStore
from radcase_pacs.health import Check, Health
from radcase_pacs.metrics import IngestEdge, Metrics
from radcase_pacs.mode import ModeStore, WriteGate
from radcase_pacs.read_replica import (
    CLINICAL_SCOPE,
    TEACHING_INDEX_SCOPE,
    analytics_database,
    on_demand,
    recording_database,
    replica_router,
    replicated_index,
)
from radcase_pacs.settings import Settings
from storage.archive import Archive, IngestObserver
from storage.database.base import Database
from storage.index.base import Index
from storage.index.sql import SqlIndex
from storage.namespaces import namespaced_url
from storage.replica.index import ReplicatedIndex
from storage.stores import Stores
from storage.urls import open_blobs, open_cache, open_database, open_index, with_durability
from teaching.cases.service import CaseService
from teaching.cases.store import CaseStore
from teaching.learning.service import LearningService, utc_now

if TYPE_CHECKING:
    from storage.replica.router import ReplicaRouter


@dataclass(frozen=True)
class Deployment:
    """What one process serves from. ``clinical`` is the clinical archive as anything that
    takes instances in must use it (its ingests counted in ``metrics`` and run through KOS
    intake), and :meth:`clinical_via` the same for one named edge (STOW-RS, C-STORE,
    ``import``), counted under its name; ``archive`` the same stores with no ingest
    observers, for copying what another deployment already took in (``migrate``: a copy is
    not a new arrival, and intake there would make every teaching-file KOS a second draft
    case); ``teaching`` the de-identified collection; the rest the teaching, auth and audit
    services. ``mode`` and ``gate``: the deployment's mode and the guard its databases run;
    ``databases``: every database a write can reach, by role (``clinical``: the clinical
    index's, which also holds the users and the audit log; ``audit``: the audit log's own
    handle on it; ``teaching``: the teaching collection's index, cases and learning tables),
    and the rest in ``guarded``."""

    settings: Settings
    metrics: Metrics
    audit: AuditLog
    clinical: Archive
    archive: Archive
    teaching: Archive
    cases: CaseService
    learning: LearningService
    auth: AuthLayer
    mode: ModeStore
    gate: WriteGate
    databases: dict[str, Database]
    guarded: tuple[Database, ...]
    after_ingest: tuple[IngestObserver, ...] = ()
    """What every ingest of ``clinical`` goes through besides being counted (KOS intake)."""

    def clinical_via(self, edge: IngestEdge) -> Archive:
        """``clinical`` as the edge ``edge`` (STOW-RS, C-STORE, ``import``) takes instances
        in: the same archive and intake, its ingests counted under that edge's name, so
        the dashboards tell a PACS that stopped sending from a web client that did."""
        return self.archive.observed_by(self.metrics.ingest_counter(edge), *self.after_ingest)

    def ping(self) -> None:
        """Raise BackendFailure unless every database answers."""
        self.audit.ping()
        self.clinical.ping()
        self.teaching.ping()
        self.cases.store.ping()

    @functools.cached_property
    def health(self) -> Health:
        """What ``/healthz`` and the status page ask (one per process: a check still running
        is never started a second time)."""
        return Health(self.health_checks(), self.settings.health_timeout)

    def health_checks(self) -> list[Check]:
        """Every backend ``/healthz`` asks, by name: the databases are required (nearly every
        request needs one), the blob stores and caches are not (see :mod:`radcase_pacs.health`).
        """
        clinical, teaching = self.clinical.checks(), self.teaching.checks()
        return [
            Check("index", clinical["index"], required=True),
            Check("audit log", self.audit.ping, required=True),
            Check("teaching index", teaching["index"], required=True),
            Check("cases", self.cases.store.ping, required=True),
            Check("blobs", clinical["blobs"], required=False),
            Check("teaching blobs", teaching["blobs"], required=False),
            Check("cache", clinical["cache"], required=False),
            Check("teaching cache", teaching["cache"], required=False),
        ]


def clinical_stores(settings: Settings, replica: ReplicaRouter | None = None) -> Stores:
    """The clinical archive's stores as the settings name them (not opened), the index's
    searches read from the ``replica`` when there is one."""
    return Stores(
        index=_index(
            settings.resolved_index_url, settings.resolved_index_read_url, replica, CLINICAL_SCOPE
        ),
        blobs=open_blobs(settings.resolved_blob_url, s3_endpoint_url=settings.s3_endpoint_url),
        cache=open_cache(settings.resolved_cache_url),
    )


def teaching_stores(settings: Settings, replica: ReplicaRouter | None = None) -> Stores:
    """The teaching collection's stores: by default the clinical kind, in a namespace of
    its own (see :mod:`storage.namespaces`), the index's searches read from the ``replica``
    when the teaching database is on it."""
    return Stores(
        index=_index(
            settings.resolved_teaching_index_url,
            settings.resolved_teaching_index_read_url,
            replica,
            TEACHING_INDEX_SCOPE,
        ),
        blobs=open_blobs(
            settings.resolved_teaching_blob_url, s3_endpoint_url=settings.s3_endpoint_url
        ),
        cache=open_cache(settings.resolved_teaching_cache_url),
    )


def _index(url: str, read_url: str | None, replica: ReplicaRouter | None, scope: str) -> Index:
    """The index at ``url``, its searches read from the replica at ``read_url`` when the
    deployment has one."""
    index = open_index(url)
    if replica is None or read_url is None:
        return index
    on_replica = open_index(on_demand(read_url), name="radcase-index-replica")
    return replicated_index(index, on_replica, replica, scope)


def replica_for(settings: Settings, metrics: Metrics) -> ReplicaRouter | None:
    """The router of the read replica ``index_read_url`` names (not opened); None without."""
    url = settings.resolved_index_read_url
    if url is None:
        return None
    return replica_router(settings, metrics, open_database(on_demand(url), name="radcase-replica"))


def teaching_database(settings: Settings, replica: ReplicaRouter | None) -> Database:
    """The teaching database (cases, learning) as its components write to it (not opened):
    each commit's position recorded when the analytics read from the replica."""
    database = open_database(settings.resolved_teaching_index_url)
    if replica is None or settings.resolved_teaching_index_read_url is None:
        return database
    return recording_database(database, replica)


def analytics_reads(
    settings: Settings, primary: Database, replica: ReplicaRouter | None
) -> Database | None:
    """What the teaching analytics read through (not opened): the replica once it has
    replayed the teaching database's latest write, else ``primary``; None when the teaching
    database has no replica to read from (it is not the index's own namespace)."""
    url = settings.resolved_teaching_index_read_url
    if replica is None or url is None:
        return None
    on_replica = open_database(on_demand(url), name="radcase-teaching-replica")
    return analytics_database(primary, on_replica, replica)


def audit_url(settings: Settings) -> str:
    """The audit log's database: the clinical index's, whose SQLite commits it does not wait
    to sync. Every clinical request writes an entry before it is served, and a synced commit
    each (SQLite queues them behind one writer) made busy reads 25-45% slower in the
    benchmark. A process crash loses no entry either way (the WAL is written before the
    request goes on); a power cut may lose those of the moments before it, up to the next
    synced commit of the index in the same file. PostgreSQL commits it durably as before."""
    return with_durability(settings.resolved_index_url, False)


def auth_layer(settings: Settings) -> AuthLayer:
    """Users and the session registry in the clinical index's database (``radcase-pacs
    user`` ends the very sessions the server checks); login-failure counts in a cache
    namespace of their own, so that no key the archive makes can meet one of theirs (not
    opened)."""
    users = UserStore(
        open_database(settings.resolved_index_url), rounds=settings.password_hash_rounds
    )
    return AuthLayer(
        settings, users, open_cache(namespaced_url(settings.resolved_cache_url, "auth"))
    )


@contextmanager
def open_deployment(
    settings: Settings,
    *,
    clock: Callable[[], datetime] | None = None,
    clinical: Stores | None = None,
    metrics: Metrics | None = None,
    provision: bool = True,
    guard_writes: bool = True,
) -> Iterator[Deployment]:
    """Build and open every store of ``settings``; close them all on exit, in reverse.

    ``clock`` is the teaching layer's time (tests move through days with their own).
    ``clinical``: stores the caller has built and opened and will close itself (tests
    reuse one set of stores across backends); they are measured all the same. ``metrics``:
    a registry to count into (one per process; a fresh one by default); the connection
    pools of every database are sampled into it while the deployment is open. ``migrate`` opens
    both sides with ``provision`` False (no home institution or first admin made: the
    target's all come from the source, and the source is only read) and ``guard_writes``
    False (it copies into a target that may be read-only: a rollback copies back into the
    old deployment)."""
    metrics = metrics or Metrics.create()
    with ExitStack() as stack:
        mode = ModeStore(open_database(settings.resolved_index_url))
        mode.open()
        stack.callback(mode.close)

        audit = metrics.audit_log(open_database(audit_url(settings)))
        audit.open()
        stack.callback(audit.close)

        router = replica_for(settings, metrics)
        if router is not None:
            router.open()
            stack.callback(router.close)

        owned = clinical is None
        stores = clinical_stores(settings, router) if clinical is None else clinical
        teaching_set = teaching_stores(settings, router)
        measured = metrics.instrument(stores)
        if owned:
            measured.open()
            stack.callback(measured.close)
        base = Archive(measured, tenant=settings.tenant)

        auth = auth_layer(settings)
        auth.open(provision=provision)
        stack.callback(auth.close)

        teaching = Archive(teaching_set, tenant=settings.tenant)
        cases = CaseService(
            store=CaseStore(teaching_database(settings, router)),
            clinical=base,
            teaching=teaching,
            configured_secret=settings.deid_secret,
        )
        cases.open()
        stack.callback(cases.close)

        learning_database = teaching_database(settings, router)
        reports_database = analytics_reads(settings, learning_database, router)
        learning = LearningService.over(
            learning_database,
            cases,
            clock=clock or utc_now,
            unknown_users=_unknown_users(auth) if settings.auth == "on" else None,
            analytics=reports_database,
        )
        learning.open()
        stack.callback(learning.close)
        if reports_database is not None:
            reports_database.open()
            stack.callback(reports_database.close)

        pools = {
            "index": _database_of(stores.index),
            "teaching-index": _database_of(teaching_set.index),
            "audit": audit.db,
            "users": auth.users.db,
            "cases": cases.store.db,
            "learning": learning_database,
        }
        stack.enter_context(
            metrics.pools_sampled({n: db for n, db in pools.items() if db is not None})
        )

        databases = {
            "clinical": auth.users.db,
            "audit": audit.db,
            "teaching": cases.store.db,
        }
        guarded = (
            _database_of(stores.index),
            audit.db,
            auth.users.db,
            _database_of(teaching_set.index),
            cases.store.db,
            learning.tables.db,
        )
        gate = WriteGate(mode, settings.read_only_check_seconds)
        if guard_writes:
            _guard(guarded, gate.check)
            stack.callback(_guard, guarded, None)

        after_ingest = (cases.intake,)
        yield Deployment(
            settings=settings,
            metrics=metrics,
            audit=audit,
            clinical=base.observed_by(metrics.ingest_counter(IngestEdge.OTHER), *after_ingest),
            archive=base,
            teaching=teaching,
            cases=cases,
            learning=learning,
            auth=auth,
            mode=mode,
            gate=gate,
            databases=databases,
            guarded=guarded,
            after_ingest=after_ingest,
        )


def _guard(databases: Sequence[Database], guard: Callable[[], None] | None) -> None:
    for database in databases:
        database.guard_writes(guard)


def _database_of(index: Index) -> Database:
    """The database an index writes to (every index this server opens is a SQL one, or
    one whose searches a read replica answers: then its primary's)."""
    if isinstance(index, ReplicatedIndex):
        index = index.primary
    if not isinstance(index, SqlIndex):
        raise TypeError(f"{index!r} keeps no relational database")
    database: Database = index.database
    return database


def _unknown_users(auth: AuthLayer) -> Callable[[str, Sequence[str]], list[str]]:
    """Group members are checked against the institution's accounts (when there are
    accounts to check: not when the server runs without authentication)."""

    def unknown(tenant: str, names: Sequence[str]) -> list[str]:
        return [name for name in names if auth.users.user(name, tenant) is None]

    return unknown
