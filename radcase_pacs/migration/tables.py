"""Every table of a deployment and how ``migrate`` carries it, in one registry.

A deployment keeps its tables in two databases: the clinical index's (the clinical index,
users, institutions, API keys, login sessions, the auth signing key, the audit log and the
deployment's mode) and the teaching collection's (its index, the teaching cases with their
instances and UID map, the de-identification key, questions, program settings, groups,
assignments, cards, the review log and quiz sessions). Each table is either

* copied row by row (:data:`COPIED`), keeping every value, its ``id`` included, so that
  references between rows (``case_pk``, ``group_pk``, ``session_pk``, ``review_pk``), the
  audit log's order and the public identifiers all stay as they were;
* an archive index table (:data:`BY_ARCHIVE`), filled by ingesting each instance again from
  its stored bytes (:mod:`radcase_pacs.migration.archives`), so the target's rows are
  computed by the same code from the same bytes;
* or not copied, for the reason given (:data:`NOT_COPIED`).

A test compares this registry with the tables a freshly opened deployment has: a table added
by a later migration fails it until it is placed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

CLINICAL = "clinical"
TEACHING = "teaching"
DATABASES = (CLINICAL, TEACHING)
VERSION_SUFFIX = "schema_version"
"""Each component's migrations table (``schema_version``, ``auth_schema_version``...): each
side's schema is brought up to date by the code that opens it, never copied."""


class Kind(StrEnum):
    ROWS = "rows"
    """Rows are added, changed and removed: the target's table is made equal to the
    source's (missing rows inserted, changed ones updated, extra ones removed)."""
    LOG = "log"
    """Rows are only ever appended, numbered by ``id``: the missing ones are inserted in id
    order and nothing in the target is ever changed or removed (the audit log's table refuses
    both); a row of the target that differs from the source's is a problem to report."""


@dataclass(frozen=True)
class CopiedTable:
    name: str
    key: tuple[str, ...]
    """The primary key: rows are matched, paged and ordered by it."""
    kind: Kind = Kind.ROWS
    parents: tuple[tuple[str, str], ...] = ()
    """(column, table): the column holds the ``id`` of a row of that table, which must be in
    the target first (a row whose parent appeared in the source after the parent table was
    copied waits for the next pass)."""
    numbered: bool = False
    """``id`` is the database's counter (``{id}``): after copying, the target's counter is
    moved past the copied ids, so that rows the target numbers itself never collide."""


COPIED: dict[str, tuple[CopiedTable, ...]] = {
    CLINICAL: (
        CopiedTable("auth_secret", ("id",)),
        CopiedTable("institutions", ("tenant",)),
        CopiedTable("users", ("id",), numbered=True),
        CopiedTable("user_sessions", ("sid",)),
        CopiedTable("api_keys", ("key_id",)),
        CopiedTable("audit_log", ("id",), Kind.LOG, numbered=True),
    ),
    TEACHING: (
        CopiedTable("teaching_secret", ("id",)),
        CopiedTable("cases", ("id",), numbered=True),
        CopiedTable("case_tags", ("case_pk", "kind", "value"), parents=(("case_pk", "cases"),)),
        CopiedTable("teaching_instances", ("tenant", "sop_uid")),
        CopiedTable("case_instances", ("case_pk", "sop_uid"), parents=(("case_pk", "cases"),)),
        CopiedTable("uid_map", ("tenant", "original")),
        CopiedTable("questions", ("id",), numbered=True),
        CopiedTable("programs", ("tenant",)),
        CopiedTable("learner_groups", ("id",), numbered=True),
        CopiedTable(
            "group_members", ("group_pk", "username"), parents=(("group_pk", "learner_groups"),)
        ),
        CopiedTable(
            "assignments", ("id",), numbered=True, parents=(("group_pk", "learner_groups"),)
        ),
        CopiedTable("cards", ("tenant", "learner", "question_id")),
        CopiedTable("reviews", ("id",), Kind.LOG, numbered=True),
        CopiedTable("quiz_sessions", ("id",), numbered=True),
        CopiedTable(
            "session_items", ("session_pk", "position"), parents=(("session_pk", "quiz_sessions"),)
        ),
    ),
}
"""Per database, in an order where every parent comes before its children (inserts go in
this order, removals in the reverse one)."""

BY_ARCHIVE: dict[str, frozenset[str]] = {
    CLINICAL: frozenset({"studies", "series", "instances"}),
    TEACHING: frozenset({"studies", "series", "instances"}),
}
"""The archive index tables: each instance is read from the source archive and ingested into
the target's (the clinical archive, the teaching collection), and verified by its bytes."""

NOT_COPIED: dict[str, dict[str, str]] = {
    CLINICAL: {
        "archive_generation": "a counter every index commit raises, only ever compared with "
        "itself to key cached searches; the target's own ingests raise its own",
        "deployment_mode": "the deployment's own state (read-only, took over from another): "
        "the switch sets it on each side",
    },
    TEACHING: {
        "archive_generation": "as in the clinical database",
    },
}


def copied(database: str) -> tuple[CopiedTable, ...]:
    return COPIED[database]


def known(database: str, table: str) -> bool:
    """Whether ``table`` of ``database`` has its place in this registry."""
    return (
        table.endswith(VERSION_SUFFIX)
        or table in BY_ARCHIVE[database]
        or table in NOT_COPIED[database]
        or any(spec.name == table for spec in COPIED[database])
    )
