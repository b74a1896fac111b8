"""The PostgreSQL index with a streaming replica: searches (:meth:`ReplicatedIndex.query`, what
QIDO-RS, C-FIND and the other searches run) are read from the replica when it has replayed the
tenant's latest write; everything else, and every write, stays on the primary.

Each commit that adds or removes instances records the primary's WAL position under the
tenant (:mod:`storage.replica.router`), so a client that has just stored an instance finds it
in its next search, whichever process answers.

Cached searches. The archive keys cached search answers by :meth:`ReplicatedIndex.generation`,
read before the answer is built: here the generation (from the server the read goes to) and
the tenant's recorded position. A client that has stored an instance asks under a key no
answer lacking it can be cached under: the key's position is at least the instance's, so an
answer cached under it was built on the replica after it had replayed past the instance, or
on the primary, where an answer built before the instance's commit would be under a lower
generation (its commit raised it, and the client reads the generation after that commit from
a server that has it). Without the position, a reader sent to the replica could cache an
answer missing a write committed but not yet recorded under a generation that already counts
it, and serve it to the writer's client.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from storage.database.postgres import PostgresDatabase
from storage.errors import InstanceRejected
from storage.index.sql import SqlIndex
from storage.query import Query
from storage.records import (
    AddOutcome,
    AddResult,
    InstanceRecord,
    Match,
    Removed,
    StoredInstance,
    Usage,
    View,
)
from storage.replica.router import ReplicaRouter


class ReplicatedIndex:
    """An :class:`~storage.index.base.Index` over a primary and its streaming replica (the same
    SQL on both: ``replica`` is the primary's kind of index over the replica's database, never
    migrated). ``scope`` names this index among the others recording positions (tenants are
    added to it)."""

    def __init__(
        self,
        primary: SqlIndex[PostgresDatabase],
        replica: SqlIndex[PostgresDatabase],
        router: ReplicaRouter,
        scope: str,
    ) -> None:
        self.primary = primary
        self.replica = replica
        self.router = router
        self.scope = scope

    def __repr__(self) -> str:
        return f"ReplicatedIndex({self.primary!r}, replica={self.replica!r})"

    def _scope(self, tenant: str) -> str:
        return f"{self.scope}:{tenant}"

    def open(self) -> None:
        """Open and migrate the primary; the replica's pool connects on demand (its URL asks
        for no connection up front), so a replica that is down delays nothing."""
        self.primary.open()
        self.replica.database.open()

    def close(self) -> None:
        self.replica.database.close()
        self.primary.close()

    def ping(self) -> None:
        """The primary only: a replica that is down leaves the server ready (reads go to the
        primary)."""
        self.primary.ping()

    # -- writes: the primary, then the position -------------------------------------------

    def _written(self, tenants: Collection[str]) -> None:
        for tenant in sorted(set(tenants)):
            self.router.written(self._scope(tenant), self.primary.database)

    def add_instance(self, record: InstanceRecord) -> AddResult:
        result = self.primary.add_instance(record)
        if result.outcome is AddOutcome.STORED:
            self._written([record.tenant])
        return result

    def add_instances(
        self, records: Sequence[InstanceRecord]
    ) -> list[AddResult | InstanceRejected]:
        results = self.primary.add_instances(records)
        self._written(
            [
                record.tenant
                for record, result in zip(records, results, strict=True)
                if isinstance(result, AddResult) and result.outcome is AddOutcome.STORED
            ]
        )
        return results

    def remove(
        self,
        view: View,
        study_uid: str,
        series_uid: str | None = None,
        sop_uid: str | None = None,
    ) -> Removed:
        removed = self.primary.remove(view, study_uid, series_uid, sop_uid)
        if removed.instances:
            self._written([view.tenant])
        return removed

    # -- searches: the replica when it may answer -----------------------------------------

    def query(self, view: View, query: Query, limit: int) -> list[Match]:
        return self.router.read(
            self._scope(view.tenant),
            lambda: self.replica.query(view, query, limit),
            lambda: self.primary.query(view, query, limit),
        )

    def generation(self, tenant: str) -> str:
        required = self.router.positions.required(self._scope(tenant))
        number = self.router.read_after(
            required,
            lambda: self.replica.generation(tenant),
            lambda: self.primary.generation(tenant),
        )
        return f"{number}.{'-' if required is None else required}"

    # -- everything else: the primary -----------------------------------------------------

    def find_instance(self, tenant: str, sop_uid: str) -> StoredInstance | None:
        return self.primary.find_instance(tenant, sop_uid)

    def version(self, view: View, study_uid: str, series_uid: str | None = None) -> str | None:
        return self.primary.version(view, study_uid, series_uid)

    def instance_docs(
        self,
        view: View,
        study_uid: str,
        series_uid: str | None = None,
        sop_uid: str | None = None,
    ) -> list[bytes]:
        return self.primary.instance_docs(view, study_uid, series_uid, sop_uid)

    def instances(
        self,
        view: View,
        study_uid: str,
        series_uid: str | None = None,
        sop_uid: str | None = None,
    ) -> list[StoredInstance]:
        return self.primary.instances(view, study_uid, series_uid, sop_uid)

    def tenants(self) -> list[str]:
        return self.primary.tenants()

    def usage(self, tenant: str) -> Usage:
        return self.primary.usage(tenant)

    def stored_instances(self, tenant: str, after: str, limit: int) -> list[StoredInstance]:
        return self.primary.stored_instances(tenant, after, limit)

    def referenced_keys(self, keys: Collection[str]) -> set[str]:
        return self.primary.referenced_keys(keys)
