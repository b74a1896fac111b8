"""The SQL shared by every relational index (SQLite, PostgreSQL).

The index runs over a :class:`~storage.database.base.Database`, which supplies connections,
transactions and migrations; subclasses supply what the dialect matches and sorts
differently. Every statement here is written once, with ``?`` placeholders.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Iterator, Sequence
from dataclasses import fields
from typing import Any, ClassVar, Generic, TypeVar

from storage.attributes import Level
from storage.database.base import Cursor, Database
from storage.database.timestamps import now_text
from storage.errors import DuplicateConflict, IdentityMismatch, InstanceRejected
from storage.index.matching import ALIASES, PatternSyntax, compile_condition
from storage.index.schema import MIGRATIONS
from storage.query import Query
from storage.records import (
    AddOutcome,
    AddResult,
    InstanceRecord,
    Match,
    Removed,
    Stamp,
    StoredInstance,
    Usage,
    View,
)

__all__ = ["Cursor", "SqlIndex", "new_version"]

# Existing data directories hold the index's migrations under this name.
VERSION_TABLE = "schema_version"
D = TypeVar("D", bound=Database)

INSTANCE_COLUMNS = (
    "s.study_uid, se.series_uid, i.sop_uid, i.sop_class_uid, i.transfer_syntax, i.blob_key, "
    "i.blob_size, i.sha256, i.sidecar_key, i.number_of_frames, i.frames, i.frames_source, "
    "i.frames_syntax, i.frames_problem, i.bulk, i.decode_problem"
)
INSTANCE_WIDTH = len(fields(StoredInstance))
"""How many of a row's leading columns are INSTANCE_COLUMNS."""
INSTANCE_FROM = (
    "instances i JOIN series se ON se.id = i.series_pk JOIN studies s ON s.id = i.study_pk"
)
LEVEL_FROM = {
    Level.STUDY: "studies s",
    Level.SERIES: "series se JOIN studies s ON s.id = se.study_pk",
    Level.INSTANCE: INSTANCE_FROM,
}
# ``{nulls}`` is the dialect's spelling of "absent numbers sort first" (SQLite's default).
LEVEL_ORDER = {
    Level.STUDY: "s.id",
    Level.SERIES: "se.series_number{nulls}, se.id",
    Level.INSTANCE: "i.instance_number{nulls}, i.id",
}
INSTANCE_ORDER = "se.series_number{nulls}, se.id, i.instance_number{nulls}, i.id"
# Keys asked about per statement: twice as many parameters, far below either dialect's limit.
KEYS_PER_QUERY = 500


def new_version() -> str:
    """A fresh version token: random, so a deleted and re-created series never reuses one."""
    return secrets.token_hex(8)


