"""Routes of quizzes, spaced repetition and progress, under ``/api`` beside the cases.

Who may call which route is the deployment's access policy (educators write questions,
groups, assignments and program settings and read cohorts; every signed-in user takes
quizzes and reads their own progress). The routes themselves scope by the caller: a session,
a history, a progress report is always the caller's own, and only educators and admins read
other learners' records.
"""

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from teaching.api.caller import Caller
from teaching.cases.errors import InvalidField
from teaching.learning.models import (
    AnswerResult,
    Assignment,
    AssignmentIn,
    CohortProgress,
    Group,
    GroupIn,
    Hint,
    ItemView,
    LearnerProgress,
    ProgramSettings,
    ReviewPage,
    SessionStart,
    SessionView,
)
from teaching.learning.questions import Answer, Question, QuestionIn
from teaching.learning.service import LearningService

READERS_OF_OTHERS = frozenset({"educator", "admin", "service"})
MAX_PAGE = 500
HexId = Annotated[str, Path(pattern=r"^[0-9a-f]{24}$")]
Position = Annotated[int, Path(ge=1, le=100000)]


def csv_response(rows: Iterator[str], filename: str) -> StreamingResponse:
    return StreamingResponse(
        rows,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def learning_router(service: LearningService, identify: Callable[[Request], Caller]) -> APIRouter:
    authoring, quiz = service.authoring, service.quiz
    cohorts, reports = service.cohorts, service.reports
    router = APIRouter()
    CallerDep = Annotated[Caller, Depends(identify)]

    # -- questions (educators) --------------------------------------------------------

    @router.get("/cases/{case_id}/questions", tags=["questions"], response_model=list[Question])
    def list_questions(case_id: str, caller: CallerDep) -> list[Question]:
        """A case's questions with their keys and feedback."""
        return authoring.questions(caller.tenant, case_id)

    @router.post(
        "/cases/{case_id}/questions", status_code=201, tags=["questions"], response_model=Question
    )
    def add_question(case_id: str, body: QuestionIn, caller: CallerDep) -> Question:
        """Multiple choice, free-text diagnosis or locate-the-finding (a region on an image of
        the case's teaching copy)."""
        return authoring.add_question(caller.tenant, case_id, body)

    @router.put(
        "/cases/{case_id}/questions/{question_id}", tags=["questions"], response_model=Question
    )
    def replace_question(
        case_id: str, question_id: str, body: QuestionIn, caller: CallerDep
    ) -> Question:
        """Replaces the question; learners' cards for it keep their schedule."""
        return authoring.replace_question(caller.tenant, case_id, question_id, body)

    @router.delete("/cases/{case_id}/questions/{question_id}", status_code=204, tags=["questions"])
    def delete_question(case_id: str, question_id: str, caller: CallerDep) -> Response:
        authoring.delete_question(caller.tenant, case_id, question_id)
        return Response(status_code=204)

    # -- program settings -------------------------------------------------------------

    @router.get("/program", tags=["program"], response_model=ProgramSettings)
    def read_program(caller: CallerDep) -> ProgramSettings:
        """The institution's desired retention, daily limits, fast-answer time and time zone."""
        return authoring.program(caller.tenant)

    @router.put("/program", tags=["program"], response_model=ProgramSettings)
    def write_program(body: ProgramSettings, caller: CallerDep) -> ProgramSettings:
        return authoring.set_program(caller.tenant, body)

    # -- groups and assignments -------------------------------------------------------

    @router.get("/groups", tags=["groups"], response_model=list[Group])
    def list_groups(caller: CallerDep) -> list[Group]:
        return cohorts.groups(caller.tenant)

    @router.post("/groups", status_code=201, tags=["groups"], response_model=Group)
    def create_group(body: GroupIn, caller: CallerDep) -> Group:
        """A cohort of learners (usernames of the institution)."""
        return cohorts.create_group(caller.tenant, body, caller.user)

    @router.get("/groups/{group_id}", tags=["groups"], response_model=Group)
    def read_group(group_id: str, caller: CallerDep) -> Group:
        return cohorts.group(caller.tenant, group_id)

    @router.put("/groups/{group_id}", tags=["groups"], response_model=Group)
    def replace_group(group_id: str, body: GroupIn, caller: CallerDep) -> Group:
        return cohorts.replace_group(caller.tenant, group_id, body)

    @router.delete("/groups/{group_id}", status_code=204, tags=["groups"])
    def delete_group(group_id: str, caller: CallerDep) -> Response:
        cohorts.delete_group(caller.tenant, group_id)
        return Response(status_code=204)

    @router.get("/groups/{group_id}/assignments", tags=["groups"], response_model=list[Assignment])
    def group_assignments(group_id: str, caller: CallerDep) -> list[Assignment]:
        return cohorts.assignments(caller.tenant, group_id=group_id)

    @router.post(
        "/groups/{group_id}/assignments",
        status_code=201,
        tags=["groups"],
        response_model=Assignment,
    )
    def assign(group_id: str, body: AssignmentIn, caller: CallerDep) -> Assignment:
        """A set of cases for the group; members start a quiz session from it."""
        return cohorts.assign(caller.tenant, group_id, body, caller.user)

    @router.delete("/assignments/{assignment_id}", status_code=204, tags=["groups"])
    def delete_assignment(assignment_id: str, caller: CallerDep) -> Response:
        cohorts.delete_assignment(caller.tenant, assignment_id)
        return Response(status_code=204)

    @router.get("/assignments", tags=["quiz"], response_model=list[Assignment])
    def my_assignments(caller: CallerDep) -> list[Assignment]:
        """The assignments of the groups the caller belongs to."""
        return cohorts.assignments(caller.tenant, member=caller.user)

    @router.get("/groups/{group_id}/progress", tags=["progress"], response_model=CohortProgress)
    def cohort(group_id: str, caller: CallerDep) -> CohortProgress:
        """The group's figures, aggregated and per learner, and its most missed cases."""
        return cohorts.cohort(caller.tenant, group_id)

    @router.get("/groups/{group_id}/progress.csv", tags=["progress"])
    def cohort_csv(group_id: str, caller: CallerDep) -> StreamingResponse:
        """The group members' review logs as CSV."""
        return csv_response(cohorts.cohort_csv(caller.tenant, group_id), "cohort-reviews.csv")

    # -- quiz sessions ----------------------------------------------------------------

    @router.post("/quiz/sessions", status_code=201, tags=["quiz"], response_model=SessionView)
    def start_session(body: Annotated[SessionStart, Body()], caller: CallerDep) -> SessionView:
        """From a tag filter, from the caller's due reviews (within the program's daily
        limits) or from an assignment of one of the caller's groups."""
        return quiz.start(caller.tenant, caller.user, body)

    @router.get("/quiz/sessions/{session_id}", tags=["quiz"], response_model=SessionView)
    def read_session(session_id: HexId, caller: CallerDep) -> SessionView:
        return quiz.session(caller.tenant, caller.user, session_id)

    @router.get(
        "/quiz/sessions/{session_id}/items/{position}", tags=["quiz"], response_model=ItemView
    )
    def read_item(session_id: HexId, position: Position, caller: CallerDep) -> ItemView:
        """The case as an unknown and the question; the title and diagnosis come with the
        answer. The first read starts the answer time."""
        return quiz.item(caller.tenant, caller.user, session_id, position)

    @router.post(
        "/quiz/sessions/{session_id}/items/{position}/hint", tags=["quiz"], response_model=Hint
    )
    def hint(session_id: HexId, position: Position, caller: CallerDep) -> Hint:
        """The hint; an answer given after it cannot rate Easy."""
        return quiz.hint(caller.tenant, caller.user, session_id, position)

    @router.post(
        "/quiz/sessions/{session_id}/items/{position}/answer",
        tags=["quiz"],
        response_model=AnswerResult,
    )
    def answer(
        session_id: HexId,
        position: Position,
        body: Annotated[Answer, Body()],
        caller: CallerDep,
    ) -> AnswerResult:
        """Graded on the server; the FSRS card moves (wrong: Again, right: Good, fast and
        without hint: Easy) and the review is logged."""
        return quiz.answer(caller.tenant, caller.user, session_id, position, body)

    # -- progress and learning records --------------------------------------------------

    @router.get("/progress", tags=["progress"], response_model=LearnerProgress)
    def my_progress(caller: CallerDep) -> LearnerProgress:
        """Accuracy, retention, due counts and streaks, overall and by category, modality
        and level."""
        return reports.progress(caller.tenant, caller.user)

    @router.get("/progress/history", tags=["progress"], response_model=ReviewPage)
    def my_history(
        caller: CallerDep,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
        offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    ) -> ReviewPage:
        """The caller's review log, oldest first."""
        return reports.history(caller.tenant, caller.user, limit, offset)

    @router.get("/progress.csv", tags=["progress"])
    def my_history_csv(caller: CallerDep) -> StreamingResponse:
        return csv_response(reports.history_csv(caller.tenant, [caller.user]), "reviews.csv")

    @router.get("/xapi/statements", tags=["progress"])
    def statements(
        request: Request,
        caller: CallerDep,
        learner: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
        since: datetime | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
        offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    ) -> dict[str, object]:
        """xAPI 1.0.3 StatementResult: "answered" then "passed" or "failed" per answer, the
        case as the object. Learners get their own; educators, admins and service accounts (a
        learning record store) everyone's in the institution, or one learner's."""
        if since is not None and since.tzinfo is None:
            raise InvalidField(("since",), "give a time zone (e.g. Z)", where="query")
        if caller.role in READERS_OF_OTHERS:
            learners = None if learner is None else [learner]
        elif learner not in (None, caller.user):
            raise InvalidField(("learner",), "learners read their own records only", where="query")
        else:
            learners = [caller.user]
        origin = f"{request.url.scheme}://{request.url.netloc}"

        def more(next_offset: int) -> str:
            return str(request.url.include_query_params(offset=next_offset))

        return reports.statements(caller.tenant, learners, since, limit, offset, origin, more)

    return router
