"""``migrate`` killed with SIGKILL in the middle of copying a long history (the audit log, the
review log), then run again: it goes on from what the first run committed, and in the end
every row is there exactly once, with its id, and verified."""

from __future__ import annotations

import io
import signal
import time
from pathlib import Path

import psycopg
import pytest

from radcase_pacs.auth.principal import Role
from radcase_pacs.deployment import open_deployment
from radcase_pacs.settings import file_settings
from tests.factories import make_instance, to_bytes
from tests.radcase_pacs.migration.history import add_answers, add_audit_entries
from tests.radcase_pacs.migration.sides import embedded_config, migrate, write_config

AUDIT_ENTRIES = 20_000
ANSWERS = 20_000
QUESTIONS = [(f"{n:024x}", f"{n % 10:024x}") for n in range(1, 61)]
pytestmark = pytest.mark.e2e


def counts(index_url: str) -> dict[str, tuple[int, int]]:
    """(rows, distinct ids) of the two logs in the target."""
    url, _, schema = index_url.partition("?schema=")
    out = {}
    with psycopg.connect(url) as connection:
        for table, where in (("audit_log", schema), ("reviews", f"{schema}_teaching")):
            try:
                row = connection.execute(
                    f'SELECT COUNT(*), COUNT(DISTINCT id) FROM "{where}".{table}'
                ).fetchone()
            except psycopg.errors.UndefinedTable:
                connection.rollback()
                row = (0, 0)
            out[table] = (int(row[0]), int(row[1])) if row else (0, 0)
    return out


def test_a_migration_killed_midway_resumes_and_nothing_is_lost_or_doubled(
    tmp_path: Path, postgres_url: str
) -> None:
    source = embedded_config(tmp_path)
    target = write_config(
        tmp_path / "target.toml", data_dir=tmp_path / "target", index_url=postgres_url
    )
    with open_deployment(file_settings(source)) as department:
        department.auth.users.add_user("resident", "default", Role.LEARNER, "a long password")
        for number in range(20):
            department.archive.ingest(io.BytesIO(to_bytes(make_instance(instance_number=number))))
        add_audit_entries(department.databases["audit"], AUDIT_ENTRIES)
        add_answers(department.databases["teaching"], ANSWERS, learners=12, questions=QUESTIONS)
        expected = department.audit.search(None, limit=1)[0]

    first = migrate(source, target)
    deadline = time.monotonic() + 120
    while True:
        now = counts(postgres_url)
        if 0 < now["audit_log"][0] < expected or 0 < now["reviews"][0] < ANSWERS:
            break
        assert first.poll() is None, first.communicate()[0]
        assert time.monotonic() < deadline, "the migration made no progress"
        time.sleep(0.005)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    interrupted = counts(postgres_url)
    assert interrupted["audit_log"][0] < expected or interrupted["reviews"][0] < ANSWERS

    second = migrate(source, target)
    output = second.communicate(timeout=300)[0]
    assert second.returncode == 0, output
    assert "verification: OK" in output
    assert (
        f"table audit_log: {expected} rows in the source, {expected} in the target, identical"
        in output
    )
    assert (
        f"table reviews: {ANSWERS} rows in the source, {ANSWERS} in the target, identical" in output
    )
    copied = int(output.split("instances copied")[1].split(";")[1].split()[0])
    in_source = sum(
        int(line.split(": ")[1].split()[0])
        for line in output.splitlines()
        if line.startswith("table ")
    )
    committed = interrupted["audit_log"][0] + interrupted["reviews"][0]
    assert copied <= in_source - committed  # what the first run committed is not copied again
    assert counts(postgres_url) == {
        "audit_log": (expected, expected),
        "reviews": (ANSWERS, ANSWERS),
    }