class SqlIndex(Generic[D]):
    """An :class:`~storage.index.base.Index` over a relational database, which it owns:
    opening the index opens and migrates the database, closing it closes the database."""

    syntax: ClassVar[PatternSyntax]
    dialect_migrations: ClassVar[dict[int, list[str]]] = {}
    """Statements run after shared migration N on this dialect only (indexes, collations)."""
    nulls_first: ClassVar[str] = ""
    """Appended to nullable ORDER BY keys so every dialect sorts absent numbers first."""

    def __init__(self, database: D) -> None:
        self.database = database

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.database!r})"

    def open(self) -> None:
        self.database.open()
        self.database.migrate(VERSION_TABLE, MIGRATIONS, self.dialect_migrations)

    def close(self) -> None:
        self.database.close()

    def ping(self) -> None:
        self.database.ping()

    def _lock_study(self, cur: Cursor, tenant: str, study_uid: str) -> None:
        """Serialise the writers of one study for the rest of the transaction, where the
        database does not already serialise every writer (SQLite does: nothing to do)."""
        return None

    # -- ingest ---------------------------------------------------------------------------

    def find_instance(self, tenant: str, sop_uid: str) -> StoredInstance | None:
        with self.database.read() as cur:
            row = cur.execute(
                f"SELECT {INSTANCE_COLUMNS} FROM {INSTANCE_FROM} "
                "WHERE i.tenant = ? AND i.sop_uid = ?",
                (tenant, sop_uid),
            ).fetchone()
        return StoredInstance(*row) if row else None

    def add_instance(self, record: InstanceRecord) -> AddResult:
        return self.database.retrying(lambda: self._add_instance(record))

    def _add_instance(self, record: InstanceRecord) -> AddResult:
        with self.database.transaction() as cur:
            self._lock_study(cur, record.tenant, record.study_uid)
            result = self._add(cur, record)
            if result.outcome is AddOutcome.STORED:
                self._next_generation(cur)
            return result

    def add_instances(
        self, records: Sequence[InstanceRecord]
    ) -> list[AddResult | InstanceRejected]:
        if not records:
            return []
        return self.database.retrying(lambda: self._add_instances(records))

    def _add_instances(
        self, records: Sequence[InstanceRecord]
    ) -> list[AddResult | InstanceRejected]:
        """One transaction, a savepoint per record so a refusal undoes that record alone.
        Every study is locked first, in one order, so that two batches over the same studies
        queue instead of deadlocking."""
        results: list[AddResult | InstanceRejected] = []
        with self.database.transaction() as cur:
            for tenant, study_uid in sorted({(r.tenant, r.study_uid) for r in records}):
                self._lock_study(cur, tenant, study_uid)
            for record in records:
                cur.execute("SAVEPOINT add_instance")
                try:
                    results.append(self._add(cur, record))
                except InstanceRejected as exc:
                    cur.execute("ROLLBACK TO SAVEPOINT add_instance")
                    results.append(exc)
                cur.execute("RELEASE SAVEPOINT add_instance")
            if any(isinstance(r, AddResult) and r.outcome is AddOutcome.STORED for r in results):
                self._next_generation(cur)
        return results

    @staticmethod
    def _next_generation(cur: Cursor) -> None:
        """Raise the archive generation, last in a transaction that changed the instances:
        its value changes with the commit that makes the change visible, never before.
        (Last, so that on PostgreSQL the row lock it takes is held only while committing.)"""
        cur.execute("UPDATE archive_generation SET generation = generation + 1 WHERE id = 1")

    def generation(self, tenant: str) -> str:
        """The archive generation: one number for every tenant."""
        with self.database.read() as cur:
            row = cur.execute("SELECT generation FROM archive_generation WHERE id = 1").fetchone()
        return str(int(row[0]) if row else 0)

    def _add(self, cur: Cursor, record: InstanceRecord) -> AddResult:
        """Add one instance inside the caller's transaction, its study already locked."""
        existing = cur.execute(
            "SELECT sha256 FROM instances WHERE tenant = ? AND sop_uid = ?",
            (record.tenant, record.sop_uid),
        ).fetchone()
        if existing is not None:
            if existing[0] == record.sha256:
                return AddResult(AddOutcome.ALREADY_PRESENT)
            raise DuplicateConflict(
                f"SOP Instance {record.sop_uid} is already stored with different content",
                sop_class_uid=record.sop_class_uid,
                sop_instance_uid=record.sop_uid,
            )
        stale: list[Stamp] = []
        study_pk, study_version, new_study = self._ensure_study(cur, record)
        if not new_study:
            stale.append(Stamp(record.study_uid, None, study_version))
        series_pk, series_version, new_series = self._ensure_series(cur, record, study_pk)
        if not new_series:
            stale.append(Stamp(record.study_uid, record.series_uid, series_version))
        self._insert_instance(cur, record, study_pk, series_pk)
        cur.execute(
            "UPDATE series SET n_instances = n_instances + 1, version = ? WHERE id = ?",
            (new_version(), series_pk),
        )
        cur.execute(
            "UPDATE studies SET n_instances = n_instances + 1, n_series = n_series + ?, "
            "version = ? WHERE id = ?",
            (1 if new_series else 0, new_version(), study_pk),
        )
        if new_series or not self._study_has_class(cur, study_pk, record.sop_class_uid):
            self._refresh_study_summary(cur, study_pk)
        return AddResult(AddOutcome.STORED, tuple(stale))

    @staticmethod
    def _study_has_class(cur: Cursor, study_pk: int, sop_class_uid: str) -> bool:
        row = cur.execute("SELECT sop_classes FROM studies WHERE id = ?", (study_pk,)).fetchone()
        return sop_class_uid in str(row[0]).split("\\")

    def _ensure_study(self, cur: Cursor, record: InstanceRecord) -> tuple[int, str, bool]:
        row = cur.execute(
            "SELECT id, version FROM studies WHERE tenant = ? AND study_uid = ?",
            (record.tenant, record.study_uid),
        ).fetchone()
        if row:
            return row[0], row[1], False
        values = {
            "tenant": record.tenant,
            **record.study_values,
            "version": new_version(),
            "doc": record.study_doc,
        }
        return self._insert(cur, "studies", values), values["version"], True

    def _ensure_series(
        self, cur: Cursor, record: InstanceRecord, study_pk: int
    ) -> tuple[int, str, bool]:
        row = cur.execute(
            "SELECT id, version, study_pk FROM series WHERE tenant = ? AND series_uid = ?",
            (record.tenant, record.series_uid),
        ).fetchone()
        if row:
            if row[2] != study_pk:
                raise IdentityMismatch(
                    f"Series {record.series_uid} already belongs to another study",
                    sop_class_uid=record.sop_class_uid,
                    sop_instance_uid=record.sop_uid,
                )
            return row[0], row[1], False
        values = {
            "tenant": record.tenant,
            "study_pk": study_pk,
            **record.series_values,
            "version": new_version(),
            "doc": record.series_doc,
        }
        return self._insert(cur, "series", values), values["version"], True

    def _insert_instance(
        self, cur: Cursor, record: InstanceRecord, study_pk: int, series_pk: int
    ) -> None:
        values = {
            "tenant": record.tenant,
            "study_pk": study_pk,
            "series_pk": series_pk,
            **record.instance_values,
            "transfer_syntax": record.transfer_syntax,
            "blob_key": record.blob_key,
            "blob_size": record.blob_size,
            "sha256": record.sha256,
            "sidecar_key": record.sidecar_key,
            "number_of_frames": record.number_of_frames,
            "frames": record.frames,
            "frames_source": record.frames_source,
            "frames_syntax": record.frames_syntax,
            "frames_problem": record.frames_problem,
            "bulk": record.bulk,
            "decode_problem": record.decode_problem,
            "doc": record.instance_doc,
            "stored_at": now_text(),
        }
        self._insert(cur, "instances", values)

    def _insert(self, cur: Cursor, table: str, values: dict[str, Any]) -> int:
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        row = cur.execute(
            f"INSERT INTO {table} ({columns}) VALUES ({marks}) RETURNING id",
            list(values.values()),
        ).fetchone()
        return int(row[0])

    def _refresh_study_summary(self, cur: Cursor, study_pk: int) -> None:
        """ModalitiesInStudy and SOPClassesInStudy (PS3.4 C.6.2.1.1) kept on the study row so
        QIDO never aggregates at read time."""
        modalities = [
            r[0]
            for r in cur.execute(
                "SELECT DISTINCT modality FROM series WHERE study_pk = ? AND modality IS NOT NULL "
                "ORDER BY modality",
                (study_pk,),
            ).fetchall()
        ]
        classes = [
            r[0]
            for r in cur.execute(
                "SELECT DISTINCT sop_class_uid FROM instances WHERE study_pk = ? "
                "ORDER BY sop_class_uid",
                (study_pk,),
            ).fetchall()
        ]
        cur.execute(
            "UPDATE studies SET modalities = ?, sop_classes = ? WHERE id = ?",
            ("\\".join(modalities), "\\".join(classes), study_pk),
        )

    # -- queries --------------------------------------------------------------------------

    def query(self, view: View, query: Query, limit: int) -> list[Match]:
        level = query.level
        where, params = self._where(view, query)
        columns = [
            "s.study_uid",
            "s.doc",
            "s.modalities",
            "s.sop_classes",
            "s.n_series",
            "s.n_instances",
        ]
        if level is not Level.STUDY:
            columns += ["se.series_uid", "se.doc", "se.n_instances"]
        if level is Level.INSTANCE:
            columns += ["i.sop_uid", "i.doc"]
        if level is Level.STUDY:
            columns.append("s.id")  # the keyset position (studies sort by id)
            if query.after is not None:
                where += " AND s.id > ?"
                params.append(query.after)
        sql = (
            f"SELECT {', '.join(columns)} FROM {LEVEL_FROM[level]} WHERE {where} "
            f"ORDER BY {LEVEL_ORDER[level].format(nulls=self.nulls_first)} LIMIT ? OFFSET ?"
        )
        with self.database.read() as cur:
            rows = cur.execute(sql, [*params, limit, query.offset]).fetchall()
        return [_match(level, row) for row in rows]

    def _where(self, view: View, query: Query) -> tuple[str, list[Any]]:
        alias = ALIASES[query.level]
        clauses, params = [f"{alias}.tenant = ?"], [view.tenant]
        self._restrict(view, clauses, params)
        if query.study_uid is not None:
            clauses.append("s.study_uid = ?")
            params.append(query.study_uid)
        if query.series_uid is not None:
            clauses.append("se.series_uid = ?")
            params.append(query.series_uid)
        for cond in query.conditions:
            fragment = compile_condition(cond, self.syntax, query.fuzzy)
            if fragment is not None:
                clauses.append(fragment.sql)
                params.extend(fragment.params)
        return " AND ".join(clauses), params

    def _restrict(self, view: View, clauses: list[str], params: list[Any]) -> None:
        """Add the view's study condition, when it has one, to a WHERE over ``s``."""
        if view.studies is not None:
            clause, values = self.syntax.one_of("s.study_uid", view.studies)
            clauses.append(clause)
            params.extend(values)

    def version(self, view: View, study_uid: str, series_uid: str | None = None) -> str | None:
        where, params = self._scope(view, study_uid, series_uid, None)
        if series_uid is None:
            sql = f"SELECT s.version FROM studies s WHERE {where}"
        else:
            sql = f"SELECT se.version FROM {LEVEL_FROM[Level.SERIES]} WHERE {where}"
        with self.database.read() as cur:
            row = cur.execute(sql, params).fetchone()
        return str(row[0]) if row else None

    def instance_docs(
        self,
        view: View,
        study_uid: str,
        series_uid: str | None = None,
        sop_uid: str | None = None,
    ) -> list[bytes]:
        where, params = self._scope(view, study_uid, series_uid, sop_uid)
        with self.database.read() as cur:
            rows = cur.execute(
                f"SELECT i.doc FROM {INSTANCE_FROM} WHERE {where} "
                f"ORDER BY {INSTANCE_ORDER.format(nulls=self.nulls_first)}",
                params,
            ).fetchall()
        return [bytes(r[0]) for r in rows]

    def instances(
        self,
        view: View,
        study_uid: str,
        series_uid: str | None = None,
        sop_uid: str | None = None,
    ) -> list[StoredInstance]:
        where, params = self._scope(view, study_uid, series_uid, sop_uid)
        with self.database.read() as cur:
            rows = cur.execute(
                f"SELECT {INSTANCE_COLUMNS} FROM {INSTANCE_FROM} WHERE {where} "
                f"ORDER BY {INSTANCE_ORDER.format(nulls=self.nulls_first)}",
                params,
            ).fetchall()
        return [StoredInstance(*row) for row in rows]

    def tenants(self) -> list[str]:
        with self.database.read() as cur:
            rows = cur.execute("SELECT DISTINCT tenant FROM studies ORDER BY tenant").fetchall()
        return [str(row[0]) for row in rows]

    def usage(self, tenant: str) -> Usage:
        with self.database.read() as cur:
            studies = cur.execute("SELECT COUNT(*) FROM studies WHERE tenant = ?", (tenant,))
            (study_count,) = studies.fetchone()
            instances = cur.execute(
                "SELECT COUNT(*), COALESCE(SUM(blob_size), 0) FROM instances WHERE tenant = ?",
                (tenant,),
            )
            instance_count, size = instances.fetchone()
        return Usage(int(study_count), int(instance_count), int(size))

    def stored_instances(self, tenant: str, after: str, limit: int) -> list[StoredInstance]:
        """A page of a tenant's instances in SOP Instance UID order after ``after``: keyset
        paging, so a listing that runs while instances arrive neither repeats nor skips one
        that was there when it started."""
        with self.database.read() as cur:
            rows = cur.execute(
                f"SELECT {INSTANCE_COLUMNS} FROM {INSTANCE_FROM} "
                "WHERE i.tenant = ? AND i.sop_uid > ? ORDER BY i.sop_uid LIMIT ?",
                (tenant, after, limit),
            ).fetchall()
        return [StoredInstance(*row) for row in rows]

    def _scope(
        self, view: View, study_uid: str, series_uid: str | None, sop_uid: str | None
    ) -> tuple[str, list[Any]]:
        """The WHERE of one study, series or instance. The tenant is repeated on every level
        named, each beside its UID: the unique (tenant, UID) indexes then lead the plan. With
        the tenant on the instances alone, SQLite (no statistics) scanned every instance of
        the tenant for a series' metadata (80 ms at 10,000 instances instead of 1 ms)."""
        tenant = view.tenant
        clauses, params = ["s.tenant = ?", "s.study_uid = ?"], [tenant, study_uid]
        self._restrict(view, clauses, params)
        if series_uid is not None:
            clauses += ["se.tenant = ?", "se.series_uid = ?"]
            params += [tenant, series_uid]
        if sop_uid is not None:
            clauses += ["i.tenant = ?", "i.sop_uid = ?"]
            params += [tenant, sop_uid]
        return " AND ".join(clauses), params

    def referenced_keys(self, keys: Collection[str]) -> set[str]:
        """Served by the indexes on ``blob_key`` and ``sidecar_key`` (schema migration 3)."""
        found: set[str] = set()
        with self.database.read() as cur:
            for chunk in _chunks(list(keys), KEYS_PER_QUERY):
                marks = ", ".join("?" for _ in chunk)
                rows = cur.execute(
                    f"SELECT blob_key FROM instances WHERE blob_key IN ({marks}) UNION "
                    f"SELECT sidecar_key FROM instances WHERE sidecar_key IN ({marks})",
                    [*chunk, *chunk],
                ).fetchall()
                found.update(str(row[0]) for row in rows)
        return found

    # -- delete ---------------------------------------------------------------------------

    def remove(
        self,
        view: View,
        study_uid: str,
        series_uid: str | None = None,
        sop_uid: str | None = None,
    ) -> Removed:
        return self.database.retrying(lambda: self._remove(view, study_uid, series_uid, sop_uid))

    def _remove(
        self, view: View, study_uid: str, series_uid: str | None, sop_uid: str | None
    ) -> Removed:
        where, params = self._scope(view, study_uid, series_uid, sop_uid)
        with self.database.transaction() as cur:
            self._lock_study(cur, view.tenant, study_uid)
            rows = cur.execute(
                f"SELECT {INSTANCE_COLUMNS}, i.id, se.id, s.id, se.version, s.version "
                f"FROM {INSTANCE_FROM} WHERE {where}",
                params,
            ).fetchall()
            if not rows:
                return Removed((), ())
            removed = tuple(StoredInstance(*r[:INSTANCE_WIDTH]) for r in rows)
            # The columns after INSTANCE_COLUMNS, in the order selected above.
            keys = [r[INSTANCE_WIDTH:] for r in rows]
            stale = {Stamp(i.study_uid, None, k[4]) for i, k in zip(removed, keys, strict=True)}
            stale |= {
                Stamp(i.study_uid, i.series_uid, k[3]) for i, k in zip(removed, keys, strict=True)
            }
            for chunk in _chunks([k[0] for k in keys], 500):
                marks = ", ".join("?" for _ in chunk)
                cur.execute(f"DELETE FROM instances WHERE id IN ({marks})", chunk)
            for series_pk in {k[1] for k in keys}:
                self._recount_series(cur, series_pk)
            for study_pk in {k[2] for k in keys}:
                self._recount_study(cur, study_pk)
            self._next_generation(cur)
        return Removed(removed, tuple(stale))

    def _recount_series(self, cur: Cursor, series_pk: int) -> None:
        count = cur.execute(
            "SELECT COUNT(*) FROM instances WHERE series_pk = ?", (series_pk,)
        ).fetchone()[0]
        if count == 0:
            cur.execute("DELETE FROM series WHERE id = ?", (series_pk,))
        else:
            cur.execute(
                "UPDATE series SET n_instances = ?, version = ? WHERE id = ?",
                (count, new_version(), series_pk),
            )

    def _recount_study(self, cur: Cursor, study_pk: int) -> None:
        n_instances = cur.execute(
            "SELECT COUNT(*) FROM instances WHERE study_pk = ?", (study_pk,)
        ).fetchone()[0]
        if n_instances == 0:
            cur.execute("DELETE FROM series WHERE study_pk = ?", (study_pk,))
            cur.execute("DELETE FROM studies WHERE id = ?", (study_pk,))
            return
        n_series = cur.execute(
            "SELECT COUNT(*) FROM series WHERE study_pk = ?", (study_pk,)
        ).fetchone()[0]
        cur.execute(
            "UPDATE studies SET n_instances = ?, n_series = ?, version = ? WHERE id = ?",
            (n_instances, n_series, new_version(), study_pk),
        )
        self._refresh_study_summary(cur, study_pk)


def _match(level: Level, row: Sequence[Any]) -> Match:
    study_uid, study_doc, modalities, classes, n_series, n_study_instances = row[:6]
    computed: dict[int, Any] = {
        0x00080061: modalities.split("\\") if modalities else [],
        0x00080062: classes.split("\\") if classes else [],
        0x00201206: n_series,
        0x00201208: n_study_instances,
        0x00080056: "ONLINE",
    }
    docs = [bytes(study_doc)]
    series_uid = sop_uid = position = None
    if level is Level.STUDY:
        position = int(row[6])
    else:
        series_uid, series_doc, n_series_instances = row[6:9]
        docs.append(bytes(series_doc))
        computed[0x00201209] = n_series_instances
    if level is Level.INSTANCE:
        sop_uid, instance_doc = row[9:11]
        docs.append(bytes(instance_doc))
    return Match(level, study_uid, series_uid, sop_uid, tuple(docs), computed, position)


def _chunks(values: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
