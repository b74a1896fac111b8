"""The learner's pages: a quiz item (the question, then its feedback at the same address),
the hint and the answer posts, and progress.

``GET /sessions/{id}/items/{n}`` shows the case as an unknown with the stack viewer and the
answer form; ``POST .../hint`` and ``POST .../answer`` change the item and send the browser
back to it (303, post/redirect/get: a reload never posts twice), where it now shows the hint
or the feedback. The quiz service grades and schedules exactly as for the JSON API; what a
service refuses (no such session, answered twice, an answer of the wrong kind) is a page
saying so, with the way back, never a server error.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from radcase_pacs.auth.principal import Principal
from radcase_pacs.web.context import Web, who
from radcase_pacs.web.forms import field, submitted
from radcase_pacs.web.learn.progress import progress_route
from radcase_pacs.web.learn.question import item_context
from radcase_pacs.web.learn.today import item_url
from teaching.cases.errors import CaseError, Conflict, InvalidField, NotFound
from teaching.learning.questions import (
    Answer,
    FreeTextAnswer,
    LocateAnswer,
    MultipleChoiceAnswer,
)

SESSION_ID = re.compile(r"[0-9a-f]{24}")
MAX_POSITION = 100000
NO_SUCH_ITEM = "There is no such question among your quiz sessions."
ANSWER_FIELDS = {
    "multiple_choice": "Choose an answer first.",
    "free_text": "Type your answer first.",
    "locate": "Place a point on the image first.",
}


def address(request: Request) -> tuple[str, int]:
    """The session id and position of the URL; 404 for anything not shaped like one."""
    session_id = request.path_params["session_id"]
    position = request.path_params["position"]
    if not SESSION_ID.fullmatch(session_id) or not position.isdigit() or len(position) > 6:
        raise HTTPException(404, NO_SUCH_ITEM)
    number = int(position)
    if not 1 <= number <= MAX_POSITION:
        raise HTTPException(404, NO_SUCH_ITEM)
    return session_id, number


def read_answer(form: FormData) -> Answer:
    """The answer the form carries, for the kind of question it was made for."""
    kind = field(form, "kind", limit=20)
    try:
        if kind == "multiple_choice":
            selected = [v for v in form.getlist("option") if isinstance(v, str)]
            if selected:
                return MultipleChoiceAnswer(selected=selected)
        elif kind == "free_text":
            text = field(form, "text", limit=300).strip()
            if text:
                return FreeTextAnswer(text=text)
        elif kind == "locate":
            sop = field(form, "sop", limit=64)
            if sop:
                return LocateAnswer(
                    sop_instance_uid=sop,
                    frame=int(field(form, "frame", limit=6) or "1"),
                    x=float(field(form, "x", limit=32)),
                    y=float(field(form, "y", limit=32)),
                )
        else:
            raise InvalidField(("kind",), "This form does not say what kind of answer it holds.")
    except (ValidationError, ValueError):
        raise InvalidField((kind,), "This answer could not be read. Try again.") from None
    raise InvalidField((kind,), ANSWER_FIELDS[kind])


def learner_routes(web: Web) -> list[Route]:
    quiz = web.deployment.learning.quiz

    def refused(request: Request, exc: CaseError, back: str | None) -> Response:
        """A service's refusal as a page: what happened and where to go."""
        if isinstance(exc, NotFound):
            status, message, back = 404, NO_SUCH_ITEM, None
        elif isinstance(exc, Conflict) and "already answered" in exc.message:
            status, message = (
                409,
                "You have already answered this question; its feedback is on its page.",
            )
        elif isinstance(exc, Conflict):
            status, message = 409, _sentence(exc.message)
        elif isinstance(exc, InvalidField):
            status, message = 400, _sentence(exc.message)
        else:
            status, message = 400, _sentence(str(exc))
        context = {"message": message, "back": back}
        return web.pages.render(request, "problem.html", context, status_code=status)

    def gather(principal: Principal, session_id: str, position: int) -> dict[str, Any]:
        view = quiz.item(principal.tenant, principal.user, session_id, position)
        session = quiz.session(principal.tenant, principal.user, session_id)
        return item_context(web.deployment, principal, view, session, quiz.clock())

    async def item(request: Request) -> Response:
        session_id, position = address(request)
        principal = who(request)
        try:
            context = await run_in_threadpool(gather, principal, session_id, position)
        except CaseError as exc:
            return refused(request, exc, None)
        context["url"] = item_url(session_id, position)
        context["session_id"] = session_id
        return web.pages.render(request, "question.html", context)

    async def hint(request: Request) -> Response:
        session_id, position = address(request)
        principal = who(request)
        await submitted(request, web.signing_key)
        url = item_url(session_id, position)
        try:
            await run_in_threadpool(
                quiz.hint, principal.tenant, principal.user, session_id, position
            )
        except CaseError as exc:
            return refused(request, exc, url)
        return RedirectResponse(f"{url}#hint", 303)

    async def answer(request: Request) -> Response:
        session_id, position = address(request)
        principal = who(request)
        form = await submitted(request, web.signing_key)
        url = item_url(session_id, position)
        try:
            given = read_answer(form)
            await run_in_threadpool(
                quiz.answer, principal.tenant, principal.user, session_id, position, given
            )
        except CaseError as exc:
            return refused(request, exc, url)
        return RedirectResponse(f"{url}#result", 303)

    base = "/sessions/{session_id}/items/{position}"
    return [
        Route(base, item, methods=["GET"]),
        Route(f"{base}/hint", hint, methods=["POST"]),
        Route(f"{base}/answer", answer, methods=["POST"]),
        progress_route(web),
    ]


def _sentence(text: str) -> str:
    """A service message as a sentence of a page."""
    text = text.strip() or "That could not be done."
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else f"{text}."
