"""Burned-in review: each image of a case held back for text burned into its pixels, shown to
the educator, who blanks rectangles of it or confirms it clean.

The image is the held de-identified copy (:mod:`.held`), the one the teaching collection gets
once the decision is made; the decision goes through the case service exactly as the API's
``POST /api/cases/{id}/instances/{sop}/review`` does (PS3.15 E.3.1 Clean Pixel Data), audited
first. Rectangles come from the form's numeric fields, which the viewer's drawing fills in, so
the page works with the keyboard alone. Blanking is shown before it is done: a preview step
draws the rectangles black over the image, and only its "Blank these regions" applies them.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from radcase_pacs.web.changes import record_change
from radcase_pacs.web.context import Web, who
from radcase_pacs.web.forms import field, submitted
from radcase_pacs.web.teach.held import NotShowable, frames_body, held_manifest
from teaching.cases.errors import Conflict, InvalidField
from teaching.cases.models import Case, InstanceState, PixelReview, PixelReviewIn, RegionIn

MAX_REGIONS = 100
NUMBERS = ("x", "y", "width", "height", "frame")
STATUS = {
    PixelReview.PENDING: "Waiting for review",
    PixelReview.BLANKED: "Blanked",
    PixelReview.CONFIRMED_CLEAN: "Confirmed clean",
    PixelReview.NOT_NEEDED: "No review needed",
}
NOTICES = {
    "blanked": "The regions were blanked; the image is in the teaching collection.",
    "clean": "Confirmed clean; the image is in the teaching collection.",
}


def review_url(case_id: str, sop: str | None = None) -> str:
    return f"/teach/cases/{case_id}/review" + (f"?sop={sop}" if sop else "")


def region_rows(form: FormData) -> list[dict[str, str]]:
    """The rectangle rows of the form (``x-0``, ``width-0``...), blank rows left out."""
    indices = sorted(
        {
            int(m.group(1))
            for name in form
            if (m := re.fullmatch(r"(?:x|y|width|height)-(\d{1,3})", name))
        }
    )
    rows = []
    for index in indices[:MAX_REGIONS]:
        row = {name: field(form, f"{name}-{index}", limit=20).strip() for name in NUMBERS}
        if any(row[name] for name in NUMBERS[:4]):
            rows.append(row)
    return rows


def parsed_regions(rows: list[dict[str, str]]) -> tuple[list[RegionIn], list[str]]:
    """The rows as regions, or sentences naming each rectangle and field that is wrong."""
    regions, errors = [], []
    for number, row in enumerate(rows, start=1):
        values: dict[str, Any] = {}
        for name in NUMBERS:
            text = row[name]
            if not text and name == "frame":
                continue
            if not re.fullmatch(r"-?\d{1,7}", text):
                errors.append(f"Rectangle {number}, {name}: enter a whole number of pixels.")
                continue
            values[name] = int(text)
        if len(values) < 4:
            continue
        try:
            regions.append(RegionIn.model_validate(values))
        except ValidationError as exc:
            for item in exc.errors():
                name = ".".join(str(p) for p in item["loc"])
                errors.append(f"Rectangle {number}, {name}: {item['msg'].lower()}.")
    return regions, errors


def review_routes(web: Web) -> list[Route]:
    cases = web.deployment.cases

    def held_data(tenant: str, case_id: str, sop: str) -> bytes | None:
        inst = cases.store.instance(tenant, case_id, sop)
        if inst is None or inst.review is not PixelReview.PENDING or inst.pending_key is None:
            return None
        return cases.teaching.with_tenant(tenant).held(inst.pending_key)

    async def render(
        request: Request,
        case: Case,
        chosen: InstanceState | None,
        *,
        rows: list[dict[str, str]] | None = None,
        errors: list[str] | None = None,
        preview: bool = False,
        status: int = 200,
    ) -> Response:
        tenant = who(request).tenant
        flagged = [i for i in case.instances if i.burned_in]
        manifest, problem = None, ""
        if chosen is not None and chosen.review is PixelReview.PENDING:
            data = await run_in_threadpool(held_data, tenant, case.id, chosen.sop_instance_uid)
            if data is not None:
                url = f"/teach/cases/{case.id}/review/{chosen.sop_instance_uid}"
                try:
                    manifest = await run_in_threadpool(
                        held_manifest,
                        data,
                        url,
                        case.teaching_study_instance_uid,
                        chosen.series_instance_uid,
                    )
                except NotShowable as exc:
                    problem = f"This image cannot be shown here: {exc}."
        shown_rows = list(rows or [])
        if not preview:
            shown_rows.append(dict.fromkeys(NUMBERS, ""))
        context = {
            "case": case,
            "flagged": flagged,
            "chosen": chosen,
            "status_names": STATUS,
            "pending": [i for i in flagged if i.review is PixelReview.PENDING],
            "manifest": manifest,
            "multi_frame": bool(manifest and manifest["series"][0]["images"][0]["frames"] > 1),
            "problem": problem,
            "rows": shown_rows,
            "errors": errors or [],
            "preview": preview,
            "notice": NOTICES.get(request.query_params.get("notice", ""), ""),
        }
        return web.pages.render(request, "review.html", context, status_code=status)

    def choose(case: Case, sop: str) -> InstanceState | None:
        flagged = [i for i in case.instances if i.burned_in]
        if sop:
            return next((i for i in flagged if i.sop_instance_uid == sop), None)
        pending = [i for i in flagged if i.review is PixelReview.PENDING]
        return pending[0] if pending else None

    async def page(request: Request) -> Response:
        case = await run_in_threadpool(
            cases.get, who(request).tenant, request.path_params["case_id"]
        )
        sop = request.query_params.get("sop", "")[:64]
        chosen = choose(case, sop)
        if sop and chosen is None:
            message = "That image is not one of this case's images held for review."
            return web.pages.render(request, "error.html", {"message": message}, status_code=404)
        return await render(request, case, chosen)

    async def decide(request: Request) -> Response:
        tenant = who(request).tenant
        case = await run_in_threadpool(cases.get, tenant, request.path_params["case_id"])
        form = await submitted(request, web.signing_key)
        sop = field(form, "sop", limit=64)
        chosen = choose(case, sop) if sop else None
        if chosen is None:
            return await render(
                request, case, None, errors=["Image: choose an image to review."], status=400
            )
        if chosen.review is not PixelReview.PENDING:
            message = "This image has been reviewed already; its decision stands."
            return await render(request, case, chosen, errors=[message], status=409)
        action = field(form, "action", limit=20)
        rows = region_rows(form)
        if action == "add":
            return await render(request, case, chosen, rows=rows)
        if action == "edit":
            return await render(request, case, chosen, rows=rows)
        if action == "clean":
            body = PixelReviewIn(action="confirm_clean")
            detail = f"case_id={case.id} sop={chosen.sop_instance_uid} confirm_clean"
        elif action in ("preview", "blank"):
            regions, errors = parsed_regions(rows)
            if not regions and not errors:
                errors = ["Rectangles: draw or enter at least one rectangle to blank."]
            if errors:
                return await render(request, case, chosen, rows=rows, errors=errors, status=400)
            if action == "preview":
                return await render(request, case, chosen, rows=rows, preview=True)
            body = PixelReviewIn(action="blank", regions=regions)
            detail = f"case_id={case.id} sop={chosen.sop_instance_uid} blank regions={len(regions)}"
        else:
            return await render(
                request, case, chosen, rows=rows, errors=["Choose what to do."], status=400
            )
        await record_change(web, request, "case.review", detail)
        try:
            await run_in_threadpool(cases.review, tenant, case.id, chosen.sop_instance_uid, body)
        except InvalidField as exc:
            errors = [f"Rectangles: {exc.message}."]
            return await render(request, case, chosen, rows=rows, errors=errors, status=400)
        except Conflict as exc:
            return await render(
                request, case, chosen, rows=rows, errors=[f"{exc.message}."], status=409
            )
        notice = "blanked" if body.action == "blank" else "clean"
        return RedirectResponse(f"/teach/cases/{case.id}/review?notice={notice}", 303)

    async def frames(request: Request) -> Response:
        """The held copy's frames for the viewer (``frames``: ``1`` or ``1,2,3``)."""
        tenant = who(request).tenant
        case_id, sop = request.path_params["case_id"], request.path_params["sop_instance_uid"]
        listed = request.path_params["frames"]
        if not re.fullmatch(r"\d{1,6}(,\d{1,6}){0,63}", listed):
            return Response(
                "frame list: numbers 1 or more, comma-separated\n", 400, media_type="text/plain"
            )
        await run_in_threadpool(cases.get, tenant, case_id)
        data = await run_in_threadpool(held_data, tenant, case_id, sop[:64])
        if data is None:
            return Response("no such image held for review\n", 404, media_type="text/plain")
        try:
            answer = await run_in_threadpool(frames_body, data, [int(n) for n in listed.split(",")])
        except NotShowable as exc:
            return Response(f"{exc}\n", 406, media_type="text/plain")
        if answer is None:
            return Response("no such frame\n", 404, media_type="text/plain")
        body, media_type = answer
        headers = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}
        return Response(body, media_type=media_type, headers=headers)

    return [
        Route("/teach/cases/{case_id}/review", page, methods=["GET"]),
        Route("/teach/cases/{case_id}/review", decide, methods=["POST"]),
        Route(
            "/teach/cases/{case_id}/review/{sop_instance_uid}/frames/{frames}",
            frames,
            methods=["GET"],
        ),
    ]
