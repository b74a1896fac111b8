"""The two deployments of a migration, opened, and what a pass walks over in them: the two
archives, and every copied table with the columns both sides have."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from radcase_pacs.deployment import Deployment
from radcase_pacs.migration.catalog import column_names, table_names
from radcase_pacs.migration.rows import TableSides
from radcase_pacs.migration.tables import COPIED, DATABASES, known
from storage.archive import Archive
from storage.urls import mask_password


class Refused(Exception):
    """The migration cannot start: the message says why and what to do."""


@dataclass(frozen=True)
class Sides:
    source: Deployment
    target: Deployment

    def archives(self) -> list[tuple[str, Archive, Archive]]:
        """(label, source, target): the clinical archive, then the teaching collection, as
        the copies the deployment keeps without ingest observers (a copy is not a new
        arrival: no metrics, and no KOS made into a second draft case)."""
        return [
            ("", self.source.archive, self.target.archive),
            ("teaching collection, ", self.source.teaching, self.target.teaching),
        ]

    @functools.cached_property
    def tables(self) -> list[TableSides]:
        """Every copied table, parents before children, clinical database first."""
        out = []
        for database in DATABASES:
            theirs, ours = self.source.databases[database], self.target.databases[database]
            for spec in COPIED[database]:
                columns = column_names(theirs, spec.name)
                if columns != column_names(ours, spec.name):
                    raise Refused(
                        f"table {spec.name} has other columns in the target: run the same "
                        "release of radcase-pacs on both sides"
                    )
                out.append(TableSides(spec, theirs, ours, columns))
        return out

    def source_name(self) -> str:
        return mask_password(self.source.settings.resolved_index_url)

    def target_name(self) -> str:
        return mask_password(self.target.settings.resolved_index_url)


def refusals(sides: Sides) -> list[str]:
    """Why nothing should be copied into this target now (empty: go ahead)."""
    mode = sides.target.mode.mode()
    if mode.took_over_from is None:
        return []
    return [
        f"the target took over from {mode.took_over_from} at {mode.took_over_at} and has "
        "served since: copying into it would undo what it took in; to move back, migrate from "
        "it to the old deployment instead"
    ]


def unknown_tables(sides: Sides) -> list[str]:
    """Tables of either side that this release does not know how to carry (another
    application's, in a shared schema; or a newer release's)."""
    notes = []
    for database in DATABASES:
        for side, deployment in (("source", sides.source), ("target", sides.target)):
            unknown = sorted(
                name
                for name in table_names(deployment.databases[database])
                if not known(database, name)
            )
            if unknown:
                notes.append(
                    f"note: the {side}'s {database} database has table(s) this release does not "
                    f"carry: {', '.join(unknown)}"
                )
    return notes
