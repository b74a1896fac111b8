"""The index contract: what the archive needs from a database, and nothing more.

Implementations do raw operations in one transaction each; the archive owns the rest (keys,
write order, cache invalidation, error translation). One contract suite runs over every
implementation.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

from storage.errors import InstanceRejected
from storage.query import Query
from storage.records import (
    AddResult,
    InstanceRecord,
    Match,
    Removed,
    StoredInstance,
    Usage,
    View,
)


class Index(Protocol):
    def open(self) -> None:
        """Connect and bring the schema to the current version (idempotent)."""

    def close(self) -> None: ...

    def ping(self) -> None:
        """Raise BackendFailure when the database cannot answer."""

    def find_instance(self, tenant: str, sop_uid: str) -> StoredInstance | None: ...

    def add_instance(self, record: InstanceRecord) -> AddResult:
        """Insert the instance and its study/series rows in one transaction.

        Identical content already stored gives ALREADY_PRESENT; the same SOP Instance UID with
        other content raises DuplicateConflict; a series UID already in another study raises
        IdentityMismatch.
        """

    def add_instances(
        self, records: Sequence[InstanceRecord]
    ) -> list[AddResult | InstanceRejected]:
        """Each record as :meth:`add_instance` would add it, in order, all in one transaction:
        one durable commit for the batch. A record refused (DuplicateConflict,
        IdentityMismatch) is returned as that error and leaves nothing behind; the others
        still commit. A later record sees the earlier ones (the same instance twice gives
        STORED then ALREADY_PRESENT)."""

    def query(self, view: View, query: Query, limit: int) -> list[Match]:
        """Rows matching ``query`` at its level within ``view``, ``limit`` at most, from
        ``query.offset``."""

    def version(self, view: View, study_uid: str, series_uid: str | None = None) -> str | None:
        """The version token of a study or series, None when it does not exist in ``view``."""

    def generation(self, tenant: str) -> str:
        """A token that changes with every commit that adds or removes instances of
        ``tenant`` (here, of any tenant), read before a search runs: what the tenant's search
        results are cached under."""
        ...

    def instance_docs(
        self,
        view: View,
        study_uid: str,
        series_uid: str | None = None,
        sop_uid: str | None = None,
    ) -> list[bytes]:
        """The stored DICOM JSON of each instance, in series then instance order."""

    def instances(
        self,
        view: View,
        study_uid: str,
        series_uid: str | None = None,
        sop_uid: str | None = None,
    ) -> list[StoredInstance]: ...

    def remove(
        self,
        view: View,
        study_uid: str,
        series_uid: str | None = None,
        sop_uid: str | None = None,
    ) -> Removed:
        """Delete the rows of a study, series or instance (and of emptied parents)."""

    def tenants(self) -> list[str]:
        """Every tenant that holds at least one study."""

    def usage(self, tenant: str) -> Usage:
        """How many studies and instances a tenant holds and the bytes of their files."""

    def stored_instances(self, tenant: str, after: str, limit: int) -> list[StoredInstance]:
        """Up to ``limit`` instances of a tenant with SOP Instance UIDs after ``after``, in
        that order (what a migration or an audit walks through)."""

    def referenced_keys(self, keys: Collection[str]) -> set[str]:
        """Those of ``keys`` that an instance row of any tenant names as its blob or its bulk
        sidecar: what the orphan sweep must keep. Asked in batches, so a store of a million
        blobs costs thousands of queries, not a million."""
