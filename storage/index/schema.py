"""Versioned schema migrations, one list for every SQL dialect.

Each migration is a list of statements with ``{id}`` (auto-increment primary key), ``{blob}``
and ``{bigint}`` standing for the dialect's types. Migrations are append-only: a released
migration is never edited, a change is a new one.
"""

from __future__ import annotations

MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE studies (
            id {id},
            tenant TEXT NOT NULL,
            study_uid TEXT NOT NULL,
            patient_id TEXT,
            issuer_of_patient_id TEXT,
            patient_name_ci TEXT,
            patient_name_fuzzy TEXT,
            patient_birth_date TEXT,
            patient_sex TEXT,
            study_date TEXT,
            study_time TEXT,
            accession_number TEXT,
            referring_physician_name_ci TEXT,
            referring_physician_name_fuzzy TEXT,
            study_id TEXT,
            study_description TEXT,
            modalities TEXT NOT NULL DEFAULT '',
            sop_classes TEXT NOT NULL DEFAULT '',
            n_series INTEGER NOT NULL DEFAULT 0,
            n_instances INTEGER NOT NULL DEFAULT 0,
            version TEXT NOT NULL,
            doc {blob} NOT NULL,
            UNIQUE (tenant, study_uid)
        )""",
        "CREATE INDEX studies_patient_name ON studies (tenant, patient_name_ci)",
        "CREATE INDEX studies_patient_name_fuzzy ON studies (tenant, patient_name_fuzzy)",
        "CREATE INDEX studies_patient_id ON studies (tenant, patient_id)",
        "CREATE INDEX studies_study_date ON studies (tenant, study_date)",
        "CREATE INDEX studies_accession ON studies (tenant, accession_number)",
        """CREATE TABLE series (
            id {id},
            tenant TEXT NOT NULL,
            study_pk {bigint} NOT NULL REFERENCES studies (id),
            series_uid TEXT NOT NULL,
            modality TEXT,
            series_number INTEGER,
            series_description TEXT,
            body_part_examined TEXT,
            pps_start_date TEXT,
            pps_start_time TEXT,
            scheduled_procedure_step_id TEXT,
            requested_procedure_id TEXT,
            n_instances INTEGER NOT NULL DEFAULT 0,
            version TEXT NOT NULL,
            doc {blob} NOT NULL,
            UNIQUE (tenant, series_uid)
        )""",
        "CREATE INDEX series_study ON series (study_pk, modality)",
        "CREATE INDEX series_modality ON series (tenant, modality)",
        """CREATE TABLE instances (
            id {id},
            tenant TEXT NOT NULL,
            study_pk {bigint} NOT NULL REFERENCES studies (id),
            series_pk {bigint} NOT NULL REFERENCES series (id),
            sop_uid TEXT NOT NULL,
            sop_class_uid TEXT NOT NULL,
            instance_number INTEGER,
            transfer_syntax TEXT NOT NULL,
            blob_key TEXT NOT NULL,
            blob_size {bigint} NOT NULL,
            sha256 TEXT NOT NULL,
            sidecar_key TEXT,
            number_of_frames INTEGER NOT NULL,
            frames {blob},
            frames_source TEXT,
            frames_syntax TEXT,
            frames_problem TEXT,
            bulk {blob},
            doc {blob} NOT NULL,
            stored_at TEXT NOT NULL,
            UNIQUE (tenant, sop_uid)
        )""",
        "CREATE INDEX instances_series ON instances (series_pk, instance_number)",
        "CREATE INDEX instances_study ON instances (study_pk)",
        "CREATE INDEX instances_sop_class ON instances (tenant, sop_class_uid)",
    ],
    # Whether an instance's pixel data decodes, found at ingest, so that a retrieve asking
    # for another transfer syntax decides before its status line. Existing rows get NULL:
    # decided by their transfer syntax alone, as before.
    [
        "ALTER TABLE instances ADD COLUMN decode_problem TEXT",
    ],
    # The orphan sweep asks which listed blob keys any row names (Index.referenced_keys).
    [
        "CREATE INDEX instances_blob_key ON instances (blob_key)",
        "CREATE INDEX instances_sidecar_key ON instances (sidecar_key) "
        "WHERE sidecar_key IS NOT NULL",
    ],
    # One counter raised by every transaction that adds or removes instances: search results
    # are cached under its value (Index.generation), so that every process sharing the index
    # sees a store or a delete at once.
    [
        "CREATE TABLE archive_generation (id INTEGER PRIMARY KEY, generation {bigint} NOT NULL)",
        "INSERT INTO archive_generation (id, generation) VALUES (1, 0)",
    ],
]


def _collate_c(table: str, columns: tuple[str, ...]) -> str:
    altered = ", ".join(f'ALTER COLUMN {c} TYPE TEXT COLLATE "C"' for c in columns)
    return f"ALTER TABLE {table} {altered}"


# PostgreSQL-only statements, run right after the shared migration of the same number.
#
# Text columns compare byte-wise ("C" collation) whatever the database's default collation, so
# ranges, ORDER BY and pattern matching give SQLite's results (a locale collation would, for
# example, ignore the dots when ordering UIDs), and a plain B-tree serves prefix LIKE.
# Person names are matched by four patterns, three of which do not anchor at the start; a
# trigram GIN index (pg_trgm, shipped with PostgreSQL's contrib) serves them when the
# extension is installed or may be created, and is skipped otherwise.
POSTGRES_MIGRATIONS: dict[int, list[str]] = {
    1: [
        _collate_c(
            "studies",
            (
                "tenant",
                "study_uid",
                "patient_id",
                "issuer_of_patient_id",
                "patient_name_ci",
                "patient_name_fuzzy",
                "patient_birth_date",
                "patient_sex",
                "study_date",
                "study_time",
                "accession_number",
                "referring_physician_name_ci",
                "referring_physician_name_fuzzy",
                "study_id",
                "study_description",
                "modalities",
                "sop_classes",
                "version",
            ),
        ),
        _collate_c(
            "series",
            (
                "tenant",
                "series_uid",
                "modality",
                "series_description",
                "body_part_examined",
                "pps_start_date",
                "pps_start_time",
                "scheduled_procedure_step_id",
                "requested_procedure_id",
                "version",
            ),
        ),
        _collate_c(
            "instances",
            (
                "tenant",
                "sop_uid",
                "sop_class_uid",
                "transfer_syntax",
                "blob_key",
                "sha256",
                "sidecar_key",
                "frames_source",
                "frames_syntax",
                "frames_problem",
                "stored_at",
            ),
        ),
        "CREATE INDEX studies_referring_physician ON studies (tenant, referring_physician_name_ci)",
        "CREATE INDEX studies_study_id ON studies (tenant, study_id)",
        """DO $$
        DECLARE
            home TEXT;
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
                BEGIN
                    CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public;
                EXCEPTION WHEN OTHERS THEN
                    RETURN;
                END;
            END IF;
            SELECT n.nspname INTO home FROM pg_extension e
                JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm';
            EXECUTE format('CREATE INDEX studies_patient_name_trgm ON studies '
                'USING gin (patient_name_ci %1$I.gin_trgm_ops)', home);
            EXECUTE format('CREATE INDEX studies_patient_name_fuzzy_trgm ON studies '
                'USING gin (patient_name_fuzzy %1$I.gin_trgm_ops)', home);
        END
        $$""",
    ],
    2: [_collate_c("instances", ("decode_problem",))],
}
