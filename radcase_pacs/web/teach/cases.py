"""The educators' case pages: the library, the editor, the case as a learner will meet it,
publication, and deletion with its consequences stated first.

Every page reads and writes through the case service as the JSON API does (the same models,
the same rules: key images must be images of the case, a published case keeps its status
until it is unpublished, publication waits for the burned-in text review), inside the
educator's institution: another institution's case is a 404 page, like a case that does not
exist. Every change is recorded in the audit log before it is made (``case.update``,
``case.publish``, ``case.unpublish``, ``case.delete``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from radcase_pacs.web.changes import record_change
from radcase_pacs.web.context import Web, who
from radcase_pacs.web.forms import field, submitted
from radcase_pacs.web.stack import stack_manifest
from radcase_pacs.web.teach.case_form import case_values, read_form, sentences, shown, where
from radcase_pacs.web.teach.giveaways import Hit, find_giveaways
from radcase_pacs.web.teach.studies import manifest_json
from storage.errors import NotFound
from teaching.cases.codes import CATEGORIES, LEVELS
from teaching.cases.errors import Conflict, InvalidField
from teaching.cases.export import read_dataset
from teaching.cases.models import Case, CaseStatus, CaseUpdate, PixelReview
from teaching.cases.store import CaseFilter

TEACHING_ROOT = "/teaching/dicomweb"
PAGE = 25
STATUSES = {
    CaseStatus.DRAFT.value: "Draft",
    CaseStatus.AWAITING_PATHOLOGY.value: "Awaiting pathology",
    CaseStatus.PUBLISHED.value: "Published",
}
EDITABLE_STATUSES = {k: v for k, v in STATUSES.items() if k != CaseStatus.PUBLISHED.value}
ORIGINS = {"api": "Made by an educator", "kos": "Flagged from a workstation (KOS)"}
NOTICES = {
    "created": "Case made: the study was de-identified into the teaching collection.",
    "saved": "Saved.",
    "published": "Published: learners meet it from now on.",
    "unpublished": "Unpublished: back to draft, learners no longer meet it.",
    "deleted": "Case deleted.",
}
LIBRARY_FILTERS = ("q", "status", "category", "level", "modality", "anatomy", "tag", "author")


def case_url(case_id: str, part: str = "") -> str:
    return f"/teach/cases/{case_id}{part}"


def read_library(params: dict[str, str]) -> tuple[CaseFilter, dict[str, str], list[str]]:
    """The library's filters from the query string, as given, and their problems."""
    given = {name: params.get(name, "").strip()[:200] for name in (*LIBRARY_FILTERS, "origin")}
    errors = []
    checks: list[tuple[str, str, Callable[[str], bool]]] = [
        ("status", "Status", lambda v: v in STATUSES),
        ("category", "Category", lambda v: v in CATEGORIES),
        ("level", "Level", lambda v: v in LEVELS),
        ("origin", "Origin", lambda v: v in ORIGINS),
        ("modality", "Modality", lambda v: v.upper().isalnum() and len(v) <= 16),
        ("anatomy", "Anatomy", lambda v: len(v) <= 64),
        ("tag", "Tag", lambda v: len(v) <= 64),
    ]
    for name, label, valid in checks:
        if given[name] and not valid(given[name]):
            errors.append(f"{label}: {given[name][:64]!r} is not one of the choices.")
    if errors:
        return CaseFilter(), given, errors

    def value(name: str) -> str | None:
        return given[name] or None

    where = CaseFilter(
        text=value("q"),
        status=CaseStatus(given["status"]) if given["status"] else None,
        category=value("category"),
        level=value("level"),
        modality=given["modality"].upper() or None,
        anatomy=value("anatomy"),
        tag=value("tag"),
        author=value("author"),
        origin=value("origin"),
    )
    return where, given, []


def key_image_labels(manifest: dict[str, Any] | None) -> dict[tuple[str, int], str]:
    """(sop, frame) to "Series 2 · image 14", counted as the viewer counts: each frame of
    each image of a series, in order."""
    labels: dict[tuple[str, int], str] = {}
    for series in (manifest or {}).get("series", []):
        name = f"Series {series['number']}" if series["number"] is not None else "Series"
        position = 0
        for image in series["images"]:
            for frame in range(1, image["frames"] + 1):
                position += 1
                labels[(image["sop"], frame)] = f"{name} · image {position}"
    return labels


