"""A department's long history written straight into its tables (many thousands of audit
entries, quiz sessions, answers and cards), far faster than through the API: what a
migration must carry after a year of use, for the resume test and the benchmark."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from storage.database.base import Database
from storage.database.timestamps import to_text

START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
ROWS_PER_STATEMENT = 500
ITEMS_PER_SESSION = 20
STATE = json.dumps({"stability": 3.2, "difficulty": 5.1, "state": 2, "step": None})


def insert(
    db: Database, table: str, columns: Sequence[str], rows: Iterator[tuple[Any, ...]]
) -> int:
    one = "(" + ", ".join("?" for _ in columns) + ")"
    batch: list[tuple[Any, ...]] = []
    count = 0

    def flush() -> None:
        with db.transaction() as cur:
            cur.execute(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                + ", ".join(one for _ in batch),
                [value for row in batch for value in row],
            )

    for row in rows:
        batch.append(row)
        count += 1
        if len(batch) == ROWS_PER_STATEMENT:
            flush()
            batch = []
    if batch:
        flush()
    return count


def add_audit_entries(db: Database, count: int, tenant: str = "default") -> int:
    """``count`` clinical reads, one a second from :data:`START`."""
    columns = ("at", "tenant", "actor", "role", "action", "channel", "route", "detail", "source")
    rows = (
        (
            to_text(START + timedelta(seconds=n)),
            tenant,
            f"reader{n % 7}",
            "educator",
            "clinical.read",
            "http",
            "GET /dicomweb/studies/{study}/metadata",
            f"read {n}",
            "10.0.0.7",
        )
        for n in range(count)
    )
    return insert(db, "audit_log", columns, rows)


def add_answers(
    db: Database,
    reviews: int,
    *,
    learners: int,
    questions: Sequence[tuple[str, str]],
    tenant: str = "default",
) -> None:
    """``reviews`` answers by ``learners`` learners to ``questions`` ((question id, case id)),
    in quiz sessions of :data:`ITEMS_PER_SESSION` items each answered, and every learner's
    card for each question."""
    names = [f"learner{n:03d}" for n in range(learners)]
    sessions = (reviews + ITEMS_PER_SESSION - 1) // ITEMS_PER_SESSION
    session_ids = [secrets.token_hex(12) for _ in range(sessions)]
    insert(
        db,
        "quiz_sessions",
        ("id", "tenant", "session_id", "learner", "source", "detail", "created_at"),
        (
            (
                s + 1,
                tenant,
                sid,
                names[s % learners],
                "due",
                "{}",
                to_text(START + timedelta(minutes=s)),
            )
            for s, sid in enumerate(session_ids)
        ),
    )

    def answer(n: int) -> tuple[Any, ...]:
        s = n // ITEMS_PER_SESSION
        question, case = questions[n % len(questions)]
        return (
            n + 1,
            tenant,
            names[s % learners],
            question,
            case,
            session_ids[s],
            "free_text",
            to_text(START + timedelta(minutes=s, seconds=n % ITEMS_PER_SESSION)),
            n % 3 != 0,
            3 if n % 3 else 1,
            4000 + n % 9000,
            0,
            json.dumps({"kind": "free_text", "text": f"answer {n}"}),
            None if n < learners * len(questions) else STATE,
            STATE,
        )

    insert(
        db,
        "reviews",
        (
            "id",
            "tenant",
            "learner",
            "question_id",
            "case_id",
            "session_id",
            "kind",
            "reviewed_at",
            "correct",
            "rating",
            "duration_ms",
            "hinted",
            "answer",
            "state_before",
            "state_after",
        ),
        (answer(n) for n in range(reviews)),
    )
    insert(
        db,
        "session_items",
        (
            "session_pk",
            "position",
            "question_id",
            "case_id",
            "presented_at",
            "hinted",
            "answered_at",
            "review_pk",
        ),
        (
            (
                n // ITEMS_PER_SESSION + 1,
                n % ITEMS_PER_SESSION + 1,
                *questions[n % len(questions)],
                to_text(START + timedelta(minutes=n // ITEMS_PER_SESSION)),
                0,
                to_text(START + timedelta(minutes=n // ITEMS_PER_SESSION, seconds=20)),
                n + 1,
            )
            for n in range(reviews)
        ),
    )
    insert(
        db,
        "cards",
        ("tenant", "learner", "question_id", "case_id", "card", "due", "reps", "introduced_at"),
        (
            (
                tenant,
                name,
                question,
                case,
                STATE,
                to_text(START + timedelta(days=3)),
                3,
                to_text(START),
            )
            for name in names
            for question, case in questions
        ),
    )
    for table in ("quiz_sessions", "reviews"):
        _move_counter(db, table)


def _move_counter(db: Database, table: str) -> None:
    """Rows were given their ids: the database's counter goes past them, as the
    application's own inserts need."""
    if db.dialect == "postgresql":
        with db.transaction() as cur:
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence(?, 'id'), MAX(id)) FROM {table}", (table,)
            )
