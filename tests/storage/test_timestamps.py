"""The one text form of times in the databases: fixed width, so text order is time order on
SQLite and PostgreSQL; the older forms still read, and a migration rewrites them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from storage.database.base import Database
from storage.database.timestamps import from_text, now_text, rewrite_older_forms, to_text

MOMENTS = [
    datetime(999, 1, 1, tzinfo=UTC),
    datetime(2026, 1, 5, 9, 0, tzinfo=UTC),
    datetime(2026, 1, 5, 9, 0, 0, 1, tzinfo=UTC),
    datetime(2026, 1, 5, 9, 0, 0, 999999, tzinfo=UTC),
    datetime(2026, 1, 5, 9, 0, 1, tzinfo=UTC),
    datetime(2026, 1, 5, 10, 30, tzinfo=timezone(timedelta(hours=2))),  # 08:30 UTC
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
]


def test_every_time_is_written_utc_with_microseconds_in_one_width() -> None:
    assert to_text(datetime(2026, 1, 5, 9, 0, tzinfo=UTC)) == "2026-01-05T09:00:00.000000+00:00"
    assert to_text(datetime(2026, 1, 5, 11, 0, 0, 5, tzinfo=timezone(timedelta(hours=2)))) == (
        "2026-01-05T09:00:00.000005+00:00"
    )
    assert to_text(datetime(2026, 1, 5, 9, 0)) == "2026-01-05T09:00:00.000000+00:00"  # naive: UTC
    assert {len(to_text(m)) for m in MOMENTS} == {32}
    assert len(now_text()) == 32 and from_text(now_text()).tzinfo is UTC


def test_text_order_is_time_order() -> None:
    texts = [to_text(m) for m in MOMENTS]
    assert sorted(texts) == [to_text(m) for m in sorted(MOMENTS)]


def test_the_one_form_and_every_older_form_read_back_as_the_same_utc_moment() -> None:
    moment = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    for text in (
        "2026-01-05T09:00:00.000000+00:00",  # the one form
        "2026-01-05T09:00:00+00:00",  # isoformat() at a whole second
        "2026-01-05T09:00:00.000000Z",  # strftime with Z
        "2026-01-05T10:00:00+01:00",  # another offset
        "2026-01-05T09:00:00",  # no offset: UTC
    ):
        read = from_text(text)
        assert read == moment and read.utcoffset() == timedelta(0), text
    assert from_text(to_text(MOMENTS[3])) == MOMENTS[3]


def test_the_migration_rewrites_older_forms_and_leaves_the_rest(database: Database) -> None:
    database.migrate("times_version", [["CREATE TABLE times (id {id}, at TEXT, note TEXT)"]])
    stored = {
        "2026-01-05T09:00:01+00:00": "2026-01-05T09:00:01.000000+00:00",
        "2026-01-05T09:00:00.500000+00:00": "2026-01-05T09:00:00.500000+00:00",
        "2026-01-05T09:00:00.250000Z": "2026-01-05T09:00:00.250000+00:00",
        "2026-01-05T09:00:00.000000Z": "2026-01-05T09:00:00.000000+00:00",
        "2026-01-05T10:00:00+01:00": "2026-01-05T10:00:00+01:00",  # never written: kept
    }
    with database.transaction() as cur:
        for old in stored:
            cur.execute("INSERT INTO times (at, note) VALUES (?, ?)", (old, old))
        cur.execute("INSERT INTO times (at, note) VALUES (NULL, 'none')")
    statements = rewrite_older_forms([("times", "at")])
    database.migrate("times_version", [["SELECT 1"], statements])

    with database.read() as cur:
        rows = dict(cur.execute("SELECT note, at FROM times").fetchall())
        in_order = [
            r[0]
            for r in cur.execute(
                "SELECT at FROM times WHERE at LIKE '%+00:00' ORDER BY at"
            ).fetchall()
        ]
    assert rows == {**stored, "none": None}
    assert in_order == sorted(in_order, key=from_text)
    assert in_order[0] == "2026-01-05T09:00:00.000000+00:00"
    assert in_order[-1] == "2026-01-05T09:00:01.000000+00:00"


def test_an_older_form_at_the_same_moment_compares_unequal_until_rewritten(
    database: Database,
) -> None:
    """Why the migration exists: "at >= ?" with the bound in the one form misses a row
    stored at that very moment in the older form."""
    database.migrate("times_version", [["CREATE TABLE times (id {id}, at TEXT)"]])
    bound = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    with database.transaction() as cur:
        cur.execute("INSERT INTO times (at) VALUES (?)", (bound.isoformat(),))

    def at_or_after() -> int:
        with database.read() as cur:
            query = "SELECT COUNT(*) FROM times WHERE at >= ?"
            return int(cur.execute(query, (to_text(bound),)).fetchone()[0])

    assert at_or_after() == 0
    database.migrate("times_version", [["SELECT 1"], rewrite_older_forms([("times", "at")])])
    assert at_or_after() == 1


def test_the_migration_names_only_sql_identifiers() -> None:
    with pytest.raises(ValueError, match="table name"):
        rewrite_older_forms([("times; DROP TABLE x", "at")])
