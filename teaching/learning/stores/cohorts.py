"""Groups of learners (cohorts) and the assignments given to them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from storage.database.base import Cursor, Database
from storage.database.ids import new_id
from storage.database.timestamps import from_text, to_text
from teaching.learning.models import Assignment, AssignmentIn, Group, GroupIn


@dataclass(frozen=True)
class CohortStore:
    db: Database

    # -- groups ---------------------------------------------------------------------------

    def create_group(self, tenant: str, body: GroupIn, by: str, at: datetime) -> str:
        group_id = new_id()
        with self.db.transaction() as cur:
            (pk,) = cur.execute(
                "INSERT INTO learner_groups (tenant, group_id, name, created_by, created_at) "
                "VALUES (?, ?, ?, ?, ?) RETURNING id",
                (tenant, group_id, body.name, by, to_text(at)),
            ).fetchone()
            _write_members(cur, int(pk), body.members)
        return group_id

    def replace_group(self, tenant: str, group_id: str, body: GroupIn) -> bool:
        with self.db.transaction() as cur:
            row = cur.execute(
                "UPDATE learner_groups SET name = ? WHERE tenant = ? AND group_id = ? RETURNING id",
                (body.name, tenant, group_id),
            ).fetchone()
            if row is None:
                return False
            _write_members(cur, int(row[0]), body.members)
        return True

    def delete_group(self, tenant: str, group_id: str) -> bool:
        with self.db.transaction() as cur:
            row = cur.execute(
                "DELETE FROM learner_groups WHERE tenant = ? AND group_id = ? RETURNING id",
                (tenant, group_id),
            ).fetchone()
        return row is not None

    def groups(
        self, tenant: str, *, group_id: str | None = None, member: str | None = None
    ) -> list[Group]:
        """The institution's groups, or the one named, or those ``member`` belongs to."""
        sql = (
            "SELECT g.id, g.group_id, g.name, g.created_by, g.created_at FROM learner_groups g "
            "WHERE g.tenant = ?"
        )
        params: list[Any] = [tenant]
        if group_id is not None:
            sql += " AND g.group_id = ?"
            params.append(group_id)
        if member is not None:
            sql += " AND g.id IN (SELECT group_pk FROM group_members WHERE username = ?)"
            params.append(member)
        with self.db.read() as cur:
            rows = cur.execute(sql + " ORDER BY g.name, g.id", params).fetchall()
            members: dict[int, list[str]] = {int(row[0]): [] for row in rows}
            if members:
                marks = ", ".join("?" for _ in members)
                for pk, username in cur.execute(
                    f"SELECT group_pk, username FROM group_members WHERE group_pk IN ({marks}) "
                    "ORDER BY username",
                    list(members),
                ).fetchall():
                    members[int(pk)].append(str(username))
        return [
            Group(
                id=row[1],
                name=row[2],
                members=members[int(row[0])],
                created_by=row[3],
                created_at=from_text(row[4]),
            )
            for row in rows
        ]

    # -- assignments ----------------------------------------------------------------------

    def add_assignment(
        self, tenant: str, group_id: str, body: AssignmentIn, by: str, at: datetime
    ) -> str | None:
        assignment_id = new_id()
        with self.db.transaction() as cur:
            row = cur.execute(
                "SELECT id FROM learner_groups WHERE tenant = ? AND group_id = ?",
                (tenant, group_id),
            ).fetchone()
            if row is None:
                return None
            cur.execute(
                "INSERT INTO assignments (tenant, assignment_id, group_pk, title, case_ids, "
                "due_at, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    tenant,
                    assignment_id,
                    int(row[0]),
                    body.title,
                    json.dumps(body.case_ids),
                    to_text(body.due_at) if body.due_at else None,
                    by,
                    to_text(at),
                ),
            )
        return assignment_id

    def assignments(
        self,
        tenant: str,
        *,
        group_id: str | None = None,
        assignment_id: str | None = None,
        member: str | None = None,
    ) -> list[Assignment]:
        sql = (
            "SELECT a.assignment_id, g.group_id, a.title, a.case_ids, a.due_at, a.created_by, "
            "a.created_at FROM assignments a JOIN learner_groups g ON g.id = a.group_pk "
            "WHERE a.tenant = ?"
        )
        params: list[Any] = [tenant]
        if group_id is not None:
            sql += " AND g.group_id = ?"
            params.append(group_id)
        if assignment_id is not None:
            sql += " AND a.assignment_id = ?"
            params.append(assignment_id)
        if member is not None:
            sql += " AND a.group_pk IN (SELECT group_pk FROM group_members WHERE username = ?)"
            params.append(member)
        with self.db.read() as cur:
            rows = cur.execute(sql + " ORDER BY a.created_at, a.id", params).fetchall()
        return [
            Assignment(
                id=row[0],
                group_id=row[1],
                title=row[2],
                case_ids=json.loads(row[3]),
                due_at=from_text(row[4]) if row[4] else None,
                created_by=row[5],
                created_at=from_text(row[6]),
            )
            for row in rows
        ]

    def delete_assignment(self, tenant: str, assignment_id: str) -> bool:
        with self.db.transaction() as cur:
            row = cur.execute(
                "DELETE FROM assignments WHERE tenant = ? AND assignment_id = ? RETURNING id",
                (tenant, assignment_id),
            ).fetchone()
        return row is not None


def _write_members(cur: Cursor, pk: int, members: Sequence[str]) -> None:
    cur.execute("DELETE FROM group_members WHERE group_pk = ?", (pk,))
    for username in sorted(set(members)):
        cur.execute("INSERT INTO group_members (group_pk, username) VALUES (?, ?)", (pk, username))
