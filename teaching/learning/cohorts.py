"""Cohorts: groups of learners, the assignments educators give them, and a group's progress."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from teaching.cases.errors import CaseNotFound, InvalidField, NotFound
from teaching.cases.service import CaseService
from teaching.learning.models import Assignment, AssignmentIn, CohortProgress, Group, GroupIn
from teaching.learning.progress import cohort_progress
from teaching.learning.reports import ReportService
from teaching.learning.stores.cohorts import CohortStore


@dataclass(frozen=True)
class CohortService:
    store: CohortStore
    cases: CaseService
    reports: ReportService
    clock: Callable[[], datetime]
    """The time, in UTC."""
    unknown_users: Callable[[str, Sequence[str]], list[str]] | None = None
    """Which of these usernames have no account in the institution (None: not checked)."""

    # -- groups ---------------------------------------------------------------------------

    def groups(self, tenant: str) -> list[Group]:
        return self.store.groups(tenant)

    def group(self, tenant: str, group_id: str) -> Group:
        found = self.store.groups(tenant, group_id=group_id)
        if not found:
            raise NotFound("group")
        return found[0]

    def create_group(self, tenant: str, body: GroupIn, by: str) -> Group:
        self._check_members(tenant, body.members)
        return self.group(tenant, self.store.create_group(tenant, body, by, self.clock()))

    def replace_group(self, tenant: str, group_id: str, body: GroupIn) -> Group:
        self._check_members(tenant, body.members)
        if not self.store.replace_group(tenant, group_id, body):
            raise NotFound("group")
        return self.group(tenant, group_id)

    def delete_group(self, tenant: str, group_id: str) -> None:
        if not self.store.delete_group(tenant, group_id):
            raise NotFound("group")

    def _check_members(self, tenant: str, members: Sequence[str]) -> None:
        if self.unknown_users is None:
            return
        unknown = set(self.unknown_users(tenant, members))
        for index, name in enumerate(members):
            if name in unknown:
                raise InvalidField(("members", index), f"no user {name!r} in the institution")

    # -- assignments ----------------------------------------------------------------------

    def assign(self, tenant: str, group_id: str, body: AssignmentIn, by: str) -> Assignment:
        self.group(tenant, group_id)
        for index, case_id in enumerate(body.case_ids):
            try:
                self.cases.get(tenant, case_id)
            except CaseNotFound:
                raise InvalidField(("case_ids", index), f"no case {case_id}") from None
        assignment_id = self.store.add_assignment(tenant, group_id, body, by, self.clock())
        if assignment_id is None:
            raise NotFound("group")
        return self.store.assignments(tenant, assignment_id=assignment_id)[0]

    def assignments(
        self, tenant: str, *, group_id: str | None = None, member: str | None = None
    ) -> list[Assignment]:
        if group_id is not None:
            self.group(tenant, group_id)
        return self.store.assignments(tenant, group_id=group_id, member=member)

    def delete_assignment(self, tenant: str, assignment_id: str) -> None:
        if not self.store.delete_assignment(tenant, assignment_id):
            raise NotFound("assignment")

    # -- the group's progress -------------------------------------------------------------

    def cohort(self, tenant: str, group_id: str) -> CohortProgress:
        """The group's figures, aggregated and per learner, and its most missed cases."""
        group = self.group(tenant, group_id)
        return cohort_progress(
            self.reports.snapshot(tenant, group.members), group.id, group.members
        )

    def cohort_csv(self, tenant: str, group_id: str) -> Iterator[str]:
        """The members' review logs as CSV."""
        return self.reports.history_csv(tenant, self.group(tenant, group_id).members)
