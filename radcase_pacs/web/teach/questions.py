"""The question editor: a case's questions in order (moved up and down, deleted after a
confirmation), a form per question of each kind, and a preview as a learner.

Questions are written through the same authoring service as ``/api/cases/{id}/questions``
and validated with the same model (:class:`QuestionIn`), so a page accepts exactly what the
API accepts; every change is audited before it is made. A locate question's region is drawn
in the stack viewer over the teaching copy, or typed into the numeric fields.

The preview grades with :func:`teaching.learning.grading.grade`, the function the quiz uses,
and records nothing: no review, no card, no answer in anyone's progress.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from radcase_pacs.web.changes import record_change
from radcase_pacs.web.context import Web, who
from radcase_pacs.web.forms import field, submitted
from radcase_pacs.web.stack import stack_manifest
from radcase_pacs.web.teach.question_form import (
    KINDS,
    MAX_OPTIONS,
    Draft,
    blank,
    from_form,
    from_question,
    sentences,
    to_question,
)
from storage.errors import NotFound as ArchiveNotFound
from teaching.cases.errors import InvalidField, NotFound
from teaching.cases.models import Case
from teaching.learning.grading import grade
from teaching.learning.questions import (
    Answer,
    FreeTextKey,
    LocateKey,
    MultipleChoiceKey,
    Polygon,
    Question,
    QuestionIn,
    QuestionPrompt,
)

ANSWERS: TypeAdapter[Answer] = TypeAdapter(Answer)
NOTICES = {
    "created": "Question added.",
    "saved": "Question saved.",
    "deleted": "Question deleted.",
    "moved": "Order saved.",
}


def questions_url(case_id: str) -> str:
    return f"/teach/cases/{case_id}/questions"


def question_routes(web: Web) -> list[Route]:
    cases = web.deployment.cases
    authoring = web.deployment.learning.authoring

    async def case_of(request: Request) -> Case:
        return await run_in_threadpool(
            cases.get, who(request).tenant, request.path_params["case_id"]
        )

    async def listed(request: Request, case: Case) -> list[Question]:
        return await run_in_threadpool(authoring.questions, who(request).tenant, case.id)

    async def question_of(request: Request, case: Case) -> Question:
        wanted = request.path_params["question_id"]
        for question in await listed(request, case):
            if question.id == wanted:
                return question
        raise NotFound("question")

    def manifest_of(tenant: str, case: Case) -> dict[str, Any] | None:
        try:
            found = stack_manifest(
                cases.teaching.with_tenant(tenant), case.teaching_study_instance_uid
            )
        except ArchiveNotFound:
            return None
        return found if found["series"] else None

    # -- the list --------------------------------------------------------------------------

    async def list_page(request: Request) -> Response:
        case = await case_of(request)
        context = {
            "case": case,
            "questions": await listed(request, case),
            "kinds": KINDS,
            "notice": NOTICES.get(request.query_params.get("notice", ""), ""),
            "errors": [],
        }
        return web.pages.render(request, "questions.html", context)

    async def move(request: Request) -> Response:
        case = await case_of(request)
        question = await question_of(request, case)
        form = await submitted(request, web.signing_key)
        direction = field(form, "direction", limit=10)
        ordered = await listed(request, case)
        at = [q.id for q in ordered].index(question.id)
        to = at - 1 if direction == "up" else at + 1 if direction == "down" else -1
        if to < 0 or to >= len(ordered):
            return RedirectResponse(questions_url(case.id) + "?notice=moved", 303)
        await record_change(
            web,
            request,
            "question.update",
            f"case_id={case.id} question_id={question.id} move {direction}",
        )
        ordered[at], ordered[to] = ordered[to], ordered[at]
        tenant = who(request).tenant

        def renumber() -> None:
            for position, q in enumerate(ordered):
                if q.position != position:
                    body = QuestionIn(
                        prompt=q.prompt,
                        key=q.key,
                        feedback=q.feedback,
                        hint=q.hint,
                        position=position,
                    )
                    authoring.replace_question(tenant, case.id, q.id, body)

        await run_in_threadpool(renumber)
        return RedirectResponse(questions_url(case.id) + "?notice=moved", 303)

    async def confirm_delete(request: Request) -> Response:
        case = await case_of(request)
        question = await question_of(request, case)
        context = {"case": case, "question": question, "kinds": KINDS}
        return web.pages.render(request, "question_delete.html", context)

    async def delete(request: Request) -> Response:
        case = await case_of(request)
        question = await question_of(request, case)
        await submitted(request, web.signing_key)
        await record_change(
            web, request, "question.delete", f"case_id={case.id} question_id={question.id}"
        )
        await run_in_threadpool(
            authoring.delete_question, who(request).tenant, case.id, question.id
        )
        return RedirectResponse(questions_url(case.id) + "?notice=deleted", 303)

    # -- the editor ------------------------------------------------------------------------

    async def editor(
        request: Request,
        case: Case,
        draft: Draft,
        question: Question | None,
        errors: list[str] | None = None,
        status: int = 200,
    ) -> Response:
        tenant = who(request).tenant
        manifest = None
        if draft.kind == "locate":
            manifest = await run_in_threadpool(manifest_of, tenant, case)
        images = []
        for series in (manifest or {}).get("series", []):
            for number, image in enumerate(series["images"], start=1):
                label = f"{series['label']}, image {number}"
                images.append({"sop": image["sop"], "label": label, "frames": image["frames"]})
        if draft.kind == "locate" and not draft.sop and images:
            draft.sop = images[0]["sop"]
        context = {
            "case": case,
            "draft": draft,
            "question": question,
            "kind_name": KINDS[draft.kind],
            "manifest": manifest,
            "images": images,
            "errors": errors or [],
            "max_options": MAX_OPTIONS,
            "notice": NOTICES.get(request.query_params.get("notice", ""), ""),
        }
        return web.pages.render(request, "question_edit.html", context, status_code=status)

    async def new_page(request: Request) -> Response:
        case = await case_of(request)
        kind = request.query_params.get("kind", "")
        if kind not in KINDS:
            message = "Choose a kind of question: multiple choice, free text or locate."
            return web.pages.render(request, "error.html", {"message": message}, status_code=404)
        return await editor(request, case, blank(kind), None)

    async def edit_page(request: Request) -> Response:
        case = await case_of(request)
        question = await question_of(request, case)
        return await editor(request, case, from_question(question), question)

    async def save(request: Request, question: Question | None) -> Response:
        case = await case_of(request)
        form = await submitted(request, web.signing_key)
        kind = question.key.kind if question else field(form, "kind", limit=20)
        if kind not in KINDS:
            return web.pages.render(
                request,
                "error.html",
                {"message": "Kind: choose a kind of question."},
                status_code=400,
            )
        draft = from_form(form, kind)
        action = field(form, "action", limit=30)
        if kind == "multiple_choice" and action == "add-option":
            if len(draft.options) < MAX_OPTIONS:
                draft.options.append({"id": "", "text": "", "correct": False})
            return await editor(request, case, draft, question)
        if kind == "multiple_choice" and action.startswith("remove-option-"):
            index = action.removeprefix("remove-option-")
            if index.isdigit() and int(index) < len(draft.options):
                del draft.options[int(index)]
            return await editor(request, case, draft, question)
        body, errors = to_question(draft)
        if body is None:
            return await editor(request, case, draft, question, errors, 400)
        tenant = who(request).tenant
        try:
            if question is None:
                await record_change(
                    web, request, "question.create", f"case_id={case.id} kind={kind}"
                )
                made = await run_in_threadpool(authoring.add_question, tenant, case.id, body)
                return RedirectResponse(f"{questions_url(case.id)}/{made.id}?notice=created", 303)
            await record_change(
                web, request, "question.update", f"case_id={case.id} question_id={question.id}"
            )
            await run_in_threadpool(authoring.replace_question, tenant, case.id, question.id, body)
        except InvalidField as exc:
            where = "Image" if exc.field[-1] == "sop_instance_uid" else "Question"
            return await editor(request, case, draft, question, [f"{where}: {exc.message}."], 400)
        return RedirectResponse(f"{questions_url(case.id)}/{question.id}?notice=saved", 303)

    async def create(request: Request) -> Response:
        return await save(request, None)

    async def update(request: Request) -> Response:
        case = await case_of(request)
        return await save(request, await question_of(request, case))

    # -- preview as a learner --------------------------------------------------------------

    async def preview(
        request: Request,
        case: Case,
        question: Question,
        result: dict[str, Any] | None = None,
        errors: list[str] | None = None,
        status: int = 200,
    ) -> Response:
        key = question.key
        manifest = None
        if isinstance(key, LocateKey):
            manifest = await run_in_threadpool(manifest_of, who(request).tenant, case)
        context = {
            "case": case,
            "question": question,
            "shown": QuestionPrompt.of(question),
            "manifest": manifest,
            "result": result,
            "errors": errors or [],
        }
        return web.pages.render(request, "question_preview.html", context, status_code=status)

    async def preview_page(request: Request) -> Response:
        case = await case_of(request)
        return await preview(request, case, await question_of(request, case))

    async def preview_answer(request: Request) -> Response:
        case = await case_of(request)
        question = await question_of(request, case)
        form = await submitted(request, web.signing_key)
        key = question.key
        values: dict[str, Any] = {"kind": key.kind}
        if isinstance(key, MultipleChoiceKey):
            values["selected"] = [v for v in form.getlist("selected") if isinstance(v, str)][:26]
        elif isinstance(key, FreeTextKey):
            values["text"] = field(form, "text", limit=300)
        else:
            values["sop_instance_uid"] = field(form, "sop", limit=64) or key.sop_instance_uid
            frame = field(form, "frame", limit=10)
            values["frame"] = int(frame) if frame.isdigit() else key.frame
            for name in ("x", "y"):
                values[name] = field(form, name, limit=20).strip()
        try:
            answer = ANSWERS.validate_python(values)
        except ValidationError as exc:
            errors = [s.replace("Key:", "Answer:") for s in sentences(exc)]
            return await preview(request, case, question, errors=errors, status=400)
        right = grade(key, answer)
        result = {"right": right, "answer": answer.model_dump(mode="json")}
        if isinstance(key, LocateKey):
            result["overlays"] = _solution(key, answer.model_dump(mode="json"))
        return await preview(request, case, question, result=result)

    return [
        Route("/teach/cases/{case_id}/questions", list_page, methods=["GET"]),
        Route("/teach/cases/{case_id}/questions/new", new_page, methods=["GET"]),
        Route("/teach/cases/{case_id}/questions/new", create, methods=["POST"]),
        Route("/teach/cases/{case_id}/questions/{question_id}", edit_page, methods=["GET"]),
        Route("/teach/cases/{case_id}/questions/{question_id}", update, methods=["POST"]),
        Route("/teach/cases/{case_id}/questions/{question_id}/move", move, methods=["POST"]),
        Route(
            "/teach/cases/{case_id}/questions/{question_id}/delete", confirm_delete, methods=["GET"]
        ),
        Route("/teach/cases/{case_id}/questions/{question_id}/delete", delete, methods=["POST"]),
        Route(
            "/teach/cases/{case_id}/questions/{question_id}/preview", preview_page, methods=["GET"]
        ),
        Route(
            "/teach/cases/{case_id}/questions/{question_id}/preview",
            preview_answer,
            methods=["POST"],
        ),
    ]


def _solution(key: LocateKey, answer: dict[str, Any]) -> list[dict[str, Any]]:
    """The region and the point given, as viewer overlays."""
    region = key.region
    place = {"sop": key.sop_instance_uid, "frame": key.frame}
    if isinstance(region, Polygon):
        shape: dict[str, Any] = {
            **place,
            "kind": "polygon",
            "points": [list(p) for p in region.points],
        }
    else:
        shape = {
            **place,
            "kind": "ellipse",
            "cx": region.cx,
            "cy": region.cy,
            "rx": region.rx,
            "ry": region.ry,
        }
    shape["label"] = "The finding"
    point = {
        "sop": answer["sop_instance_uid"],
        "frame": answer["frame"],
        "kind": "point",
        "x": answer["x"],
        "y": answer["y"],
        "label": "Your answer",
    }
    return [shape, point]
