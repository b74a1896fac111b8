"""The teaching database's tables, as versioned migrations (append-only, like the index's).

They live beside the teaching collection's index, never in the clinical one. ``uid_map`` links
clinical UIDs to teaching UIDs: it is what lets a follow-up series join the teaching study it
belongs to, and it is the one table here that points back at patients, so nothing but the case
service reads it. ``{id}``, ``{bigint}`` stand for the dialect's types. Times are
:mod:`storage.database.timestamps` text (cases are listed by ``updated_at``).
"""

from __future__ import annotations

from storage.database.timestamps import rewrite_older_forms

VERSION_TABLE = "teaching_schema_version"
TIME_COLUMNS = (("cases", "created_at"), ("cases", "updated_at"), ("cases", "published_at"))

MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE teaching_secret (
            id INTEGER PRIMARY KEY,
            secret TEXT NOT NULL
        )""",
        """CREATE TABLE cases (
            id {id},
            tenant TEXT NOT NULL,
            case_id TEXT NOT NULL UNIQUE,
            title TEXT NOT NULL,
            history TEXT NOT NULL,
            findings TEXT NOT NULL,
            diagnosis TEXT NOT NULL,
            differential TEXT NOT NULL,
            discussion TEXT NOT NULL,
            key_images TEXT NOT NULL,
            tags TEXT NOT NULL,
            status TEXT NOT NULL,
            author TEXT NOT NULL,
            note TEXT NOT NULL,
            origin TEXT NOT NULL,
            source_study_uid TEXT NOT NULL,
            teaching_study_uid TEXT NOT NULL,
            search_text TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            published_at TEXT
        )""",
        "CREATE INDEX cases_tenant_updated ON cases (tenant, updated_at)",
        "CREATE INDEX cases_teaching_study ON cases (tenant, teaching_study_uid)",
        """CREATE TABLE case_tags (
            case_pk {bigint} NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (case_pk, kind, value)
        )""",
        "CREATE INDEX case_tags_value ON case_tags (kind, value)",
        """CREATE TABLE teaching_instances (
            tenant TEXT NOT NULL,
            sop_uid TEXT NOT NULL,
            study_uid TEXT NOT NULL,
            series_uid TEXT NOT NULL,
            sop_class_uid TEXT NOT NULL,
            burned_in INTEGER NOT NULL,
            reasons TEXT NOT NULL,
            review TEXT NOT NULL,
            pending_key TEXT,
            PRIMARY KEY (tenant, sop_uid)
        )""",
        """CREATE TABLE case_instances (
            case_pk {bigint} NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
            tenant TEXT NOT NULL,
            sop_uid TEXT NOT NULL,
            PRIMARY KEY (case_pk, sop_uid)
        )""",
        "CREATE INDEX case_instances_sop ON case_instances (tenant, sop_uid)",
        """CREATE TABLE uid_map (
            tenant TEXT NOT NULL,
            original TEXT NOT NULL,
            replacement TEXT NOT NULL,
            PRIMARY KEY (tenant, original)
        )""",
        "CREATE INDEX uid_map_replacement ON uid_map (tenant, replacement)",
    ],
    # 2: times written before one form was used everywhere (no fraction at whole seconds).
    rewrite_older_forms(TIME_COLUMNS),
]
