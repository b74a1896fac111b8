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

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime

from radcase_pacs.audit.store import AuditLog
from radcase_pacs.auth.layer import AuthLayer
from radcase_pacs.auth.users import UserStore
from radcase_pacs.metrics import Metrics
from radcase_pacs.mode import ModeStore, WriteGate
from radcase_pacs.settings import Settings
from storage.archive import Archive
from storage.database.base import Database
from storage.index.base import Index
from storage.index.sql import SqlIndex
from storage.namespaces import namespaced_url
from storage.stores import Stores
from storage.urls import open_blobs, open_cache, open_database, open_index, with_durability
from teaching.cases.service import CaseService
from teaching.cases.store import CaseStore
from teaching.learning.service import LearningService, utc_now


@dataclass(frozen=True)
class Deployment:
    """What one process serves from. ``clinical`` is the clinical archive as every edge that
    takes instances in must use it (its ingests counted in ``metrics`` and run through KOS
    intake); ``archive`` the same stores with no ingest observers, for copying what another
    deployment already took in (``migrate``: a copy is not a new arrival, and intake there
    would make every teaching-file KOS a second draft case); ``teaching`` the de-identified
    collection; the rest the teaching, auth and audit services. ``mode`` and ``gate``: the
    deployment's mode and the guard its databases run; ``databases``: every database a write
    can reach, by role (``clinical``: the clinical index's, which also holds the users and
    the audit log; ``audit``: the audit log's own handle on it; ``teaching``: the teaching
    collection's index, cases and learning tables), and the rest in ``guarded``."""

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

    def ping(self) -> None:
        """Raise BackendFailure unless every database answers (``/healthz``)."""
        self.audit.ping()
        self.clinical.ping()
        self.teaching.ping()
        self.cases.store.ping()


def clinical_stores(settings: Settings) -> Stores:
    """The clinical archive's stores as the settings name them (not opened)."""
    return Stores(
        index=open_index(settings.resolved_index_url),
        blobs=open_blobs(settings.resolved_blob_url, s3_endpoint_url=settings.s3_endpoint_url),
        cache=open_cache(settings.cache_url),
    )


def teaching_stores(settings: Settings) -> Stores:
    """The teaching collection's stores: by default the clinical kind, in a namespace of
    its own (see :mod:`storage.namespaces`)."""
    return Stores(
        index=open_index(settings.resolved_teaching_index_url),
        blobs=open_blobs(
            settings.resolved_teaching_blob_url, s3_endpoint_url=settings.s3_endpoint_url
        ),
        cache=open_cache(settings.resolved_teaching_cache_url),
    )


def audit_url(settings: Settings) -> str:
    """The audit log's database: the clinical index's, whose SQLite commits it does not wait
    to sync. Every clinical request writes an entry before it is served, and a synced commit
    each (SQLite queues them behind one writer) made busy reads 25-45% slower in the
    benchmark. A process crash loses no entry either way (the WAL is written before the
    request goes on); a power cut may lose those of the moments before it, up to the next
    synced commit of the index in the same file. PostgreSQL commits it durably as before."""
    return with_durability(settings.resolved_index_url, False)


def auth_layer(settings: Settings) -> AuthLayer:
    """Users in the clinical index's database; sessions and login counters in a cache
    namespace of their own, so that no key the archive makes can meet one of theirs (not
    opened). ``radcase-pacs user`` reaches the very sessions the server checks through it."""
    users = UserStore(
        open_database(settings.resolved_index_url), rounds=settings.password_hash_rounds
    )
    return AuthLayer(settings, users, open_cache(namespaced_url(settings.cache_url, "auth")))


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
    a registry to count into (one per process; a fresh one by default). ``migrate`` opens
    both sides with ``provision`` False (no home institution or first admin made: the
    target's all come from the source, and the source is only read) and ``guard_writes``
    False (it copies into a target that may be read-only: a rollback copies back into the
    old deployment)."""
    metrics = metrics or Metrics.create()
    with ExitStack() as stack:
        mode = ModeStore(open_database(settings.resolved_index_url))
        mode.open()
        stack.callback(mode.close)

        audit = AuditLog(open_database(audit_url(settings)))
        audit.open()
        stack.callback(audit.close)

        owned = clinical is None
        stores = clinical_stores(settings) if clinical is None else clinical
        teaching_set = teaching_stores(settings)
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
            store=CaseStore(open_database(settings.resolved_teaching_index_url)),
            clinical=base,
            teaching=teaching,
            configured_secret=settings.deid_secret,
        )
        cases.open()
        stack.callback(cases.close)

        learning = LearningService.over(
            open_database(settings.resolved_teaching_index_url),
            cases,
            clock=clock or utc_now,
            unknown_users=_unknown_users(auth) if settings.auth == "on" else None,
        )
        learning.open()
        stack.callback(learning.close)

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

        yield Deployment(
            settings=settings,
            metrics=metrics,
            audit=audit,
            clinical=base.observed_by(metrics.count_ingest, cases.intake),
            archive=base,
            teaching=teaching,
            cases=cases,
            learning=learning,
            auth=auth,
            mode=mode,
            gate=gate,
            databases=databases,
            guarded=guarded,
        )


def _guard(databases: Sequence[Database], guard: Callable[[], None] | None) -> None:
    for database in databases:
        database.guard_writes(guard)


def _database_of(index: Index) -> Database:
    """The database under an index (every index this server opens is a SQL one)."""
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
