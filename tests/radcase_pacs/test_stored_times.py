"""An existing deployment upgrades in place: times the auth, case and learning stores wrote
in an older text form are rewritten into the one form when the store opens, and then compare
and sort as times with the times written since."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from radcase_pacs.auth import schema as auth_schema
from radcase_pacs.auth.principal import Role
from radcase_pacs.auth.users import UserStore
from storage.database.base import Database
from storage.database.tables import Tables
from storage.database.timestamps import now_text, to_text
from storage.urls import open_database
from teaching.cases import schema as case_schema
from teaching.cases.models import CaseStatus
from teaching.cases.store import CaseFilter, CaseStore, NewCase
from teaching.learning import schema as learning_schema
from teaching.learning.models import AssignmentIn, GroupIn, ProgramSettings
from teaching.learning.questions import FreeTextKey, QuestionIn
from teaching.learning.scheduling import card_state, new_card
from teaching.learning.schema import LearningTables
from teaching.learning.stores.cohorts import CohortStore
from teaching.learning.stores.questions import QuestionStore
from teaching.learning.stores.reviews import AnswerOutcome, Claim, ReviewStore

ONE_FORM = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$")
AT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
CASE_ID = "5ca1ab1e" * 3
TimeColumns = tuple[tuple[str, str], ...]


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'upgrade.sqlite3'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def database(url: str) -> Iterator[Database]:
    db = open_database(url)
    db.open()
    yield db
    db.close()


def as_older_release(tables: Tables, columns: TimeColumns, older: str) -> None:
    """Put every time of ``columns`` into an ``older`` form ("seconds": ``isoformat()`` at a
    whole second; "z": ``...Z``) and forget the rewriting migration, as a database the
    release before would have left."""
    rewrite = {
        "seconds": "substr({c}, 1, 19) || '+00:00'",
        "z": "substr({c}, 1, 26) || 'Z'",
    }[older]
    with tables.db.transaction() as cur:
        for table, column in columns:
            cur.execute(f"UPDATE {table} SET {column} = {rewrite.format(c=column)}")
        cur.execute(f"DELETE FROM {tables.version_table} WHERE version = 2")


def stored_times(db: Database, columns: TimeColumns) -> list[str]:
    found = []
    with db.read() as cur:
        for table, column in columns:
            rows = cur.execute(f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL")
            found += [str(row[0]) for row in rows.fetchall()]
    return found


def upgrade(tables: Tables, columns: TimeColumns, older: str) -> None:
    as_older_release(tables, columns, older)
    before = stored_times(tables.db, columns)
    assert before and not any(ONE_FORM.match(t) for t in before)
    tables.open()  # migrates
    after = stored_times(tables.db, columns)
    assert len(after) == len(before) and all(ONE_FORM.match(t) for t in after), after


class UserStoreBeforeSessionDigests(UserStore):
    """The user store of the releases whose session registry kept no token digests."""

    migrations = auth_schema.MIGRATIONS[:2]


def test_auth_times_are_rewritten_and_a_session_stays_alive(database: Database) -> None:
    older = UserStoreBeforeSessionDigests(database, rounds=4)
    older.open()
    older.add_user("ann", "default", Role.LEARNER, "a-long-password-1")
    now = datetime.now(UTC)
    with database.transaction() as cur:  # as those releases registered a session
        for sid, expires in (("s1", now + timedelta(hours=1)), ("s0", now - timedelta(hours=1))):
            cur.execute(
                "INSERT INTO user_sessions (sid, username, created_at, expires_at) "
                "VALUES (?, ?, ?, ?)",
                (sid, "ann", now_text(), to_text(expires)),
            )
    key, _ = older.add_api_key("default", "lrs")
    users = UserStore(database, rounds=4)

    upgrade(users, auth_schema.TIME_COLUMNS, "seconds")

    assert users.session_alive("s1") and not users.session_alive("s0")
    live = users.live_session("s1")  # its access tokens work on; it has no digests to match
    assert live is not None and (live.refresh_digest, live.cookie_digest) == (None, None)
    assert users.session_ids("ann") == ["s1"]
    ann = users.user("ann")
    assert ann is not None and ann.created_at.microsecond == 0 and ann.created_at.tzinfo is UTC
    assert [k.key_id for k in users.api_keys("default")] == [key.key_id]


def test_case_times_are_rewritten_and_cases_still_list_newest_change_first(
    database: Database,
) -> None:
    cases = CaseStore(database)
    cases.open()
    for n, case_id in enumerate(["first", "second"]):
        cases.insert_case(
            NewCase(
                tenant="default",
                case_id=case_id,
                content={"title": case_id},
                status=CaseStatus.DRAFT,
                author="edu",
                note="",
                origin="api",
                source_study_uid="1.2.3",
                teaching_study_uid=f"2.25.{n}",
                created_at=AT + timedelta(seconds=n),
            ),
            [],
            [],
        )

    upgrade(cases, case_schema.TIME_COLUMNS, "seconds")

    _, listed = cases.search("default", CaseFilter(), 10, 0)
    assert [c.id for c in listed] == ["second", "first"]
    # Changed at the very second the other was stored: a tie, broken by the newer row. An
    # older "...:01+00:00" left beside "...:01.000000+00:00" would sort as the earlier time.
    cases.publish("default", "first", AT + timedelta(seconds=1))
    _, listed = cases.search("default", CaseFilter(), 10, 0)
    assert [c.id for c in listed] == ["second", "first"]
    case = cases.get("default", "first")
    assert case is not None and case.created_at == AT


def test_learning_times_are_rewritten_and_todays_counts_still_see_them(
    database: Database,
) -> None:
    tables = LearningTables(database)
    tables.open()
    questions, cohorts, reviews = (
        QuestionStore(database),
        CohortStore(database),
        ReviewStore(database),
    )
    key = FreeTextKey(accepted=["pneumothorax"])
    question_id = questions.add_question(
        "default", CASE_ID, QuestionIn(prompt="What?", key=key), AT
    )
    questions.set_program("default", ProgramSettings(), AT)
    group_id = cohorts.create_group("default", GroupIn(name="R1", members=["ann"]), "edu", AT)
    cohorts.add_assignment(
        "default", group_id, AssignmentIn(title="w1", case_ids=[CASE_ID], due_at=AT), "edu", AT
    )
    session_id = reviews.create_session("default", "ann", "due", {}, [(question_id, CASE_ID)], AT)
    session = reviews.session("default", "ann", session_id)
    assert session is not None
    reviews.present(session.pk, 1, AT)

    def decide(claim: Claim) -> AnswerOutcome:
        card = new_card("ann", question_id, AT)
        return AnswerOutcome(card, True, 3, 0, {}, None, card_state(card))

    reviews.record_answer("default", session, session.items[0], "free_text", AT, decide)

    upgrade(tables, learning_schema.TIME_COLUMNS, "z")

    assert reviews.count_introduced("default", "ann", AT) == 1
    total, logged = reviews.reviews("default", since=AT)
    assert total == 1 and logged[0].reviewed_at == AT
    assert cohorts.assignments("default")[0].due_at == AT
    item = reviews.session("default", "ann", session_id)
    assert item is not None and item.items[0].presented_at == AT


def test_every_store_names_its_time_columns() -> None:
    """A time column missing from a store's list would keep its older values."""
    for migrations, listed in (
        (auth_schema.MIGRATIONS, auth_schema.TIME_COLUMNS),
        (case_schema.MIGRATIONS, case_schema.TIME_COLUMNS),
        (learning_schema.MIGRATIONS, learning_schema.TIME_COLUMNS),
    ):
        created = "\n".join(migrations[0])
        columns = set()
        for table, body in re.findall(r"CREATE TABLE (\w+) \((.*?)\n\s*\)", created, re.S):
            for column in re.findall(r"^\s*(\w*(?:_at|due)) TEXT", body, re.M):
                columns.add((table, column))
        assert columns == set(listed)
