"""What ``migrate`` does between two embedded deployments, run in this process: a second run
brings over what was added, changed and removed since the first; a row waits for its parent;
what the target's audit log alone holds is reported, never removed; a key that differs is
reported; a deployment that took over by a switch refuses to be copied into; and switching
back copies back everything the new deployment took in since."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from radcase_pacs.audit.store import AuditEntry
from radcase_pacs.auth.principal import Role
from radcase_pacs.cli import main
from radcase_pacs.deployment import Deployment, open_deployment
from radcase_pacs.migration.rows import TableCopy, TableSides, copy_rows
from radcase_pacs.migration.tables import COPIED, TEACHING
from radcase_pacs.settings import file_settings
from storage.database.timestamps import utc_now
from teaching.learning.models import GroupIn
from teaching.learning.stores.cohorts import CohortStore
from tests.factories import make_instance, to_bytes
from tests.radcase_pacs.migration.sides import write_config


@pytest.fixture
def configs(tmp_path: Path) -> tuple[Path, Path]:
    return (
        write_config(tmp_path / "old.toml", data_dir=tmp_path / "old"),
        write_config(tmp_path / "new.toml", data_dir=tmp_path / "new"),
    )


@contextmanager
def opened(config: Path) -> Iterator[Deployment]:
    with open_deployment(file_settings(config)) as deployment:
        yield deployment


def run(
    capsys: pytest.CaptureFixture[str], source: Path, target: Path, *args: str
) -> tuple[int, str]:
    code = main(["migrate", "--no-progress", "--from", str(source), "--to", str(target), *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def entry(action: str) -> AuditEntry:
    return AuditEntry(tenant="default", actor="admin", action=action, channel="cli", route="test")


def store(deployment: Deployment) -> str:
    ds = make_instance()
    deployment.archive.ingest(io.BytesIO(to_bytes(ds)))
    return str(ds.SOPInstanceUID)


def test_a_second_run_brings_what_was_added_changed_and_removed(
    configs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = configs
    with opened(old) as department:
        users = department.auth.users
        users.add_user("ann", "default", Role.LEARNER, "a long password")
        key, _ = users.add_api_key("default", "lrs")
        cohorts = CohortStore(department.databases["teaching"])
        group = cohorts.create_group(
            "default", GroupIn(name="PGY1", members=["ann"]), "edu", utc_now()
        )
        gone = store(department)
        kept = store(department)
        department.audit.record(entry("first"))
    code, output = run(capsys, old, new)
    assert code == 0, output

    with opened(old) as department:
        department.auth.users.set_role("ann", Role.EDUCATOR)
        department.auth.users.disable_api_key("default", key.key_id)
        CohortStore(department.databases["teaching"]).delete_group("default", group)
        department.archive.delete(*_uids(department, gone))
        department.audit.record(entry("second"))
    code, output = run(capsys, old, new)
    assert code == 0, output
    assert "verification: OK" in output
    assert "1 removed)" in output  # the instance
    with opened(new) as moved:
        assert moved.auth.users.user("ann") is not None
        assert moved.auth.users.user("ann").role is Role.EDUCATOR  # type: ignore[union-attr]
        assert [k.disabled for k in moved.auth.users.api_keys("default")] == [True]
        assert CohortStore(moved.databases["teaching"]).groups("default") == []
        assert moved.archive.stored(gone) is None and moved.archive.stored(kept) is not None
        actions = [e.action for e in moved.audit.entries(None)]
        assert actions == ["first", "second"]
        moved.audit.record(entry("new"))  # the target numbers its own entries past the copies
        assert [e.id for e in moved.audit.entries(None)] == [1, 2, 3]


def _uids(deployment: Deployment, sop: str) -> tuple[str, str, str]:
    instance = deployment.archive.stored(sop)
    assert instance is not None
    return instance.study_uid, instance.series_uid, instance.sop_uid


def test_a_row_waits_for_its_parent_until_the_next_pass(configs: tuple[Path, Path]) -> None:
    old, new = configs
    with opened(old) as source, opened(new) as target:
        CohortStore(source.databases["teaching"]).create_group(
            "default", GroupIn(name="PGY1", members=["ann", "bob"]), "edu", utc_now()
        )
        specs = {spec.name: spec for spec in COPIED[TEACHING]}

        def sides(name: str) -> TableSides:
            theirs, ours = source.databases[TEACHING], target.databases[TEACHING]
            columns = ["group_pk", "username"] if name == "group_members" else None
            from radcase_pacs.migration.catalog import column_names

            return TableSides(specs[name], theirs, ours, columns or column_names(theirs, name))

        members = TableCopy("group_members")
        copy_rows(sides("group_members"), members)
        assert (members.inserted, members.waiting) == (0, 2)
        copy_rows(sides("learner_groups"), TableCopy("learner_groups"))
        members = TableCopy("group_members")
        copy_rows(sides("group_members"), members)
        assert (members.inserted, members.waiting) == (2, 0)


def test_what_the_targets_audit_log_alone_holds_is_reported_and_kept(
    configs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The target was used before the copy (its own entries 1 and 2): the log is never
    rewritten, so the entry that differs and the one the source lacks stay, and are listed."""
    old, new = configs
    with opened(old) as department:
        department.audit.record(entry("in the source"))
    with opened(new) as target:
        target.audit.record(entry("written by the target itself"))
        target.audit.record(entry("and another"))
    code, output = run(capsys, old, new)
    assert code == 1, output
    assert "problem: audit_log: the target holds 1 row(s) the source does not (ids 2)" in output
    assert "problem: audit_log (1): differs in at, action" in output
    assert "verification: FAILED" in output
    with opened(new) as target:
        actions = [e.action for e in target.audit.entries(None)]
        assert actions == ["written by the target itself", "and another"]


