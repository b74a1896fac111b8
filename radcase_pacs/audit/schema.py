"""The audit log's table, as versioned migrations of its own (``audit_schema_version``), so it
migrates independently of the index whose database it shares.

Append-only is enforced by the database, not by the code that happens to write to it: a
trigger refuses every UPDATE and DELETE (and, on PostgreSQL, TRUNCATE), so neither a bug nor
a hand-typed statement through the application's connection can rewrite history. (Whoever
owns the schema can still drop the trigger or the table; keeping the log from its own
database owner needs separate roles or shipping entries elsewhere.)

``at`` is ISO-8601 UTC text with microseconds, one fixed format, so it sorts and compares as
text the same way on both dialects.
"""

from __future__ import annotations

VERSION_TABLE = "audit_schema_version"

MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE audit_log (
            id {id},
            at TEXT NOT NULL,
            tenant TEXT NOT NULL,
            actor TEXT NOT NULL,
            role TEXT,
            action TEXT NOT NULL,
            channel TEXT NOT NULL,
            route TEXT NOT NULL,
            study_uid TEXT,
            detail TEXT NOT NULL,
            source TEXT NOT NULL
        )""",
        "CREATE INDEX audit_log_tenant_at ON audit_log (tenant, at)",
        "CREATE INDEX audit_log_tenant_study ON audit_log (tenant, study_uid)",
    ],
]

_REFUSED = "audit_log is append-only"

DIALECT_MIGRATIONS: dict[str, dict[int, list[str]]] = {
    "sqlite": {
        1: [
            f"""CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
            BEGIN SELECT RAISE(ABORT, '{_REFUSED}: UPDATE refused'); END""",
            f"""CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
            BEGIN SELECT RAISE(ABORT, '{_REFUSED}: DELETE refused'); END""",
            # INSERT OR REPLACE deletes the row it collides with without firing DELETE
            # triggers (unless recursive_triggers is on): refuse reusing an existing id.
            f"""CREATE TRIGGER audit_log_no_replace BEFORE INSERT ON audit_log
            WHEN EXISTS (SELECT 1 FROM audit_log WHERE id = NEW.id)
            BEGIN SELECT RAISE(ABORT, '{_REFUSED}: REPLACE refused'); END""",
        ],
    },
    "postgresql": {
        1: [
            # Created in the schema the migration runs in (the search_path), so each
            # installation's log has its own function and dropping the schema drops both.
            f"""CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '{_REFUSED}: % refused', TG_OP;
            END
            $$""",
            # Statement-level, so an UPDATE or DELETE matching no row is refused as well,
            # and TRUNCATE (which fires no row trigger) too.
            """CREATE TRIGGER audit_log_append_only
            BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
            FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()""",
        ],
    },
}
