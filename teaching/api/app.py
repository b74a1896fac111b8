"""Routes of the teaching JSON API, validated by pydantic and described at ``/openapi.json``.

Handlers are plain functions (FastAPI runs them on its thread pool): de-identifying a study
and the stores are blocking work. Every request gets a request id (``X-Request-ID``); errors
are answered by :mod:`teaching.api.errors`, an unexpected one as 500 naming that id.
"""

from collections.abc import Callable
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Query, Request, Response
from starlette.middleware import Middleware

from teaching.api.caller import Caller
from teaching.api.errors import HANDLERS
from teaching.api.learning import learning_router
from teaching.api.request_id import RequestIdMiddleware
from teaching.cases.codes import CATEGORIES, LEVELS
from teaching.cases.models import (
    Case,
    CaseCreate,
    CasePage,
    CaseStatus,
    CaseUpdate,
    PixelReviewIn,
)
from teaching.cases.service import CaseService
from teaching.cases.store import CaseFilter
from teaching.learning.service import LearningService

MAX_PAGE = 500


def create_api(
    service: CaseService, learning: LearningService, *, identify: Callable[[Request], Caller]
) -> FastAPI:
    api = FastAPI(
        title="RadCase PACS teaching API",
        version="1",
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
        exception_handlers=HANDLERS,
        middleware=[Middleware(RequestIdMiddleware)],
    )
    CallerDep = Annotated[Caller, Depends(identify)]

    @api.get("/codes", tags=["cases"], summary="The IHE TCE category and level codes")
    def codes() -> dict[str, dict[str, str]]:
        return {"categories": CATEGORIES, "levels": LEVELS}

    @api.post("/cases", status_code=201, tags=["cases"], response_model=Case)
    def create_case(body: CaseCreate, caller: CallerDep) -> Case:
        """A draft case from a clinical study (or some of its series): the study is
        de-identified into the teaching collection; ``key_images`` name clinical instances."""
        return service.create(caller.tenant, body, author=caller.user)

    @api.get("/cases", tags=["cases"], response_model=CasePage)
    def list_cases(
        caller: CallerDep,
        q: Annotated[str | None, Query(max_length=200, description="words, all must occur")] = None,
        status: CaseStatus | None = None,
        category: Annotated[str | None, Query(pattern=r"^TCE3(0[1-9]|1[01])$")] = None,
        level: Annotated[str | None, Query(pattern=r"^TCE20[1-3]$")] = None,
        modality: Annotated[str | None, Query(pattern=r"^[A-Z0-9_]{1,16}$")] = None,
        anatomy: Annotated[str | None, Query(max_length=64)] = None,
        tag: Annotated[str | None, Query(max_length=64)] = None,
        author: Annotated[str | None, Query(max_length=200)] = None,
        origin: Annotated[
            Literal["api", "kos"] | None,
            Query(description="api: made by an educator; kos: flagged from a workstation"),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
        offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    ) -> CasePage:
        where = CaseFilter(q, status, category, level, modality, anatomy, tag, author, origin)
        return service.search(caller.tenant, where, limit, offset)

    @api.get("/cases/{case_id}", tags=["cases"], response_model=Case)
    def read_case(case_id: str, caller: CallerDep) -> Case:
        return service.get(caller.tenant, case_id)

    @api.patch("/cases/{case_id}", tags=["cases"], response_model=Case)
    def update_case(case_id: str, body: CaseUpdate, caller: CallerDep) -> Case:
        """The fields given replace the stored ones; key images name teaching instances."""
        return service.update(caller.tenant, case_id, body)

    @api.post("/cases/{case_id}/publish", tags=["cases"], response_model=Case)
    def publish_case(case_id: str, caller: CallerDep) -> Case:
        """409 while an instance flagged for burned-in text awaits review."""
        return service.publish(caller.tenant, case_id)

    @api.post("/cases/{case_id}/unpublish", tags=["cases"], response_model=Case)
    def unpublish_case(case_id: str, caller: CallerDep) -> Case:
        """Back to draft: learners no longer meet the case (their review history of it
        stays); a case that is not published is answered as it is."""
        return service.unpublish(caller.tenant, case_id)

    @api.post(
        "/cases/{case_id}/instances/{sop_instance_uid}/review",
        tags=["cases"],
        response_model=Case,
    )
    def review_instance(
        case_id: str, sop_instance_uid: str, body: PixelReviewIn, caller: CallerDep
    ) -> Case:
        """Confirm a flagged instance's pixels are clean, or blank rectangles of it."""
        return service.review(caller.tenant, case_id, sop_instance_uid, body)

    @api.delete("/cases/{case_id}", status_code=204, tags=["cases"])
    def delete_case(case_id: str, caller: CallerDep) -> Response:
        """The case, its questions, and the teaching copies no other case uses; learners'
        review logs keep their records of it."""
        service.delete(caller.tenant, case_id)
        learning.authoring.forget_case(caller.tenant, case_id)
        return Response(status_code=204)

    api.include_router(learning_router(learning, identify))
    return api
