"""Quizzes through the JSON API, on the embedded default and on PostgreSQL + Redis + S3:
questions, a case presented as an unknown, server-side grading and ratings, due-queue
limits, groups and assignments, cohort progress, CSV and xAPI."""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from radcase_pacs.settings import Settings
from tests.teaching.learning_world import (
    World,
    add_case,
    add_question,
    answer_for,
    free_text,
    locate,
    multiple_choice,
    world,
)

SECRETS = {
    "title": "Zebra-title-7731",
    "diagnosis": "Unicorn-diagnosis-4410",
    "findings": "Walrus-findings-9120",
    "discussion": "Narwhal-discussion-5532",
}
FREE_TAG = "Okapi-tag-2208"


@pytest.fixture
def w(server_settings: Settings) -> Iterator[World]:
    with world(server_settings) as built:
        yield built


def start(w: World, user: str, body: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = w.ok(user, "POST", "/api/quiz/sessions", 201, json=body)
    return result


def item_url(session: dict[str, Any], position: int) -> str:
    return f"/api/quiz/sessions/{session['id']}/items/{position}"


def answer(
    w: World, user: str, session: dict[str, Any], position: int, body: dict[str, Any]
) -> dict[str, Any]:
    result: dict[str, Any] = w.ok(user, "POST", item_url(session, position) + "/answer", json=body)
    return result


def questions_by_id(w: World, case: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {q["id"]: q for q in w.ok("edu", "GET", f"/api/cases/{case['id']}/questions")}


# -- authoring ------------------------------------------------------------------------------


def test_questions_are_authored_and_validated(w: World) -> None:
    case = add_case(w, title="Authoring")
    made = [add_question(w, case, body) for body in (multiple_choice(), free_text(), locate(case))]
    assert [q["position"] for q in made] == [0, 1, 2]
    listed = w.ok("edu", "GET", f"/api/cases/{case['id']}/questions")
    assert [q["key"]["kind"] for q in listed] == ["multiple_choice", "free_text", "locate"]

    replaced = w.ok(
        "edu",
        "PUT",
        f"/api/cases/{case['id']}/questions/{made[0]['id']}",
        json=multiple_choice(["a", "c"]),
    )
    assert replaced["key"]["correct"] == ["a", "c"] and replaced["position"] == 0
    w.ok("edu", "DELETE", f"/api/cases/{case['id']}/questions/{made[1]['id']}", 204)
    assert len(w.ok("edu", "GET", f"/api/cases/{case['id']}/questions")) == 2

    bad: list[tuple[dict[str, Any], list[Any]]] = [
        (
            {**locate(case), "key": {**locate(case)["key"], "sop_instance_uid": "1.2.3"}},
            ["body", "key", "sop_instance_uid"],
        ),
        ({**multiple_choice(["z"])}, ["body", "key", "multiple_choice"]),
        (
            {
                **locate(case),
                "key": {
                    **locate(case)["key"],
                    "region": {"shape": "polygon", "points": [[0, 0], [1, 1], [2, 2]]},
                },
            },
            ["body", "key", "locate", "region", "polygon"],
        ),
        (
            {**free_text(), "key": {"kind": "free_text", "accepted": []}},
            ["body", "key", "free_text", "accepted"],
        ),
        ({"prompt": "", "key": free_text()["key"]}, ["body", "prompt"]),
    ]
    for body, loc in bad:
        response = w.call("edu", "POST", f"/api/cases/{case['id']}/questions", json=body)
        assert response.status_code == 422, response.text
        assert any(d["loc"][: len(loc)] == loc for d in response.json()["detail"]), response.text
    missing = w.call("edu", "POST", "/api/cases/" + "0" * 24 + "/questions", json=free_text())
    assert missing.status_code == 404
    assert w.call("ann", "GET", f"/api/cases/{case['id']}/questions").status_code == 403


# -- the unknown case -------------------------------------------------------------------------


def test_title_and_diagnosis_stay_hidden_until_answered(w: World) -> None:
    case = add_case(
        w,
        title=SECRETS["title"],
        diagnosis=SECRETS["diagnosis"],
        findings=SECRETS["findings"],
        discussion=SECRETS["discussion"],
        differential=[SECRETS["diagnosis"] + " mimic"],
        history="Sudden dyspnoea after a fall.",
        tags={"categories": ["TCE302"], "modalities": ["CT"], "free": [FREE_TAG]},
    )
    questions = {
        q["id"]: q
        for q in (
            add_question(w, case, multiple_choice()),
            add_question(w, case, free_text()),
        )
    }
    before: list[str] = []

    def seen(response: Any) -> Any:
        before.append(response.text)
        return response

    session = seen(w.call("ann", "POST", "/api/quiz/sessions", json={"source": "due"})).json()
    assert len(session["items"]) == 2
    seen(w.call("ann", "GET", f"/api/quiz/sessions/{session['id']}"))
    first = seen(w.call("ann", "GET", item_url(session, 1))).json()
    assert first["case"]["history"] == "Sudden dyspnoea after a fall."
    assert first["case"]["teaching_study_instance_uid"] == case["teaching_study_instance_uid"]
    seen(w.call("ann", "POST", item_url(session, 1) + "/hint"))
    study = case["teaching_study_instance_uid"]
    for url in (
        "/api/assignments",
        "/api/progress",
        "/api/progress/history",
        "/api/progress.csv",
        "/api/xapi/statements",
        "/api/program",
        "/api/me",
        f"/teaching/dicomweb/studies?StudyInstanceUID={study}&includefield=all",
        f"/teaching/dicomweb/studies/{study}/metadata",
        f"/teaching/dicomweb/studies/{study}/series",
    ):
        assert seen(w.call("ann", "GET", url)).status_code < 400, url
    assert seen(w.call("ann", "GET", f"/api/cases/{case['id']}")).status_code == 403

    q1 = questions[first["question"]["id"]]
    result = seen(
        w.call("ann", "POST", item_url(session, 1) + "/answer", json=answer_for(q1, True))
    )
    assert result.status_code == 200 and result.json()["revealed"] is None
    seen(w.call("ann", "GET", item_url(session, 1)))
    second = seen(w.call("ann", "GET", item_url(session, 2))).json()
    for url in ("/api/progress", "/api/progress/history", "/api/xapi/statements"):
        seen(w.call("ann", "GET", url))

    for text in before:
        for name, secret in {**SECRETS, "free tag": FREE_TAG}.items():
            assert secret not in text, f"the {name} leaked before the answer: {text[:300]}"

    q2 = questions[second["question"]["id"]]
    done = answer(w, "ann", session, 2, answer_for(q2, False))
    assert done["revealed"]["title"] == SECRETS["title"]
    assert done["revealed"]["diagnosis"] == SECRETS["diagnosis"]
    assert done["revealed"]["findings"] == SECRETS["findings"]
    assert w.ok("ann", "GET", item_url(session, 1))["revealed"]["title"] == SECRETS["title"]


# -- grading and ratings ----------------------------------------------------------------------


def test_answers_are_graded_on_the_server(w: World) -> None:
    case = add_case(w, title="Grading")
    questions = [
        add_question(w, case, multiple_choice(["b", "c"])),
        add_question(w, case, free_text()),
        add_question(w, case, locate(case)),
    ]
    session = start(w, "ann", {"source": "tags"})
    by_position = {i["position"]: i["question_id"] for i in session["items"]}
    by_id = {q["id"]: q for q in questions}
    kinds = {p: by_id[q]["key"]["kind"] for p, q in by_position.items()}
    position = {kind: p for p, kind in kinds.items()}

    mismatch = w.call(
        "ann",
        "POST",
        item_url(session, position["free_text"]) + "/answer",
        json={"kind": "multiple_choice", "selected": ["a"]},
    )
    assert mismatch.status_code == 422 and mismatch.json()["detail"][0]["loc"] == ["body", "kind"]
    partial = answer(
        w,
        "ann",
        session,
        position["multiple_choice"],
        {"kind": "multiple_choice", "selected": ["b"]},
    )
    assert partial["correct"] is False and partial["solution"]["correct"] == ["b", "c"]
    synonym = answer(
        w,
        "ann",
        session,
        position["free_text"],
        {"kind": "free_text", "text": "Tension, under PNEUMOTHORAX"},
    )
    assert synonym["correct"] is True
    sop = case["instances"][0]["sop_instance_uid"]
    border = answer(
        w,
        "ann",
        session,
        position["locate"],
        {"kind": "locate", "sop_instance_uid": sop, "frame": 1, "x": 6, "y": 4},
    )
    assert border["correct"] is True

    again = w.call(
        "ann",
        "POST",
        item_url(session, 1) + "/answer",
        json=answer_for(by_id[by_position[1]], True),
    )
    assert again.status_code == 409
    assert w.call("bob", "GET", item_url(session, 1)).status_code == 404
    assert w.call("ann", "GET", item_url(session, 9)).status_code == 404
    assert w.call("ann", "GET", "/api/quiz/sessions/nothex").status_code == 422
    bad = w.call("ann", "POST", item_url(session, 1) + "/answer", json={"kind": "essay"})
    assert bad.status_code == 422


def test_ratings_follow_correctness_speed_and_hints(w: World) -> None:
    case = add_case(w, title="Ratings")
    questions = {q["id"]: q for q in (add_question(w, case, multiple_choice()) for _ in range(4))}
    session = start(w, "ann", {"source": "tags"})
    plan = [  # (answers right, seconds taken, asks for the hint, expected rating)
        (True, 5, False, "easy"),
        (True, 45, False, "good"),
        (True, 5, True, "good"),
        (False, 2, False, "again"),
    ]
    for (right, seconds, hinted, rating), item in zip(plan, session["items"], strict=True):
        w.ok("ann", "GET", item_url(session, item["position"]))
        if hinted:
            assert w.ok("ann", "POST", item_url(session, item["position"]) + "/hint") == {
                "hint": "Think of the apex."
            }
        w.clock.advance(seconds=seconds)
        result = answer(
            w, "ann", session, item["position"], answer_for(questions[item["question_id"]], right)
        )
        assert (result["correct"], result["rating"], result["hinted"]) == (right, rating, hinted)
        assert result["duration_ms"] == seconds * 1000
    history = w.ok("ann", "GET", "/api/progress/history")["reviews"]
    assert [r["rating"] for r in history] == [p[3] for p in plan]
    assert "hard" not in {r["rating"] for r in history}


def due_session(w: World, user: str = "ann") -> dict[str, Any]:
    return start(w, user, {"source": "due"})


def answer_all(
    w: World,
    session: dict[str, Any],
    right: bool,
    questions: dict[str, dict[str, Any]],
    seconds: float = 30,
) -> list[dict[str, Any]]:
    results = []
    for item in session["items"]:
        w.ok("ann", "GET", item_url(session, item["position"]))
        w.clock.advance(seconds=seconds)
        results.append(
            answer(
                w,
                "ann",
                session,
                item["position"],
                answer_for(questions[item["question_id"]], right),
            )
        )
    return results


def test_intervals_grow_with_good_and_fall_back_after_again(w: World) -> None:
    case = add_case(w, title="Intervals")
    questions = {q["id"]: q for q in [add_question(w, case, free_text())]}
    intervals: list[timedelta] = []
    for _ in range(6):
        session = due_session(w)
        assert len(session["items"]) == 1
        (result,) = answer_all(w, session, True, questions)
        assert result["rating"] == "good"
        due = datetime.fromisoformat(result["card"]["due"])
        intervals.append(due - w.clock.now)
        assert due_session(w)["items"] == []  # nothing due until then
        w.clock.now = due
    review_intervals = intervals[1:]  # the first Good leaves the learning step
    assert all(b > a for a, b in itertools.pairwise(review_intervals)), intervals
    assert review_intervals[-1] > timedelta(days=20)

    (lapse,) = answer_all(w, due_session(w), False, questions)
    assert (lapse["rating"], lapse["card"]["state"]) == ("again", "relearning")
    assert datetime.fromisoformat(lapse["card"]["due"]) - w.clock.now <= timedelta(minutes=10)
    w.clock.now = datetime.fromisoformat(lapse["card"]["due"])
    (relearnt,) = answer_all(w, due_session(w), True, questions)
    after = datetime.fromisoformat(relearnt["card"]["due"]) - w.clock.now
    assert relearnt["card"]["state"] == "review"
    assert after < review_intervals[-1]


def test_the_due_queue_honours_the_daily_limits(w: World) -> None:
    w.ok("edu", "PUT", "/api/program", json={"new_per_day": 6, "reviews_per_day": 3})
    questions: dict[str, dict[str, Any]] = {}
    for n in range(2):
        case = add_case(w, title=f"Limits {n}")
        for _ in range(3):
            question = add_question(w, case, free_text())
            questions[question["id"]] = question
    w.ok("edu", "PUT", "/api/program", json={"new_per_day": 2, "reviews_per_day": 3})
    first = due_session(w)
    assert len(first["items"]) == 2  # two new cards a day
    answer_all(w, first, True, questions)
    assert due_session(w)["items"] == []  # no new card left today, none due yet

    w.ok("edu", "PUT", "/api/program", json={"new_per_day": 6, "reviews_per_day": 3})
    rest = due_session(w)
    assert len(rest["items"]) == 4  # the day's allowance grew to 6, 2 used
    answer_all(w, rest, False, questions)  # all 6 now in learning, due in minutes
    w.clock.advance(minutes=30)
    due = due_session(w)
    assert len(due["items"]) == 3  # due reviews are capped at 3 a day
    progress = w.ok("ann", "GET", "/api/progress")
    assert progress["overall"]["due_now"] == 6 and progress["new_available"] == 0
    answer_all(w, due, True, questions)
    assert due_session(w)["items"] == []  # the cap is spent for today

    w.clock.now = w.clock.now.replace(hour=8) + timedelta(days=1)
    assert len(due_session(w)["items"]) == 3  # a new day: the cap is whole again
    assert w.ok("ann", "GET", "/api/progress/history")["total"] == 2 + 4 + 3
    assert w.ok("ann", "GET", "/api/progress")["new_left_today"] == 6


def test_due_reviews_come_in_due_order(w: World) -> None:
    case = add_case(w, title="Order")
    questions = {q["id"]: q for q in (add_question(w, case, free_text()) for _ in range(3))}
    session = due_session(w)
    answered_at = {}
    for item in session["items"]:  # answered at different times: different due times
        w.ok("ann", "GET", item_url(session, item["position"]))
        w.clock.advance(minutes=1 + 2 * item["position"])
        result = answer(
            w, "ann", session, item["position"], answer_for(questions[item["question_id"]], False)
        )
        answered_at[item["question_id"]] = result["card"]["due"]
    w.clock.advance(days=1)
    order = [i["question_id"] for i in due_session(w)["items"]]
    assert order == sorted(answered_at, key=answered_at.__getitem__)


# -- groups, assignments and cohorts ----------------------------------------------------------


def test_assignments_cohort_progress_and_csv(w: World) -> None:
    hard = add_case(w, title="Often missed", tags={"categories": ["TCE306"], "modalities": ["MR"]})
    easy = add_case(w, title="Rarely missed", tags={"categories": ["TCE302"]})
    draft = add_case(w, title="Still a draft", publish=False)
    for case in (hard, easy, draft):
        add_question(w, case, free_text())

    bad = w.call("edu", "POST", "/api/groups", json={"name": "PGY1", "members": ["ann", "nobody"]})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "members", 1]
    group = w.ok(
        "edu", "POST", "/api/groups", 201, json={"name": "PGY1", "members": ["ann", "bob"]}
    )
    assignment = w.ok(
        "edu",
        "POST",
        f"/api/groups/{group['id']}/assignments",
        201,
        json={"title": "Week 1", "case_ids": [hard["id"], easy["id"], draft["id"]]},
    )
    unknown_case = w.call(
        "edu",
        "POST",
        f"/api/groups/{group['id']}/assignments",
        json={"title": "x", "case_ids": ["0" * 24]},
    )
    assert unknown_case.status_code == 422
    assert [a["id"] for a in w.ok("ann", "GET", "/api/assignments")] == [assignment["id"]]
    assert w.call("ann", "GET", "/api/groups").status_code == 403
    assert w.call("ann", "GET", f"/api/groups/{group['id']}/progress").status_code == 403

    for user, right_on_easy in (("ann", True), ("bob", False)):
        session = start(w, user, {"source": "assignment", "assignment_id": assignment["id"]})
        assert [i["case_id"] for i in session["items"]] == [hard["id"], easy["id"]]  # no draft
        for item in session["items"]:
            q = questions_by_id(w, hard if item["case_id"] == hard["id"] else easy)
            w.ok(user, "GET", item_url(session, item["position"]))
            right = item["case_id"] == easy["id"] and right_on_easy
            w.ok(
                user,
                "POST",
                item_url(session, item["position"]) + "/answer",
                json=answer_for(q[item["question_id"]], right),
            )

    w.ok("edu", "PUT", f"/api/groups/{group['id']}", json={"name": "PGY1", "members": ["bob"]})
    outsider = w.call(
        "ann",
        "POST",
        "/api/quiz/sessions",
        json={"source": "assignment", "assignment_id": assignment["id"]},
    )
    assert outsider.status_code == 404
    w.ok(
        "edu", "PUT", f"/api/groups/{group['id']}", json={"name": "PGY1", "members": ["ann", "bob"]}
    )

    cohort = w.ok("edu", "GET", f"/api/groups/{group['id']}/progress")
    assert cohort["overall"]["reviews"] == 4 and cohort["overall"]["correct"] == 1
    assert {s["learner"]: s["overall"]["correct"] for s in cohort["learners"]} == {
        "ann": 1,
        "bob": 0,
    }
    assert cohort["most_missed"][0]["case_id"] == hard["id"]
    assert cohort["most_missed"][0]["wrong"] == 2 and cohort["most_missed"][0]["miss_rate"] == 1
    neuro = {t["key"]: t for t in cohort["by_category"]}["TCE306"]
    assert (neuro["reviews"], neuro["correct"]) == (2, 0)

    rows = list(
        csv.DictReader(
            io.StringIO(w.call("edu", "GET", f"/api/groups/{group['id']}/progress.csv").text)
        )
    )
    assert len(rows) == 4 and {r["learner"] for r in rows} == {"ann", "bob"}
    mine = list(csv.DictReader(io.StringIO(w.call("ann", "GET", "/api/progress.csv").text)))
    assert [r["correct"] for r in mine] == ["0", "1"]
    assert all(r["state_before"] == "new" for r in mine)

    w.ok("edu", "DELETE", f"/api/assignments/{assignment['id']}", 204)
    assert w.ok("ann", "GET", "/api/assignments") == []
    w.ok("edu", "DELETE", f"/api/groups/{group['id']}", 204)
    assert w.call("edu", "GET", f"/api/groups/{group['id']}").status_code == 404


# -- learning records -------------------------------------------------------------------------


def test_xapi_statements(w: World) -> None:
    case = add_case(
        w,
        title="xAPI case",
        tags={"categories": ["TCE301"], "modalities": ["CR"], "level": "TCE202"},
    )
    questions = {q["id"]: q for q in (add_question(w, case, free_text()) for _ in range(3))}
    session = start(w, "ann", {"source": "tags"})
    answer_all(w, session, True, questions)
    bob = start(w, "bob", {"source": "tags"})
    w.ok("bob", "GET", item_url(bob, 1))
    w.ok(
        "bob",
        "POST",
        item_url(bob, 1) + "/answer",
        json=answer_for(questions[bob["items"][0]["question_id"]], False),
    )

    page = w.ok("ann", "GET", "/api/xapi/statements?limit=2")
    assert len(page["statements"]) == 4 and page["more"]
    rest = w.client.get(page["more"], headers=w.as_("ann")).json()
    statements = page["statements"] + rest["statements"]
    assert rest["more"] == "" and len(statements) == 6
    assert [s["verb"]["display"]["en-US"] for s in statements] == ["answered", "passed"] * 3
    first = statements[0]
    assert first["actor"]["account"]["name"] == "ann"
    assert first["object"]["id"].endswith(f"/api/cases/{case['id']}")
    assert first["result"]["success"] is True and first["result"]["duration"] == "PT30S"
    extensions = first["context"]["extensions"]
    values = {key.rsplit("/", 1)[1]: value for key, value in extensions.items()}
    assert values["category"] == ["TCE301"] and values["modality"] == ["CR"]
    assert values["level"] == "TCE202" and values["fsrs"]["after"]["state"] in {
        "learning",
        "review",
    }
    assert len({s["id"] for s in statements}) == 6

    others = w.call("ann", "GET", "/api/xapi/statements?learner=bob")
    assert others.status_code == 422
    assert others.json()["detail"][0]["loc"] == ["query", "learner"]
    naive = w.call("edu", "GET", "/api/xapi/statements?since=2026-01-01T00:00:00")
    assert naive.status_code == 422 and naive.json()["detail"][0]["loc"] == ["query", "since"]
    everyone = w.ok("edu", "GET", "/api/xapi/statements")["statements"]
    assert {s["actor"]["name"] for s in everyone} == {"ann", "bob"}
    assert [s["verb"]["display"]["en-US"] for s in everyone][-2:] == ["answered", "failed"]
    only_bob = w.ok("edu", "GET", "/api/xapi/statements?learner=bob")["statements"]
    assert len(only_bob) == 2
    later = (w.clock.now + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert w.ok("edu", "GET", f"/api/xapi/statements?since={later}")["statements"] == []


def test_the_learning_endpoints_are_in_the_openapi_document(w: World) -> None:
    paths = w.ok("ann", "GET", "/api/openapi.json")["paths"]
    for path in (
        "/cases/{case_id}/questions",
        "/quiz/sessions",
        "/quiz/sessions/{session_id}/items/{position}/answer",
        "/progress",
        "/progress.csv",
        "/groups/{group_id}/progress",
        "/xapi/statements",
        "/program",
    ):
        assert path in paths, path
    program = w.call("edu", "PUT", "/api/program", json={"desired_retention": 1.5})
    assert program.status_code == 422
    assert program.json()["detail"][0]["loc"] == ["body", "desired_retention"]
    zone = w.call("edu", "PUT", "/api/program", json={"timezone": "Mars/Olympus"})
    assert zone.status_code == 422
    assert w.call("ann", "PUT", "/api/program", json={}).status_code == 403
