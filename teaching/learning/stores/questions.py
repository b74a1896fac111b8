"""Questions of the cases, and each institution's program settings."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from storage.database.base import Database
from storage.database.ids import new_id
from storage.database.timestamps import from_text, to_text
from teaching.learning.models import ProgramSettings
from teaching.learning.questions import Question, QuestionIn

QUESTION_COLUMNS = (
    "question_id, case_id, position, prompt, answer_key, feedback, hint, created_at, updated_at"
)


@dataclass(frozen=True)
class QuestionStore:
    db: Database

    # -- questions ------------------------------------------------------------------------

    def add_question(self, tenant: str, case_id: str, body: QuestionIn, at: datetime) -> str:
        question_id = new_id()
        with self.db.transaction() as cur:
            position = body.position
            if position is None:
                row = cur.execute(
                    "SELECT MAX(position) FROM questions WHERE tenant = ? AND case_id = ?",
                    (tenant, case_id),
                ).fetchone()
                position = 0 if row[0] is None else int(row[0]) + 1
            cur.execute(
                "INSERT INTO questions (tenant, question_id, case_id, position, kind, prompt, "
                "answer_key, feedback, hint, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    tenant,
                    question_id,
                    case_id,
                    position,
                    body.key.kind,
                    body.prompt,
                    body.key.model_dump_json(),
                    body.feedback,
                    body.hint,
                    to_text(at),
                    to_text(at),
                ),
            )
        return question_id

    def replace_question(
        self, tenant: str, case_id: str, question_id: str, body: QuestionIn, at: datetime
    ) -> bool:
        with self.db.transaction() as cur:
            row = cur.execute(
                "UPDATE questions SET kind = ?, prompt = ?, answer_key = ?, feedback = ?, "
                "hint = ?, position = COALESCE(?, position), updated_at = ? "
                "WHERE tenant = ? AND case_id = ? AND question_id = ? RETURNING question_id",
                (
                    body.key.kind,
                    body.prompt,
                    body.key.model_dump_json(),
                    body.feedback,
                    body.hint,
                    body.position,
                    to_text(at),
                    tenant,
                    case_id,
                    question_id,
                ),
            ).fetchone()
        return row is not None

    def delete_question(self, tenant: str, case_id: str, question_id: str) -> bool:
        with self.db.transaction() as cur:
            row = cur.execute(
                "DELETE FROM questions WHERE tenant = ? AND case_id = ? AND question_id = ? "
                "RETURNING question_id",
                (tenant, case_id, question_id),
            ).fetchone()
        return row is not None

    def delete_case_questions(self, tenant: str, case_id: str) -> None:
        """The questions of a deleted case; cards and the review log stay (history)."""
        with self.db.transaction() as cur:
            cur.execute("DELETE FROM questions WHERE tenant = ? AND case_id = ?", (tenant, case_id))

    def question(self, tenant: str, question_id: str) -> Question | None:
        with self.db.read() as cur:
            row = cur.execute(
                f"SELECT {QUESTION_COLUMNS} FROM questions WHERE tenant = ? AND question_id = ?",
                (tenant, question_id),
            ).fetchone()
        return None if row is None else _question(row)

    def questions(self, tenant: str, case_ids: Sequence[str] | None = None) -> list[Question]:
        """The questions of the given cases (of every case when None), by case and position."""
        sql = f"SELECT {QUESTION_COLUMNS} FROM questions WHERE tenant = ?"
        params: list[Any] = [tenant]
        if case_ids is not None:
            if not case_ids:
                return []
            sql += f" AND case_id IN ({', '.join('?' for _ in case_ids)})"
            params += list(case_ids)
        with self.db.read() as cur:
            rows = cur.execute(sql + " ORDER BY case_id, position, id", params).fetchall()
        return [_question(row) for row in rows]

    # -- program settings -----------------------------------------------------------------

    def program(self, tenant: str) -> ProgramSettings:
        with self.db.read() as cur:
            row = cur.execute(
                "SELECT settings FROM programs WHERE tenant = ?", (tenant,)
            ).fetchone()
        return ProgramSettings() if row is None else ProgramSettings.model_validate_json(row[0])

    def set_program(self, tenant: str, settings: ProgramSettings, at: datetime) -> None:
        with self.db.transaction() as cur:
            cur.execute(
                "INSERT INTO programs (tenant, settings, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (tenant) DO UPDATE SET settings = excluded.settings, "
                "updated_at = excluded.updated_at",
                (tenant, settings.model_dump_json(), to_text(at)),
            )


def _question(row: Sequence[Any]) -> Question:
    return Question.model_validate(
        {
            "id": row[0],
            "case_id": row[1],
            "position": row[2],
            "prompt": row[3],
            "key": json.loads(row[4]),
            "feedback": row[5],
            "hint": row[6],
            "created_at": from_text(row[7]),
            "updated_at": from_text(row[8]),
        }
    )
