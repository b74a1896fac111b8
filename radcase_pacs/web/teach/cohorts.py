"""The educators' groups and assignments pages, under ``/teach/``.

A group is a cohort of the institution's learners; an assignment gives it published cases,
chosen one by one or resolved from a tag set when it is made, with a due date in the
program's time zone. The handlers call the same cohort service as the JSON API
(``/api/groups``), scoped to the educator's institution: another institution's group is a
404, its learners and cases are never listed. Every change is audited before it is made.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from radcase_pacs.auth.principal import Role
from radcase_pacs.web.changes import record_change
from radcase_pacs.web.context import Web, who
from radcase_pacs.web.forms import field, submitted
from radcase_pacs.web.teach.cohort_forms import assignment_in, checked_id, chosen, group_in
from radcase_pacs.web.teach.cohort_progress import progress_routes
from radcase_pacs.web.teach.program import program_routes
from teaching.cases.codes import CATEGORIES, LEVELS
from teaching.cases.errors import InvalidField
from teaching.cases.models import CaseSummary
from teaching.learning.models import Group

NOTICES = {
    "group": "Group created.",
    "saved": "Group saved.",
    "deleted": "Group deleted. Its members' answers and progress are kept.",
    "assigned": "Assignment created.",
    "unassigned": "Assignment deleted.",
}


def case_label(case: CaseSummary) -> str:
    """A published case as the educator picks it: its title and tags."""
    tags = [CATEGORIES.get(c, c) for c in case.tags.categories] + case.tags.modalities
    if case.tags.level:
        tags.append(LEVELS.get(case.tags.level, case.tags.level))
    return f"{case.title} ({', '.join(tags)})" if tags else case.title


def cohort_routes(web: Web) -> list[Route]:
    """Groups, assignments, the program's settings and a group's progress."""
    learning = web.deployment.learning
    cohorts, catalog = learning.cohorts, learning.quiz.catalog
    users = web.deployment.auth.users

    def notice(request: Request) -> str:
        return NOTICES.get(request.query_params.get("notice", ""), "")

    def learners(tenant: str, also: list[str]) -> tuple[list[str], set[str]]:
        """The institution's learners (and any current member of another role) offered as
        members, and every username of the institution."""
        everyone = users.users(tenant)
        offered = {u.username for u in everyone if u.role is Role.LEARNER} | set(also)
        return sorted(offered), {u.username for u in everyone}

    def group_of(tenant: str, group_id: str) -> Group:
        found = cohorts.store.groups(tenant, group_id=group_id)
        if not found:
            raise HTTPException(404, "There is no such group.")
        return found[0]

    # -- the list of groups ---------------------------------------------------------------

    def list_context(tenant: str) -> dict[str, Any]:
        groups = cohorts.groups(tenant)
        counts = Counter(a.group_id for a in cohorts.assignments(tenant))
        offered, _ = learners(tenant, [])
        return {
            "groups": groups,
            "assignment_counts": counts,
            "learners": [(name, name) for name in offered],
        }

    async def groups_page(
        request: Request, extra: dict[str, Any] | None = None, status: int = 200
    ) -> Response:
        context = await run_in_threadpool(list_context, who(request).tenant)
        context.update({"errors": [], "notice": notice(request), "given": {}, **(extra or {})})
        return web.pages.render(request, "teach_groups.html", context, status_code=status)

    async def list_groups(request: Request) -> Response:
        return await groups_page(request)

    async def create_group(request: Request) -> Response:
        form = await submitted(request, web.signing_key)
        principal = who(request)
        _, known = await run_in_threadpool(learners, principal.tenant, [])
        body, errors = group_in(form, known)
        if body is None:
            given = {"name": field(form, "name", limit=300), "members": chosen(form, "members")}
            return await groups_page(request, {"errors": errors, "given": given}, 400)
        await record_change(
            web, request, "group.create", f"name={body.name} members={','.join(body.members)}"
        )
        try:
            group = await run_in_threadpool(
                cohorts.create_group, principal.tenant, body, principal.user
            )
        except InvalidField as exc:
            return await groups_page(request, {"errors": [f"Members: {exc.message}."]}, 400)
        return RedirectResponse(f"/teach/groups/{group.id}?notice=group", 303)

    # -- one group ------------------------------------------------------------------------

    def group_context(tenant: str, group_id: str) -> dict[str, Any]:
        group = group_of(tenant, group_id)
        program = learning.authoring.program(tenant)
        published = catalog.published(tenant)
        offered, _ = learners(tenant, group.members)
        modalities = sorted({m for c in published.values() for m in c.tags.modalities})
        return {
            "group": group,
            "assignments": cohorts.assignments(tenant, group_id=group_id),
            "learners": [(name, name) for name in offered],
            "published": list(published.values()),
            "case_options": [(c.id, case_label(c)) for c in published.values()],
            "titles": {c.id: c.title for c in published.values()},
            "timezone": program.timezone,
            "zone": ZoneInfo(program.timezone),
            "categories": CATEGORIES,
            "levels": LEVELS,
            "modalities": modalities,
        }

    async def group_page(
        request: Request, extra: dict[str, Any] | None = None, status: int = 200
    ) -> Response:
        group_id = checked_id(request, "group_id", "group")
        context = await run_in_threadpool(group_context, who(request).tenant, group_id)
        context.update({"errors": [], "notice": notice(request), "given": {}, **(extra or {})})
        return web.pages.render(request, "teach_group.html", context, status_code=status)

    async def show_group(request: Request) -> Response:
        return await group_page(request)

    async def change_group(request: Request) -> Response:
        group_id = checked_id(request, "group_id", "group")
        principal = who(request)
        group = await run_in_threadpool(group_of, principal.tenant, group_id)
        form = await submitted(request, web.signing_key)
        _, known = await run_in_threadpool(learners, principal.tenant, group.members)
        body, errors = group_in(form, known)
        if body is None:
            return await group_page(request, {"errors": errors}, 400)
        await record_change(
            web,
            request,
            "group.update",
            f"group_id={group_id} name={body.name} members={','.join(body.members)}",
        )
        try:
            await run_in_threadpool(cohorts.replace_group, principal.tenant, group_id, body)
        except InvalidField as exc:
            return await group_page(request, {"errors": [f"Members: {exc.message}."]}, 400)
        return RedirectResponse(f"/teach/groups/{group_id}?notice=saved", 303)

    async def delete_group(request: Request) -> Response:
        group_id = checked_id(request, "group_id", "group")
        tenant = who(request).tenant
        await submitted(request, web.signing_key)
        group = await run_in_threadpool(group_of, tenant, group_id)
        await record_change(web, request, "group.delete", f"group_id={group_id} name={group.name}")
        await run_in_threadpool(cohorts.delete_group, tenant, group_id)
        return RedirectResponse("/teach/groups?notice=deleted", 303)

    # -- its assignments ------------------------------------------------------------------

    async def assign(request: Request) -> Response:
        group_id = checked_id(request, "group_id", "group")
        principal = who(request)
        await run_in_threadpool(group_of, principal.tenant, group_id)
        form = await submitted(request, web.signing_key)
        published = await run_in_threadpool(catalog.published, principal.tenant)
        program = await run_in_threadpool(learning.authoring.program, principal.tenant)
        body, errors = assignment_in(form, published, program.timezone)
        if body is None:
            keys = ("title", "due_at", "source", "category", "modality", "level")
            given: dict[str, Any] = {key: field(form, key, limit=300) for key in keys}
            given["case_ids"] = chosen(form, "case_ids")
            return await group_page(request, {"errors": errors, "given": given}, 400)
        await record_change(
            web,
            request,
            "assignment.create",
            f"group_id={group_id} title={body.title} cases={','.join(body.case_ids)}",
        )
        try:
            await run_in_threadpool(
                cohorts.assign, principal.tenant, group_id, body, principal.user
            )
        except InvalidField as exc:
            return await group_page(request, {"errors": [f"Cases: {exc.message}."]}, 400)
        return RedirectResponse(f"/teach/groups/{group_id}?notice=assigned", 303)

    async def unassign(request: Request) -> Response:
        group_id = checked_id(request, "group_id", "group")
        assignment_id = checked_id(request, "assignment_id", "assignment")
        tenant = who(request).tenant
        await submitted(request, web.signing_key)
        found = await run_in_threadpool(
            cohorts.store.assignments, tenant, group_id=group_id, assignment_id=assignment_id
        )
        if not found:
            raise HTTPException(404, "There is no such assignment.")
        await record_change(
            web,
            request,
            "assignment.delete",
            f"group_id={group_id} assignment_id={assignment_id} title={found[0].title}",
        )
        await run_in_threadpool(cohorts.delete_assignment, tenant, assignment_id)
        return RedirectResponse(f"/teach/groups/{group_id}?notice=unassigned", 303)

    def get(path: str, endpoint: Callable[..., Any]) -> Route:
        return Route(path, endpoint, methods=["GET"])

    def post(path: str, endpoint: Callable[..., Any]) -> Route:
        return Route(path, endpoint, methods=["POST"])

    return [
        get("/teach/groups", list_groups),
        post("/teach/groups", create_group),
        get("/teach/groups/{group_id}", show_group),
        post("/teach/groups/{group_id}", change_group),
        post("/teach/groups/{group_id}/delete", delete_group),
        post("/teach/groups/{group_id}/assignments", assign),
        post("/teach/groups/{group_id}/assignments/{assignment_id}/delete", unassign),
        *progress_routes(web),
        *program_routes(web),
    ]
