"""The learning tables, as versioned migrations (append-only), kept in the teaching database
beside the cases they refer to by ``case_id``.

``cards`` holds one FSRS card per learner per question; ``reviews`` is the review log, every
answer with its rating, duration and the card's state before and after, so that FSRS
parameters can later be optimised per learner from it. ``{id}`` and ``{bigint}`` stand for the
dialect's types. Times are :mod:`storage.database.timestamps` text: due cards, today's counts
and xAPI's ``since`` compare them as text.

:class:`LearningTables` opens the database and applies these migrations; the stores of
:mod:`teaching.learning.stores` work over the database it opened.
"""

from __future__ import annotations

from storage.database.tables import Tables
from storage.database.timestamps import rewrite_older_forms

VERSION_TABLE = "learning_schema_version"
TIME_COLUMNS = (
    ("questions", "created_at"),
    ("questions", "updated_at"),
    ("programs", "updated_at"),
    ("learner_groups", "created_at"),
    ("assignments", "due_at"),
    ("assignments", "created_at"),
    ("cards", "due"),
    ("cards", "introduced_at"),
    ("reviews", "reviewed_at"),
    ("quiz_sessions", "created_at"),
    ("session_items", "presented_at"),
    ("session_items", "answered_at"),
)

MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE questions (
            id {id},
            tenant TEXT NOT NULL,
            question_id TEXT NOT NULL UNIQUE,
            case_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            kind TEXT NOT NULL,
            prompt TEXT NOT NULL,
            answer_key TEXT NOT NULL,
            feedback TEXT NOT NULL,
            hint TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        "CREATE INDEX questions_case ON questions (tenant, case_id, position)",
        """CREATE TABLE programs (
            tenant TEXT PRIMARY KEY,
            settings TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        """CREATE TABLE learner_groups (
            id {id},
            tenant TEXT NOT NULL,
            group_id TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            created_by TEXT NOT NULL,
            created_at TEXT NOT NULL
        )""",
        """CREATE TABLE group_members (
            group_pk {bigint} NOT NULL REFERENCES learner_groups (id) ON DELETE CASCADE,
            username TEXT NOT NULL,
            PRIMARY KEY (group_pk, username)
        )""",
        "CREATE INDEX group_members_user ON group_members (username)",
        """CREATE TABLE assignments (
            id {id},
            tenant TEXT NOT NULL,
            assignment_id TEXT NOT NULL UNIQUE,
            group_pk {bigint} NOT NULL REFERENCES learner_groups (id) ON DELETE CASCADE,
            title TEXT NOT NULL,
            case_ids TEXT NOT NULL,
            due_at TEXT,
            created_by TEXT NOT NULL,
            created_at TEXT NOT NULL
        )""",
        """CREATE TABLE cards (
            tenant TEXT NOT NULL,
            learner TEXT NOT NULL,
            question_id TEXT NOT NULL,
            case_id TEXT NOT NULL,
            card TEXT NOT NULL,
            due TEXT NOT NULL,
            reps INTEGER NOT NULL,
            introduced_at TEXT NOT NULL,
            PRIMARY KEY (tenant, learner, question_id)
        )""",
        "CREATE INDEX cards_due ON cards (tenant, learner, due)",
        """CREATE TABLE reviews (
            id {id},
            tenant TEXT NOT NULL,
            learner TEXT NOT NULL,
            question_id TEXT NOT NULL,
            case_id TEXT NOT NULL,
            session_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            reviewed_at TEXT NOT NULL,
            correct INTEGER NOT NULL,
            rating INTEGER NOT NULL,
            duration_ms {bigint},
            hinted INTEGER NOT NULL,
            answer TEXT NOT NULL,
            state_before TEXT,
            state_after TEXT NOT NULL
        )""",
        "CREATE INDEX reviews_learner ON reviews (tenant, learner, reviewed_at)",
        "CREATE INDEX reviews_time ON reviews (tenant, reviewed_at)",
        "CREATE INDEX reviews_case ON reviews (tenant, case_id)",
        """CREATE TABLE quiz_sessions (
            id {id},
            tenant TEXT NOT NULL,
            session_id TEXT NOT NULL UNIQUE,
            learner TEXT NOT NULL,
            source TEXT NOT NULL,
            detail TEXT NOT NULL,
            created_at TEXT NOT NULL
        )""",
        "CREATE INDEX quiz_sessions_learner ON quiz_sessions (tenant, learner, created_at)",
        """CREATE TABLE session_items (
            session_pk {bigint} NOT NULL REFERENCES quiz_sessions (id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            question_id TEXT NOT NULL,
            case_id TEXT NOT NULL,
            presented_at TEXT,
            hinted INTEGER NOT NULL,
            answered_at TEXT,
            review_pk {bigint},
            PRIMARY KEY (session_pk, position)
        )""",
    ],
    # 2: times written with "Z" before one form was used in every database.
    rewrite_older_forms(TIME_COLUMNS),
]


class LearningTables(Tables):
    """The learning tables in the teaching database, migrated under their own version."""

    version_table = VERSION_TABLE
    migrations = MIGRATIONS
