"""Persistence of teaching cases, their instances and the clinical-to-teaching UID map.

One SQL text for SQLite and PostgreSQL through :class:`storage.database.base.Database`; every
statement is scoped by tenant. Each public method is one transaction, so a case never exists
without its instances and its UID pairs.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from storage.database.base import Cursor, like_escape
from storage.database.tables import Tables
from storage.database.timestamps import from_text, now_text, to_text
from teaching.cases.models import (
    Case,
    CaseStatus,
    CaseSummary,
    InstanceState,
    KeyImage,
    PixelReview,
    Tags,
)
from teaching.cases.schema import MIGRATIONS, VERSION_TABLE

CONTENT_FIELDS = ("title", "history", "findings", "diagnosis", "discussion")
JSON_FIELDS = ("differential", "key_images", "tags")
CASE_COLUMNS = (
    "id, case_id, title, history, findings, diagnosis, differential, discussion, key_images, "
    "tags, status, author, note, origin, teaching_study_uid, created_at, updated_at, "
    "published_at"
)
INSTANCE_COLUMNS = (
    "t.sop_uid, t.study_uid, t.series_uid, t.sop_class_uid, t.burned_in, t.reasons, t.review, "
    "t.pending_key"
)
KEYS_PER_QUERY = 500


@dataclass(frozen=True)
class TeachingInstance:
    """One de-identified instance; ``pending_key`` names the held-back copy of a flagged
    instance that is not yet in the teaching collection."""

    sop_uid: str
    study_uid: str
    series_uid: str
    sop_class_uid: str
    burned_in: bool
    reasons: tuple[str, ...]
    review: PixelReview
    pending_key: str | None = None


@dataclass(frozen=True)
class NewCase:
    tenant: str
    case_id: str
    content: dict[str, Any]
    status: CaseStatus
    author: str
    note: str
    origin: str
    source_study_uid: str
    teaching_study_uid: str
    created_at: datetime


@dataclass(frozen=True)
class CaseFilter:
    text: str | None = None
    status: CaseStatus | None = None
    category: str | None = None
    level: str | None = None
    modality: str | None = None
    anatomy: str | None = None
    tag: str | None = None
    author: str | None = None
    origin: str | None = None
    """``api`` (made by an educator) or ``kos`` (flagged from a workstation)."""


def search_text(content: dict[str, Any]) -> str:
    """Every searchable word of a case, case-folded, in one column."""
    tags = Tags.model_validate(content.get("tags") or {})
    parts = [str(content.get(name) or "") for name in CONTENT_FIELDS]
    parts += list(content.get("differential") or [])
    parts += tags.modalities + tags.anatomy + tags.free
    return "\n".join(parts).casefold()


def tag_rows(tags: Tags) -> set[tuple[str, str]]:
    rows = {("category", code) for code in tags.categories}
    if tags.level is not None:
        rows.add(("level", tags.level))
    rows |= {("modality", m) for m in tags.modalities}
    rows |= {("anatomy", a.casefold()) for a in tags.anatomy}
    rows |= {("free", t.casefold()) for t in tags.free}
    return rows


class CaseStore(Tables):
    version_table = VERSION_TABLE
    migrations = MIGRATIONS

    # -- the deployment secret -----------------------------------------------------------

    def secret(self) -> str:
        """The de-identification key shared by every process of the deployment, created on
        first use; kept in the database so that scale-out processes agree without local state."""
        return self.kept_secret("teaching_secret")

    # -- cases ----------------------------------------------------------------------------

    def insert_case(
        self,
        case: NewCase,
        instances: Sequence[TeachingInstance],
        uid_pairs: Iterable[tuple[str, str]],
    ) -> None:
        content = case.content
        with self.db.transaction() as cur:
            self._record_uids(cur, case.tenant, uid_pairs)
            stamp = to_text(case.created_at)
            cur.execute(
                "INSERT INTO cases (tenant, case_id, title, history, findings, diagnosis, "
                "differential, discussion, key_images, tags, status, author, note, origin, "
                "source_study_uid, teaching_study_uid, search_text, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    case.tenant,
                    case.case_id,
                    *(str(content.get(name) or "") for name in CONTENT_FIELDS[:4]),
                    _dump(content.get("differential") or []),
                    str(content.get("discussion") or ""),
                    _dump(content.get("key_images") or []),
                    _dump(content.get("tags") or {}),
                    case.status.value,
                    case.author,
                    case.note,
                    case.origin,
                    case.source_study_uid,
                    case.teaching_study_uid,
                    search_text(content),
                    stamp,
                    stamp,
                ),
            )
            pk = self._pk(cur, case.tenant, case.case_id)
            assert pk is not None
            self._write_tags(cur, pk, Tags.model_validate(content.get("tags") or {}))
            self._attach(cur, case.tenant, pk, instances)

    def add_instances(
        self,
        tenant: str,
        case_id: str,
        instances: Sequence[TeachingInstance],
        uid_pairs: Iterable[tuple[str, str]],
    ) -> bool:
        with self.db.transaction() as cur:
            pk = self._pk(cur, tenant, case_id)
            if pk is None:
                return False
            self._record_uids(cur, tenant, uid_pairs)
            self._attach(cur, tenant, pk, instances)
            self._touch(cur, pk)
        return True

    def _attach(
        self, cur: Cursor, tenant: str, pk: int, instances: Sequence[TeachingInstance]
    ) -> None:
        for inst in instances:
            cur.execute(
                "INSERT INTO teaching_instances (tenant, sop_uid, study_uid, series_uid, "
                "sop_class_uid, burned_in, reasons, review, pending_key) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant, sop_uid) DO NOTHING",
                (
                    tenant,
                    inst.sop_uid,
                    inst.study_uid,
                    inst.series_uid,
                    inst.sop_class_uid,
                    int(inst.burned_in),
                    _dump(list(inst.reasons)),
                    inst.review.value,
                    inst.pending_key,
                ),
            )
            cur.execute(
                "INSERT INTO case_instances (case_pk, tenant, sop_uid) VALUES (?, ?, ?) "
                "ON CONFLICT (case_pk, sop_uid) DO NOTHING",
                (pk, tenant, inst.sop_uid),
            )

    def _pk(self, cur: Cursor, tenant: str, case_id: str) -> int | None:
        row = cur.execute(
            "SELECT id FROM cases WHERE tenant = ? AND case_id = ?", (tenant, case_id)
        ).fetchone()
        return None if row is None else int(row[0])

    def _touch(self, cur: Cursor, pk: int) -> None:
        cur.execute("UPDATE cases SET updated_at = ? WHERE id = ?", (now_text(), pk))

    def _write_tags(self, cur: Cursor, pk: int, tags: Tags) -> None:
        cur.execute("DELETE FROM case_tags WHERE case_pk = ?", (pk,))
        for kind, value in sorted(tag_rows(tags)):
            cur.execute(
                "INSERT INTO case_tags (case_pk, kind, value) VALUES (?, ?, ?)", (pk, kind, value)
            )

    def get(self, tenant: str, case_id: str) -> Case | None:
        with self.db.read() as cur:
            row = cur.execute(
                f"SELECT {CASE_COLUMNS} FROM cases WHERE tenant = ? AND case_id = ?",
                (tenant, case_id),
            ).fetchone()
            if row is None:
                return None
            instances = self._instances(cur, tenant, int(row[0]))
        return _case(row, instances)

    def _instances(self, cur: Cursor, tenant: str, pk: int) -> list[TeachingInstance]:
        rows = cur.execute(
            f"SELECT {INSTANCE_COLUMNS} FROM case_instances c JOIN teaching_instances t "
            "ON t.tenant = c.tenant AND t.sop_uid = c.sop_uid WHERE c.case_pk = ? "
            "ORDER BY t.series_uid, t.sop_uid",
            (pk,),
        ).fetchall()
        return [_instance(row) for row in rows]

    def update(self, tenant: str, case_id: str, changes: dict[str, Any]) -> Case | None:
        """Replace the given content fields (and status); None when there is no such case."""
        current = self.get(tenant, case_id)
        if current is None:
            return None
        merged = current.model_dump(mode="json") | {
            k: v for k, v in changes.items() if k != "status"
        }
        status = changes.get("status") or current.status
        with self.db.transaction() as cur:
            pk = self._pk(cur, tenant, case_id)
            if pk is None:
                return None
            cur.execute(
                "UPDATE cases SET title = ?, history = ?, findings = ?, diagnosis = ?, "
                "differential = ?, discussion = ?, key_images = ?, tags = ?, status = ?, "
                "search_text = ?, updated_at = ? WHERE id = ?",
                (
                    merged["title"],
                    merged["history"],
                    merged["findings"],
                    merged["diagnosis"],
                    _dump(merged["differential"]),
                    merged["discussion"],
                    _dump(merged["key_images"]),
                    _dump(merged["tags"]),
                    CaseStatus(status).value,
                    search_text(merged),
                    now_text(),
                    pk,
                ),
            )
            if "tags" in changes:
                self._write_tags(cur, pk, Tags.model_validate(merged["tags"]))
        return self.get(tenant, case_id)

    def publish(self, tenant: str, case_id: str, at: datetime) -> None:
        with self.db.transaction() as cur:
            cur.execute(
                "UPDATE cases SET status = ?, published_at = ?, updated_at = ? "
                "WHERE tenant = ? AND case_id = ?",
                (CaseStatus.PUBLISHED.value, to_text(at), to_text(at), tenant, case_id),
            )

    def unpublish(self, tenant: str, case_id: str, at: datetime) -> None:
        """Back to draft: learners no longer meet the case; its history stays."""
        with self.db.transaction() as cur:
            cur.execute(
                "UPDATE cases SET status = ?, published_at = NULL, updated_at = ? "
                "WHERE tenant = ? AND case_id = ?",
                (CaseStatus.DRAFT.value, to_text(at), tenant, case_id),
            )

    def delete(self, tenant: str, case_id: str) -> list[TeachingInstance] | None:
        """Remove the case; returns its instances that no other case still uses (the caller
        removes those from the teaching collection), None when there was no such case."""
        with self.db.transaction() as cur:
            pk = self._pk(cur, tenant, case_id)
            if pk is None:
                return None
            instances = self._instances(cur, tenant, pk)
            cur.execute("DELETE FROM case_tags WHERE case_pk = ?", (pk,))
            cur.execute("DELETE FROM case_instances WHERE case_pk = ?", (pk,))
            cur.execute("DELETE FROM cases WHERE id = ?", (pk,))
            unused = []
            for inst in instances:
                still = cur.execute(
                    "SELECT 1 FROM case_instances WHERE tenant = ? AND sop_uid = ?",
                    (tenant, inst.sop_uid),
                ).fetchone()
                if still is None:
                    cur.execute(
                        "DELETE FROM teaching_instances WHERE tenant = ? AND sop_uid = ?",
                        (tenant, inst.sop_uid),
                    )
                    unused.append(inst)
        return unused

    def search(
        self, tenant: str, where: CaseFilter, limit: int, offset: int
    ) -> tuple[int, list[CaseSummary]]:
        clauses, params = ["tenant = ?"], [tenant]
        for term in (where.text or "").casefold().split():
            clauses.append("search_text LIKE ? ESCAPE '\\'")
            params.append(f"%{like_escape(term)}%")
        if where.status is not None:
            clauses.append("status = ?")
            params.append(where.status.value)
        if where.author is not None:
            clauses.append("author = ?")
            params.append(where.author)
        if where.origin is not None:
            clauses.append("origin = ?")
            params.append(where.origin)
        tag_filters = [
            ("category", where.category),
            ("level", where.level),
            ("modality", where.modality),
            ("anatomy", where.anatomy.casefold() if where.anatomy else None),
            ("free", where.tag.casefold() if where.tag else None),
        ]
        for kind, value in tag_filters:
            if value is not None:
                clauses.append(
                    "EXISTS (SELECT 1 FROM case_tags t WHERE t.case_pk = cases.id "
                    "AND t.kind = ? AND t.value = ?)"
                )
                params += [kind, value]
        condition = " AND ".join(clauses)
        with self.db.read() as cur:
            total = int(
                cur.execute(f"SELECT COUNT(*) FROM cases WHERE {condition}", params).fetchone()[0]
            )
            rows = cur.execute(
                "SELECT case_id, title, status, author, tags, teaching_study_uid, updated_at, "
                "origin, (SELECT COUNT(*) FROM case_instances c JOIN teaching_instances t "
                "ON t.tenant = c.tenant AND t.sop_uid = c.sop_uid "
                "WHERE c.case_pk = cases.id AND t.review = ?) "
                f"FROM cases WHERE {condition} ORDER BY updated_at DESC, id DESC "
                "LIMIT ? OFFSET ?",
                [PixelReview.PENDING.value, *params, limit, offset],
            ).fetchall()
        return total, [
            CaseSummary(
                id=row[0],
                title=row[1],
                status=CaseStatus(row[2]),
                author=row[3],
                tags=Tags.model_validate_json(row[4]),
                teaching_study_instance_uid=row[5],
                updated_at=from_text(row[6]),
                origin=row[7],
                pending_reviews=int(row[8]),
            )
            for row in rows
        ]

    def published_study_uids(self, tenant: str) -> frozenset[str]:
        """The teaching study UIDs of the tenant's published cases (what learners may open)."""
        with self.db.read() as cur:
            rows = cur.execute(
                "SELECT DISTINCT teaching_study_uid FROM cases WHERE tenant = ? AND status = ?",
                (tenant, CaseStatus.PUBLISHED.value),
            ).fetchall()
        return frozenset(str(row[0]) for row in rows if row[0])

    # -- instances and their pixel review -------------------------------------------------

    def instance(self, tenant: str, case_id: str, sop_uid: str) -> TeachingInstance | None:
        with self.db.read() as cur:
            row = cur.execute(
                f"SELECT {INSTANCE_COLUMNS} FROM cases k JOIN case_instances c "
                "ON c.case_pk = k.id JOIN teaching_instances t "
                "ON t.tenant = c.tenant AND t.sop_uid = c.sop_uid "
                "WHERE k.tenant = ? AND k.case_id = ? AND c.sop_uid = ?",
                (tenant, case_id, sop_uid),
            ).fetchone()
        return None if row is None else _instance(row)

    def teaching_instance(self, tenant: str, sop_uid: str) -> TeachingInstance | None:
        with self.db.read() as cur:
            row = cur.execute(
                f"SELECT {INSTANCE_COLUMNS} FROM teaching_instances t "
                "WHERE t.tenant = ? AND t.sop_uid = ?",
                (tenant, sop_uid),
            ).fetchone()
        return None if row is None else _instance(row)

    def set_review(self, tenant: str, sop_uid: str, review: PixelReview) -> None:
        """Record the decision; the held-back copy is in the collection from now on."""
        with self.db.transaction() as cur:
            cur.execute(
                "UPDATE teaching_instances SET review = ?, pending_key = NULL "
                "WHERE tenant = ? AND sop_uid = ?",
                (review.value, tenant, sop_uid),
            )

    def held_keys(self, keys: Collection[str]) -> set[str]:
        """Those of ``keys`` that name the held-back copy of an instance some case still
        holds: what the orphan sweep must keep in the teaching blob store. A copy whose case
        was deleted, or whose case was never recorded (a crash between the copy and the
        case), is named by no row and goes."""
        found: set[str] = set()
        wanted = list(keys)
        with self.db.read() as cur:
            for start in range(0, len(wanted), KEYS_PER_QUERY):
                chunk = wanted[start : start + KEYS_PER_QUERY]
                marks = ", ".join("?" for _ in chunk)
                rows = cur.execute(
                    "SELECT DISTINCT t.pending_key FROM teaching_instances t "
                    "JOIN case_instances c ON c.tenant = t.tenant AND c.sop_uid = t.sop_uid "
                    f"WHERE t.pending_key IN ({marks})",
                    chunk,
                ).fetchall()
                found.update(str(row[0]) for row in rows)
        return found

    # -- the UID map ----------------------------------------------------------------------

    def _record_uids(self, cur: Cursor, tenant: str, pairs: Iterable[tuple[str, str]]) -> None:
        for original, replacement in pairs:
            cur.execute(
                "INSERT INTO uid_map (tenant, original, replacement) VALUES (?, ?, ?) "
                "ON CONFLICT (tenant, original) DO NOTHING",
                (tenant, original, replacement),
            )

    def teaching_uid(self, tenant: str, original: str) -> str | None:
        with self.db.read() as cur:
            row = cur.execute(
                "SELECT replacement FROM uid_map WHERE tenant = ? AND original = ?",
                (tenant, original),
            ).fetchone()
        return None if row is None else str(row[0])

    def original_uid(self, tenant: str, replacement: str) -> str | None:
        with self.db.read() as cur:
            row = cur.execute(
                "SELECT original FROM uid_map WHERE tenant = ? AND replacement = ?",
                (tenant, replacement),
            ).fetchone()
        return None if row is None else str(row[0])


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _instance(row: Sequence[Any]) -> TeachingInstance:
    return TeachingInstance(
        sop_uid=row[0],
        study_uid=row[1],
        series_uid=row[2],
        sop_class_uid=row[3],
        burned_in=bool(row[4]),
        reasons=tuple(json.loads(row[5])),
        review=PixelReview(row[6]),
        pending_key=row[7],
    )


def _case(row: Sequence[Any], instances: list[TeachingInstance]) -> Case:
    return Case(
        id=row[1],
        title=row[2],
        history=row[3],
        findings=row[4],
        diagnosis=row[5],
        differential=json.loads(row[6]),
        discussion=row[7],
        key_images=[KeyImage.model_validate(k) for k in json.loads(row[8])],
        tags=Tags.model_validate_json(row[9]),
        status=CaseStatus(row[10]),
        author=row[11],
        note=row[12],
        origin=row[13],
        teaching_study_instance_uid=row[14],
        created_at=from_text(row[15]),
        updated_at=from_text(row[16]),
        published_at=from_text(row[17]) if row[17] else None,
        instances=[
            InstanceState(
                series_instance_uid=i.series_uid,
                sop_instance_uid=i.sop_uid,
                sop_class_uid=i.sop_class_uid,
                burned_in=i.burned_in,
                reasons=list(i.reasons),
                review=i.review,
            )
            for i in instances
        ],
        pending_reviews=sum(i.review is PixelReview.PENDING for i in instances),
    )
