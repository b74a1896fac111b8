"""The educators' clinical study browser: a worklist search, a study in the stack viewer, and
"Make a teaching case" from the whole study or the series chosen.

Everything is read from the clinical archive as the educator's institution holds it
(``with_tenant``): another institution's studies are neither listed nor opened (404, as for a
study that does not exist). These pages show patient data, so each search and each study
opened is recorded in the audit log before it is served (``clinical.search``,
``clinical.read``), as a request on the clinical DICOMweb root is; the thumbnails and the
viewer's frames come from that root, audited there.

A case is made as ``POST /api/cases`` makes it (the same model, the same service); the
teaching-file drafts radiologists flagged from their workstations (a Key Object Selection
"For Teaching File Export", IHE TCE) are listed on the search page to be picked up.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from radcase_pacs.audit.store import Action
from radcase_pacs.web.changes import record_change
from radcase_pacs.web.context import Web, who
from radcase_pacs.web.forms import field, submitted
from radcase_pacs.web.stack import stack_manifest
from radcase_pacs.web.teach.case_form import sentences
from radcase_pacs.web.teach.worklist import PAGE, read_search, study_row
from storage import json_values as jv
from storage.archive import Archive
from storage.attributes import BY_KEYWORD, Level
from storage.errors import NotFound
from storage.query import Query, condition, is_valid_uid
from storage.results import match_attributes
from teaching.cases.errors import InvalidField
from teaching.cases.models import CaseCreate, CaseStatus
from teaching.cases.store import CaseFilter

CLINICAL_ROOT = "/dicomweb"
DRAFTS_SHOWN = 20
MAX_SERIES = 1000


def manifest_json(manifest: dict[str, Any] | None) -> str:
    """The manifest as the viewer's embedded JSON: ``<`` escaped so that no value can close
    the script element."""
    return json.dumps(manifest, separators=(",", ":")).replace("<", "\\u003c")


def study_routes(web: Web) -> list[Route]:
    clinical = web.deployment.clinical
    cases = web.deployment.cases

    def archive(request: Request) -> Archive:
        return clinical.with_tenant(who(request).tenant)

    async def search_page(request: Request) -> Response:
        params = {k: v[:200] for k, v in request.query_params.items()}
        search = read_search(params, request.query_params.get("page", "1"))
        tenant = who(request).tenant
        drafts = await run_in_threadpool(
            cases.search,
            tenant,
            CaseFilter(status=CaseStatus.DRAFT, origin="kos"),
            DRAFTS_SHOWN,
            0,
        )
        query_text = urlencode({k: v for k, v in search.given.items() if v})
        context: dict[str, Any] = {
            "given": search.given,
            "errors": search.errors,
            "page": search.page,
            "rows": [],
            "more": False,
            "query": query_text,
            "drafts": drafts,
        }
        if search.query is None:
            return web.pages.render(request, "teach_studies.html", context, status_code=400)
        await record_change(web, request, Action.CLINICAL_SEARCH, query_text)
        query = search.query
        matches = await run_in_threadpool(archive(request).query, query, limit=PAGE + 1)
        context["rows"] = [study_row(m) for m in matches[:PAGE]]
        context["more"] = len(matches) > PAGE
        return web.pages.render(request, "teach_studies.html", context)

    def study_context(tenant: str, uid: str) -> dict[str, Any] | None:
        """The study's header, its series and the viewer's manifest; None when the
        institution holds no such study."""
        scoped = clinical.with_tenant(tenant)
        found = scoped.query(
            Query(Level.STUDY, (condition(BY_KEYWORD["StudyInstanceUID"], uid),)), limit=1
        )
        if not found:
            return None
        series = []
        for match in scoped.query(Query(Level.SERIES, study_uid=uid), limit=MAX_SERIES):
            values = match_attributes(match)
            series.append(
                {
                    "uid": match.series_uid,
                    "number": jv.first_int(values, "00200011"),
                    "modality": jv.text(values, "00080060") or "",
                    "description": jv.text(values, "0008103E") or "",
                    "instances": jv.first_int(values, "00201209"),
                }
            )
        series.sort(key=lambda s: (s["number"] is None, s["number"] or 0, s["uid"]))
        try:
            manifest: dict[str, Any] | None = stack_manifest(scoped, uid, CLINICAL_ROOT)
        except NotFound:
            manifest = None
        return {
            "study": study_row(found[0]),
            "series": series,
            "manifest": manifest_json(manifest),
            "viewable": bool(manifest and manifest["series"]),
        }

    async def opened(request: Request) -> dict[str, Any]:
        uid = request.path_params["study"]
        await record_change(web, request, Action.CLINICAL_READ, study_uid=uid[:64])
        context = None
        if is_valid_uid(uid):
            context = await run_in_threadpool(study_context, who(request).tenant, uid)
        if context is None:
            raise HTTPException(404, "There is no such study.")
        return context

    async def study_page(request: Request) -> Response:
        context = await opened(request)
        context.update(errors=[], title="", chosen=[], scope="study")
        return web.pages.render(request, "teach_study.html", context)

    async def make_case(request: Request) -> Response:
        form = await submitted(request, web.signing_key)
        context = await opened(request)
        uid = request.path_params["study"]
        title = field(form, "title", limit=1000)
        scope = field(form, "scope", limit=10) or "study"
        known = {s["uid"] for s in context["series"]}
        chosen = [v[:64] for v in form.getlist("series") if isinstance(v, str)][:MAX_SERIES]
        context.update(title=title, chosen=chosen, scope=scope, errors=[])
        errors = []
        if scope not in ("study", "series"):
            errors.append("Make the case from: choose the whole study or the chosen series.")
        elif scope == "series" and not chosen:
            errors.append("Series: choose at least one, or make the case from the whole study.")
        unknown = [s for s in chosen if s not in known]
        if scope == "series" and unknown:
            errors.append(f"Series: {len(unknown)} of those chosen are not in this study.")
        body = None
        try:
            body = CaseCreate.model_validate(
                {
                    "study_instance_uid": uid,
                    "title": title,
                    "series_instance_uids": chosen if scope == "series" else None,
                }
            )
        except ValidationError as exc:
            own = any(e.startswith("Series") for e in errors)
            errors += [e for e in sentences(exc) if not (own and e.startswith("Series"))]
        if errors or body is None:
            context["errors"] = errors
            return web.pages.render(request, "teach_study.html", context, status_code=400)
        series = body.series_instance_uids
        detail = "whole study" if series is None else f"series={len(series)}"
        await record_change(web, request, Action.CASE_CREATE, detail, study_uid=uid)
        principal = who(request)
        try:
            case = await run_in_threadpool(cases.create, principal.tenant, body, principal.user)
        except InvalidField as exc:
            context["errors"] = [f"Study: {exc.message}."]
            return web.pages.render(request, "teach_study.html", context, status_code=400)
        return RedirectResponse(f"/teach/cases/{case.id}?notice=created", 303)

    return [
        Route("/teach/studies", search_page, methods=["GET"]),
        Route("/teach/studies/{study}", study_page, methods=["GET"]),
        Route("/teach/studies/{study}", make_case, methods=["POST"]),
    ]
