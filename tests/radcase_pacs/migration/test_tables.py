"""The migration's registry of tables against the tables a deployment really has: a table a
later release adds fails here until the migration knows how to carry it (or why not)."""

from __future__ import annotations

from pathlib import Path

from radcase_pacs.deployment import open_deployment
from radcase_pacs.migration.catalog import column_names, table_names
from radcase_pacs.migration.tables import (
    BY_ARCHIVE,
    COPIED,
    DATABASES,
    NOT_COPIED,
    VERSION_SUFFIX,
    Kind,
    known,
)
from radcase_pacs.settings import Settings


def test_every_table_of_a_deployment_is_carried_or_said_why_not(tmp_path: Path) -> None:
    with open_deployment(Settings(data_dir=tmp_path / "data")) as deployment:
        for database in DATABASES:
            db = deployment.databases[database]
            present = table_names(db)
            unplaced = sorted(name for name in present if not known(database, name))
            assert unplaced == [], f"{database}: add these to radcase_pacs/migration/tables.py"
            registered = (
                {spec.name for spec in COPIED[database]}
                | BY_ARCHIVE[database]
                | set(NOT_COPIED[database])
            )
            assert registered <= present, f"{database}: registered but gone"
            assert any(name.endswith(VERSION_SUFFIX) for name in present)
            for spec in COPIED[database]:
                columns = column_names(db, spec.name)
                assert set(spec.key) <= set(columns), spec.name
                for column, _ in spec.parents:
                    assert column in columns, spec.name
                if spec.kind is Kind.LOG or spec.numbered:
                    assert spec.key == ("id",), spec.name


def test_parents_are_copied_before_their_children() -> None:
    for database in DATABASES:
        order = [spec.name for spec in COPIED[database]]
        for position, spec in enumerate(COPIED[database]):
            for _, parent in spec.parents:
                assert parent in order[:position], f"{spec.name} before its parent {parent}"