def test_a_de_identification_key_that_differs_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = write_config(tmp_path / "old.toml", data_dir=tmp_path / "old")
    new = write_config(
        tmp_path / "new.toml", data_dir=tmp_path / "new", deid_secret="another key, sixteen+"
    )
    code, output = run(capsys, old, new)
    assert code == 1, output
    assert "the de-identification key differs" in output and "deid_secret" in output


def test_switching_back_brings_back_what_the_new_deployment_took_in(
    configs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = configs
    with opened(old) as department:
        before = store(department)
    code, output = run(capsys, old, new, "--switch")
    assert code == 0, output
    with opened(old) as department:
        assert department.mode.mode().read_only
    with opened(new) as target:
        assert target.mode.mode().took_over_from is not None
        after = store(target)
        target.auth.users.add_user("bob", "default", Role.LEARNER, "a long password")
        target.audit.record(entry("on the new deployment"))

    code, output = run(capsys, old, new)
    assert code == 2 and "took over" in output  # a copy would undo what it took in

    code, output = run(capsys, new, old, "--switch")
    assert code == 0, output
    with opened(old) as department:
        mode = department.mode.mode()
        assert not mode.read_only and mode.took_over_from is not None
        assert department.archive.stored(before) and department.archive.stored(after)
        assert department.auth.users.user("bob") is not None
        assert [e.action for e in department.audit.entries(None)] == ["on the new deployment"]
    with opened(new) as target:
        mode = target.mode.mode()
        assert mode.read_only and mode.took_over_from is None


def test_verification_lists_each_difference_and_exits_1(
    configs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = configs
    with opened(old) as department:
        department.auth.users.add_user("ann", "default", Role.LEARNER, "a long password")
        sop = store(department)
    assert run(capsys, old, new)[0] == 0
    with opened(new) as target:
        target.auth.users.set_role("ann", Role.ADMIN)
        instance = target.archive.stored(sop)
        assert instance is not None
        blob = Path(str(file_settings(new).data_dir), "blobs", instance.blob_key)
        blob.write_bytes(blob.read_bytes()[:-1] + b"\xff")
    code, output = run(capsys, old, new, "--verify-only")
    assert code == 1, output
    assert f"{sop}: the target's stored bytes differ from the source's" in output
    assert "table users: 2 rows in the source, 2 in the target: 0 missing, 1 differing" in output
    assert "differs in role, updated_at" in output
    assert output.rstrip().endswith("verification: FAILED")
