"""The relational-database contract: one suite over SQLite and PostgreSQL, so a component's
tables behave the same on the embedded and the production database.

PostgreSQL runs in a schema of the test's own (``tests.backends.postgres_schema``), dropped
afterwards; its tests are skipped when no server is reachable (failed under CI).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psycopg
import pytest

from storage.database.base import Database
from storage.database.postgres import FIXED_MIGRATION_LOCKS, RETRIES, PostgresDatabase
from storage.database.sqlite import SqliteDatabase
from storage.errors import BackendFailure, ReadOnly
from storage.urls import open_database
from tests.backends import POSTGRES_URL, postgres_schema
from tests.factories import free_port

NOTES = [
    ["CREATE TABLE notes (id {id}, body TEXT NOT NULL UNIQUE, data {blob}, size {bigint})"],
    ["CREATE INDEX notes_size ON notes (size)"],
]
TAGS = [["CREATE TABLE tags (name TEXT PRIMARY KEY)"]]


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL of the test's own: a fresh SQLite file or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path}/database.sqlite3"
    else:
        with postgres_schema() as schema_url:
            yield schema_url


@contextmanager
def opened(url: str, count: int) -> Iterator[list[Database]]:
    """Separate opened handles on one database, as separate processes would hold."""
    with ExitStack() as stack:
        databases = []
        for _ in range(count):
            database = open_database(url)
            database.open()
            stack.callback(database.close)
            databases.append(database)
        yield databases


@pytest.fixture
def handles(url: str) -> Iterator[list[Database]]:
    with opened(url, 4) as databases:
        yield databases


@pytest.fixture
def postgres_handles() -> Iterator[list[PostgresDatabase]]:
    with postgres_schema() as url, opened(url, 4) as databases:
        yield [d for d in databases if isinstance(d, PostgresDatabase)]


@pytest.fixture
def database(handles: list[Database]) -> Database:
    return handles[0]


def versions(database: Database, version_table: str) -> list[int]:
    with database.read() as cur:
        rows = cur.execute(f"SELECT version FROM {version_table} ORDER BY version").fetchall()
    return [row[0] for row in rows]


def bodies(database: Database) -> list[str]:
    with database.read() as cur:
        return [row[0] for row in cur.execute("SELECT body FROM notes ORDER BY id").fetchall()]


def add_note(database: Database, body: str) -> int:
    with database.transaction() as cur:
        return int(
            cur.execute("INSERT INTO notes (body) VALUES (?) RETURNING id", (body,)).fetchone()[0]
        )


# -- migrations ---------------------------------------------------------------------------


def test_migrations_use_the_dialects_types_and_run_once(database: Database) -> None:
    database.migrate("notes_version", NOTES)
    database.migrate("notes_version", NOTES)
    assert versions(database, "notes_version") == [1, 2]
    with database.transaction() as cur:
        row = cur.execute(
            "INSERT INTO notes (body, data, size) VALUES (?, ?, ?) RETURNING id",
            ("x", b"\x00\xff", 2**40),
        ).fetchone()
    with database.read() as cur:
        stored = cur.execute("SELECT data, size FROM notes WHERE id = ?", (row[0],)).fetchone()
    assert (bytes(stored[0]), stored[1]) == (b"\x00\xff", 2**40)


def test_version_tables_are_independent(database: Database) -> None:
    database.migrate("notes_version", NOTES[:1])
    database.migrate("tags_version", TAGS)
    database.migrate("notes_version", NOTES)
    assert versions(database, "notes_version") == [1, 2]
    assert versions(database, "tags_version") == [1]
    with database.transaction() as cur:
        cur.execute("INSERT INTO tags (name) VALUES (?)", ("chest",))
    assert add_note(database, "x") == 1


def test_dialect_migrations_run_after_their_shared_migration(database: Database) -> None:
    database.migrate("notes_version", NOTES, {1: ["INSERT INTO notes (body) VALUES ('seed')"]})
    database.migrate("notes_version", NOTES, {1: ["INSERT INTO notes (body) VALUES ('again')"]})
    assert bodies(database) == ["seed"]


def test_a_failing_migration_leaves_the_schema_as_it_was(database: Database) -> None:
    broken = [NOTES[0], ["CREATE INDEX notes_size ON missing_table (size)"]]
    with pytest.raises(BackendFailure):
        database.migrate("notes_version", broken)
    database.migrate("notes_version", NOTES)  # notes was rolled back: created again
    assert versions(database, "notes_version") == [1, 2]


def test_processes_starting_together_migrate_once(handles: list[Database]) -> None:
    barrier = threading.Barrier(len(handles))

    def start(database: Database) -> None:
        barrier.wait(timeout=10)
        database.migrate("notes_version", NOTES)

    with ThreadPoolExecutor(len(handles)) as pool:
        list(pool.map(start, handles))
    assert versions(handles[-1], "notes_version") == [1, 2]


def test_version_table_names_are_sql_identifiers(database: Database) -> None:
    with pytest.raises(ValueError, match="version table"):
        database.migrate("notes_version; DROP TABLE notes", NOTES)


# -- transactions and reads ---------------------------------------------------------------


def test_a_failing_statement_rolls_the_transaction_back(database: Database) -> None:
    database.migrate("notes_version", NOTES)
    add_note(database, "kept")
    with pytest.raises(BackendFailure), database.transaction() as cur:
        cur.execute("INSERT INTO notes (body) VALUES (?)", ("lost",))
        cur.execute("INSERT INTO notes (body) VALUES (?)", ("kept",))
    assert bodies(database) == ["kept"]


def test_an_exception_in_the_caller_rolls_back_and_propagates(database: Database) -> None:
    database.migrate("notes_version", NOTES)
    with pytest.raises(KeyError), database.transaction() as cur:
        cur.execute("INSERT INTO notes (body) VALUES (?)", ("lost",))
        raise KeyError("the caller's own failure")
    assert bodies(database) == []


def test_reads_see_committed_rows_from_every_handle(handles: list[Database]) -> None:
    writer, reader = handles[0], handles[1]
    writer.migrate("notes_version", NOTES)
    add_note(writer, "first")
    assert bodies(reader) == ["first"]
    add_note(writer, "second")
    assert bodies(reader) == ["first", "second"]


def test_qmark_placeholders_outside_literals_and_nul_in_text(database: Database) -> None:
    with database.read() as cur:
        assert tuple(cur.execute("SELECT '?', ?, '100%'", ("x",)).fetchone()) == ("?", "x", "100%")
    database.migrate("notes_version", NOTES)
    add_note(database, "a\x00b")
    with database.read() as cur:
        rows = cur.execute("SELECT body FROM notes WHERE body = ?", ("a\x00b",)).fetchall()
    # PostgreSQL text cannot hold NUL: it is stored, and matched, as U+FFFD.
    expected = "a\x00b" if database.dialect == "sqlite" else "a\ufffdb"
    assert [row[0] for row in rows] == [expected]


def test_executemany_runs_a_statement_per_row_with_nul_made_safe(database: Database) -> None:
    database.migrate("notes_version", NOTES)
    with database.transaction() as cur:
        cur.executemany("INSERT INTO notes (body, size) VALUES (?, ?)", [("a", 1), ("b\x00", 2)])
    with database.read() as cur:
        rows = cur.execute("SELECT body, size FROM notes ORDER BY id").fetchall()
    second = "b\x00" if database.dialect == "sqlite" else "b\ufffd"
    assert [tuple(row) for row in rows] == [("a", 1), (second, 2)]


# -- write guards and draining ------------------------------------------------------------


def test_a_write_guard_refuses_transactions_before_they_write(database: Database) -> None:
    database.migrate("notes_version", NOTES)
    refusing = threading.Event()

    def guard() -> None:
        if refusing.is_set():
            raise ReadOnly("switching over", retry_after=3)

    database.guard_writes(guard)
    add_note(database, "before")
    refusing.set()
    with pytest.raises(ReadOnly), database.transaction() as cur:
        cur.execute("INSERT INTO notes (body) VALUES (?)", ("refused",))
    assert bodies(database) == ["before"]  # reads go on
    database.guard_writes(None)
    add_note(database, "after")
    assert bodies(database) == ["before", "after"]


def test_draining_waits_for_a_guarded_writer_of_another_handle(handles: list[Database]) -> None:
    """A transaction that passed its guard before the flag was set still commits: the drain
    (from another handle, as another process would) returns only once it has."""
    writer, drainer = handles[0], handles[1]
    writer.migrate("notes_version", NOTES)
    writer.guard_writes(lambda: None)
    inside, release = threading.Event(), threading.Event()

    def slow_write() -> None:
        with writer.transaction() as cur:
            cur.execute("INSERT INTO notes (body) VALUES (?)", ("in flight",))
            inside.set()
            release.wait(timeout=10)

    with ThreadPoolExecutor(2) as pool:
        written = pool.submit(slow_write)
        assert inside.wait(timeout=10)
        drained = pool.submit(drainer.drain_writers)
        time.sleep(0.3)
        assert not drained.done(), "the drain returned while a writer was inside"
        release.set()
        written.result(timeout=10)
        drained.result(timeout=10)
    assert bodies(drainer) == ["in flight"]


# -- races between writers ----------------------------------------------------------------


def add_once(database: Database, writer: str, barrier: threading.Barrier, runs: list[str]) -> str:
    """Insert the shared row unless present; each writer's first run waits for the other
    between its check and its insert, so both decide to insert."""

    def attempt() -> str:
        first = writer not in runs
        runs.append(writer)
        with database.transaction() as cur:
            row = cur.execute("SELECT id FROM notes WHERE body = ?", ("shared",)).fetchone()
            if first:
                barrier.wait(timeout=10)
            if row is not None:
                return "present"
            cur.execute("INSERT INTO notes (body) VALUES (?)", ("shared",))
            return "inserted"

    return database.retrying(attempt)


def test_retrying_runs_again_a_transaction_that_lost_a_race(
    postgres_handles: list[PostgresDatabase],
) -> None:
    """Only where writers run side by side: SQLite's queue, so two are never inside a
    transaction at once."""
    postgres_handles[0].migrate("notes_version", NOTES)
    barrier = threading.Barrier(2)
    runs: list[str] = []
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(
            pool.map(lambda n: add_once(postgres_handles[n], f"writer {n}", barrier, runs), [0, 1])
        )
    assert sorted(outcomes) == ["inserted", "present"]
    assert len(runs) == 3  # the loser ran once more
    assert bodies(postgres_handles[0]) == ["shared"]


def test_retrying_gives_up_with_a_backend_failure(database: Database) -> None:
    """A loss that persists is a failure, after a few runs where races exist, at once where
    they do not (SQLite)."""
    database.migrate("notes_version", NOTES)
    add_note(database, "taken")
    calls = []

    def attempt() -> None:
        calls.append(1)
        with database.transaction() as cur:
            cur.execute("INSERT INTO notes (body) VALUES (?)", ("taken",))

    with pytest.raises(BackendFailure):
        database.retrying(attempt)
    assert len(calls) == (1 if database.dialect == "sqlite" else RETRIES)
    assert database.retrying(lambda: 42) == 42


# -- opening, closing, ping ---------------------------------------------------------------


def test_open_is_idempotent_and_ping_answers(database: Database) -> None:
    database.open()
    database.ping()


def test_after_close(database: Database) -> None:
    """PostgreSQL refuses work until opened again; a SQLite file is always reachable, so it
    reconnects on the next use."""
    database.close()
    if database.dialect == "sqlite":
        database.ping()
    else:
        with pytest.raises(BackendFailure, match="not open"):
            database.ping()
    database.open()
    database.ping()


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_an_unreachable_database_is_a_backend_failure(dialect: str, tmp_path: Path) -> None:
    unreachable: Database
    if dialect == "sqlite":
        (tmp_path / "a-file").write_text("")
        unreachable = SqliteDatabase(tmp_path / "a-file" / "database.sqlite3")
    else:
        url = f"postgresql://postgres@127.0.0.1:{free_port()}/x"
        unreachable = PostgresDatabase(url, connect_timeout=1)
    with pytest.raises(BackendFailure):
        unreachable.open()
    with pytest.raises(BackendFailure):
        unreachable.ping()


def test_repr_never_shows_a_password(tmp_path: Path) -> None:
    database = PostgresDatabase("postgresql://u:secret@db/pacs?password=other", schema="s")
    assert repr(database) == (
        "PostgresDatabase('postgresql://u:***@db/pacs?password=***', schema='s')"
    )
    path = tmp_path / "cases.sqlite3"
    assert repr(SqliteDatabase(path)) == f"SqliteDatabase({str(path)!r})"


# -- PostgreSQL only ----------------------------------------------------------------------


def test_postgres_migrations_create_the_configured_schema(
    postgres_handles: list[PostgresDatabase],
) -> None:
    database = postgres_handles[0]
    database.migrate("notes_version", NOTES)
    with database.read() as cur:
        row = cur.execute(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'notes'"
        ).fetchone()
    assert row[0] == database.schema


def test_postgres_components_can_create_one_schema_together(
    postgres_handles: list[PostgresDatabase],
) -> None:
    """Different version tables lock different keys, so both may create the new schema;
    the loser runs again."""
    barrier = threading.Barrier(len(postgres_handles))

    def start(n: int) -> None:
        barrier.wait(timeout=10)
        postgres_handles[n].migrate(f"part{n}_version", [[f"CREATE TABLE part{n} (x TEXT)"]])

    with ThreadPoolExecutor(len(postgres_handles)) as pool:
        list(pool.map(start, range(len(postgres_handles))))
    for n in range(len(postgres_handles)):
        assert versions(postgres_handles[0], f"part{n}_version") == [1]


def test_postgres_index_migrations_wait_for_an_older_release(
    postgres_handles: list[PostgresDatabase],
) -> None:
    """Releases before version tables had names locked one fixed key to migrate the index;
    the index's version table keeps it, so an old and a new process never migrate at once."""
    database = postgres_handles[0]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as older:
        older.execute("SELECT pg_advisory_lock(%s)", (FIXED_MIGRATION_LOCKS["schema_version"],))
        migrating = threading.Thread(target=database.migrate, args=("schema_version", TAGS))
        migrating.start()
        time.sleep(0.5)
        assert migrating.is_alive()
        database.migrate("notes_version", NOTES)  # other version tables do not wait
        older.execute("SELECT pg_advisory_unlock_all()")
    migrating.join(timeout=10)
    assert not migrating.is_alive()
    assert versions(database, "schema_version") == [1]