def case_routes(web: Web) -> list[Route]:
    cases = web.deployment.cases
    learning = web.deployment.learning
    teaching = web.deployment.teaching

    def notice(request: Request) -> str:
        return NOTICES.get(request.query_params.get("notice", ""), "")

    # -- the library ----------------------------------------------------------------------

    async def library(request: Request) -> Response:
        params = {k: v for k, v in request.query_params.items()}
        where, given, errors = read_library(params)
        page_text = request.query_params.get("page", "1")
        page = int(page_text) if page_text.isascii() and page_text.isdigit() else 1
        page = min(max(page, 1), 10**6)
        context: dict[str, Any] = {
            "given": given,
            "errors": errors,
            "page": page,
            "statuses": STATUSES,
            "categories": CATEGORIES,
            "levels": LEVELS,
            "origins": ORIGINS,
            "notice": notice(request),
            "query": urlencode({k: v for k, v in given.items() if v}),
            "total": 0,
            "cases": [],
            "pages": 1,
        }
        if errors:
            return web.pages.render(request, "teach_cases.html", context, status_code=400)
        found = await run_in_threadpool(
            cases.search, who(request).tenant, where, PAGE, (page - 1) * PAGE
        )
        context.update(total=found.total, cases=found.cases, pages=max(1, -(-found.total // PAGE)))
        return web.pages.render(request, "teach_cases.html", context)

    # -- the editor -----------------------------------------------------------------------

    def manifest_of(tenant: str, case: Case) -> dict[str, Any] | None:
        members = {i.sop_instance_uid for i in case.instances}
        archive = teaching.with_tenant(tenant)
        try:
            return stack_manifest(
                archive, case.teaching_study_instance_uid, TEACHING_ROOT, only=members
            )
        except NotFound:
            return None  # every image still held back for the burned-in review

    def load(tenant: str, case_id: str) -> Case:
        """The case, or :class:`CaseNotFound` (the 404 page) when the institution has none
        of that id."""
        return cases.get(tenant, case_id)

    def warnings(tenant: str, case: Case) -> list[Hit]:
        """The giveaways of the case in what its learners can read: the history and the
        metadata of every image of its teaching copy, held-back copies included (they join
        the collection once reviewed)."""
        documents: list[dict[str, Any]] = []
        archive = teaching.with_tenant(tenant)
        members = {i.sop_instance_uid for i in case.instances}
        try:
            for document in archive.documents(case.teaching_study_instance_uid):
                sop = document.get("00080018", {}).get("Value", [None])[0]
                if sop in members:
                    documents.append(document)
        except NotFound:
            pass
        for state in case.instances:
            if state.review is not PixelReview.PENDING:
                continue
            held = cases.store.instance(tenant, case.id, state.sop_instance_uid)
            if held is None or held.pending_key is None:
                continue
            dataset = read_dataset(archive.held(held.pending_key))
            documents.append(
                dataset.to_json_dict(
                    bulk_data_threshold=1024, bulk_data_element_handler=lambda _: ""
                )
            )
        answer = {"title": case.title, "diagnosis": case.diagnosis, "findings": case.findings}
        return find_giveaways(answer, case.history, documents)

    def editor_context(tenant: str, case_id: str) -> dict[str, Any]:
        case = load(tenant, case_id)
        manifest = manifest_of(tenant, case)
        return {
            "case": case,
            "manifest": manifest_json(manifest),
            "viewable": bool(manifest and manifest["series"]),
            "labels": key_image_labels(manifest),
            "warnings": warnings(tenant, case),
            "held_back": case.pending_reviews,
        }

    async def editor(
        request: Request,
        *,
        form: dict[str, Any] | None = None,
        errors: list[str] | None = None,
        status: int = 200,
    ) -> Response:
        tenant = who(request).tenant
        context = await run_in_threadpool(
            editor_context, tenant, request.path_params["case_id"][:100]
        )
        case: Case = context["case"]
        values = form if form is not None else case_values(case)
        context.update(
            form=values,
            errors=errors or [],
            notice="" if errors else notice(request),
            statuses=EDITABLE_STATUSES,
            status_names=STATUSES,
            categories=CATEGORIES,
            levels=LEVELS,
            origins=ORIGINS,
        )
        return web.pages.render(request, "teach_case.html", context, status_code=status)

    async def edit_page(request: Request) -> Response:
        return await editor(request)

    async def save(request: Request) -> Response:
        tenant = who(request).tenant
        case_id = request.path_params["case_id"][:100]
        current = await run_in_threadpool(load, tenant, case_id)
        form = await submitted(request, web.signing_key)
        published = current.status is CaseStatus.PUBLISHED
        values = read_form(form, published=published)
        try:
            body = CaseUpdate.model_validate(values)
        except ValidationError as exc:
            return await editor(request, form=shown(values), errors=sentences(exc), status=400)
        await record_change(web, request, "case.update", f"case_id={case_id}")
        try:
            await run_in_threadpool(cases.update, tenant, case_id, body)
        except InvalidField as exc:
            problem = f"{where(exc.field)}: {exc.message}."
            return await editor(request, form=shown(values), errors=[problem], status=400)
        except Conflict as exc:
            return await editor(request, form=shown(values), errors=[f"{exc.message}."], status=409)
        return RedirectResponse(case_url(case_id, "?notice=saved"), 303)

    async def as_learner(request: Request) -> Response:
        tenant = who(request).tenant
        context = await run_in_threadpool(
            editor_context, tenant, request.path_params["case_id"][:100]
        )
        return web.pages.render(request, "teach_case_learner.html", context)

    # -- publication ----------------------------------------------------------------------

    def publication(action: str, change: Callable[[str, str], Case], done: str) -> Any:
        async def handler(request: Request) -> Response:
            tenant = who(request).tenant
            case_id = request.path_params["case_id"][:100]
            await run_in_threadpool(load, tenant, case_id)
            await submitted(request, web.signing_key)
            await record_change(web, request, action, f"case_id={case_id}")
            try:
                await run_in_threadpool(change, tenant, case_id)
            except Conflict as exc:
                return await editor(request, errors=[_conflict(exc)], status=409)
            return RedirectResponse(case_url(case_id, f"?notice={done}"), 303)

        return handler

    # -- deletion -------------------------------------------------------------------------

    def consequences(tenant: str, case_id: str) -> dict[str, Any]:
        case = load(tenant, case_id)
        questions = learning.authoring.questions(tenant, case_id)
        assignments = [a for a in learning.cohorts.assignments(tenant) if case_id in a.case_ids]
        return {"case": case, "questions": len(questions), "assignments": assignments}

    async def delete_page(request: Request) -> Response:
        context = await run_in_threadpool(
            consequences, who(request).tenant, request.path_params["case_id"][:100]
        )
        return web.pages.render(request, "teach_case_delete.html", context)

    async def delete(request: Request) -> Response:
        tenant = who(request).tenant
        case_id = request.path_params["case_id"][:100]
        await run_in_threadpool(load, tenant, case_id)
        form = await submitted(request, web.signing_key)
        if field(form, "confirm", limit=10) != "yes":
            context = await run_in_threadpool(consequences, tenant, case_id)
            context["errors"] = ["Confirm: tick the box to delete the case."]
            return web.pages.render(request, "teach_case_delete.html", context, status_code=400)
        await record_change(web, request, "case.delete", f"case_id={case_id}")

        def remove() -> None:
            cases.delete(tenant, case_id)
            learning.authoring.forget_case(tenant, case_id)

        await run_in_threadpool(remove)
        return RedirectResponse("/teach/cases?notice=deleted", 303)

    return [
        Route("/teach/cases", library, methods=["GET"]),
        Route("/teach/cases/{case_id}", edit_page, methods=["GET"]),
        Route("/teach/cases/{case_id}", save, methods=["POST"]),
        Route("/teach/cases/{case_id}/as-learner", as_learner, methods=["GET"]),
        Route(
            "/teach/cases/{case_id}/publish",
            publication("case.publish", cases.publish, "published"),
            methods=["POST"],
        ),
        Route(
            "/teach/cases/{case_id}/unpublish",
            publication("case.unpublish", cases.unpublish, "unpublished"),
            methods=["POST"],
        ),
        Route("/teach/cases/{case_id}/delete", delete_page, methods=["GET"]),
        Route("/teach/cases/{case_id}/delete", delete, methods=["POST"]),
    ]


def _conflict(exc: Conflict) -> str:
    if exc.details:
        return f"Not published: {exc.message}. Review them on the burned-in review page."
    return f"{exc.message[:1].upper()}{exc.message[1:]}."
