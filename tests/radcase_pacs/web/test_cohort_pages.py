"""The educators' groups, assignments, program settings and cohort progress pages over HTTP,
with authentication on: an educator signed in through the sign-in form makes a group and
assigns cases by choice and by tags, learners answer through the API's quiz routes, and the
educator reads the answers on the group's progress page and in its CSV. Every change is
audited; learners are refused; another institution's educator finds nothing."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from radcase_pacs.auth.principal import Role
from radcase_pacs.settings import Settings
from tests.radcase_pacs.web.test_signin import csrf_of
from tests.teaching.learning_world import (
    PASSWORD,
    World,
    add_case,
    add_question,
    answer_for,
    free_text,
    world,
)

B = "hospital-b"


@pytest.fixture
def w(tmp_path: Path) -> Iterator[World]:
    users = {"edu": Role.EDUCATOR, "ann": Role.LEARNER, "bob": Role.LEARNER}
    with world(Settings(data_dir=tmp_path / "data"), users) as made:
        store = made.client.app.state.auth.users  # type: ignore[attr-defined]
        store.ensure_institution(B, "Hospital B")
        store.add_user("b-edu", B, Role.EDUCATOR, PASSWORD)
        store.add_user("b-learner", B, Role.LEARNER, PASSWORD)
        yield made


def browser(w: World, username: str) -> TestClient:
    """A browser signed in as ``username`` through the sign-in form."""
    client = TestClient(w.client.app, follow_redirects=False)
    answer = client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "next": "/", "csrf": ""},
        headers={"Origin": "http://testserver"},
    )
    assert answer.status_code == 303, answer.text
    return client


def post(client: TestClient, url: str, form: dict[str, Any]) -> httpx.Response:
    token = csrf_of(client.get("/").text)
    return client.post(url, data={**form, "csrf": token})


def made_id(response: httpx.Response) -> str:
    assert response.status_code == 303, response.text
    found = re.match(r"/teach/groups/([0-9a-f]{24})", response.headers["location"])
    assert found is not None, response.headers["location"]
    return found.group(1)


def answer_assignment(w: World, user: str, assignment_id: str, right: set[str]) -> None:
    """``user`` answers every question of the assignment through the API, right on the
    cases in ``right``."""
    session = w.ok(
        user,
        "POST",
        "/api/quiz/sessions",
        201,
        json={"source": "assignment", "assignment_id": assignment_id},
    )
    for item in session["items"]:
        url = f"/api/quiz/sessions/{session['id']}/items/{item['position']}"
        questions = w.ok("edu", "GET", f"/api/cases/{item['case_id']}/questions")
        question = next(q for q in questions if q["id"] == item["question_id"])
        w.ok(user, "GET", url)
        w.ok(
            user,
            "POST",
            url + "/answer",
            json=answer_for(question, item["case_id"] in right),
        )


def audited(w: World, actor: str) -> list[str]:
    """The actions ``actor`` changed through the teaching pages, oldest first."""
    log = w.client.app.state.audit  # type: ignore[attr-defined]
    _, entries = log.search(None, actor=actor, limit=500)
    return [e.action for e in reversed(entries) if e.route.startswith("POST /teach/")]


def test_an_educator_groups_assigns_and_reads_the_answers(w: World) -> None:
    hard = add_case(w, title="Often missed", tags={"categories": ["TCE306"], "modalities": ["MR"]})
    easy = add_case(w, title="Rarely missed", tags={"categories": ["TCE302"], "modalities": ["CT"]})
    draft = add_case(w, title="Still a draft", tags={"categories": ["TCE302"]}, publish=False)
    for case in (hard, easy, draft):
        add_question(w, case, free_text())
    edu = browser(w, "edu")

    program = post(
        edu,
        "/teach/program",
        {
            "desired_retention": "0.9",
            "new_per_day": "20",
            "reviews_per_day": "200",
            "fast_answer_seconds": "20",
            "timezone": "Europe/Paris",
        },
    )
    assert program.status_code == 303
    assert w.ok("ann", "GET", "/api/program")["timezone"] == "Europe/Paris"

    listing = edu.get("/teach/groups")
    assert listing.status_code == 200
    assert 'value="ann"' in listing.text and 'value="bob"' in listing.text
    assert "b-learner" not in listing.text and 'value="edu"' not in listing.text
    group_id = made_id(post(edu, "/teach/groups", {"name": "PGY1", "members": ["ann", "bob"]}))
    page = edu.get(f"/teach/groups/{group_id}?notice=group")
    assert "Group created." in page.text and "Europe/Paris" in page.text
    assert "Often missed" in page.text and "Still a draft" not in page.text  # published only

    chosen = post(
        edu,
        f"/teach/groups/{group_id}/assignments",
        {
            "title": "Week 1",
            "due_at": "2026-01-09T18:00",
            "source": "cases",
            "case_ids": [hard["id"], easy["id"]],
        },
    )
    assert chosen.status_code == 303
    by_tags = post(
        edu,
        f"/teach/groups/{group_id}/assignments",
        {"title": "Chest", "source": "tags", "category": "TCE302"},
    )
    assert by_tags.status_code == 303
    assignments = {a["title"]: a for a in w.ok("ann", "GET", "/api/assignments")}
    assert assignments["Week 1"]["case_ids"] == [hard["id"], easy["id"]]
    assert assignments["Week 1"]["due_at"] == "2026-01-09T17:00:00Z"  # 18:00 in Paris
    assert assignments["Chest"]["case_ids"] == [easy["id"]]  # the draft is not published
    assert assignments["Chest"]["due_at"] is None
    page = edu.get(f"/teach/groups/{group_id}")
    assert "2026-01-09 18:00" in page.text and "Chest" in page.text

    answer_assignment(w, "ann", assignments["Week 1"]["id"], right={easy["id"]})
    answer_assignment(w, "bob", assignments["Week 1"]["id"], right=set())

    progress = edu.get(f"/teach/groups/{group_id}/progress")
    assert progress.status_code == 200
    text = progress.text
    assert '<th scope="row">ann</th>' in text and '<th scope="row">bob</th>' in text
    assert "Often missed" in text and "2 wrong of 2" in text
    rows = re.findall(r'<th scope="row">([^<]+)</th>', text.split('id="cases-title"')[1])
    assert rows == ["Often missed", "Rarely missed"]  # hardest first
    by_title = edu.get(f"/teach/groups/{group_id}/progress?sort=title")
    assert 'aria-sort="ascending"' in by_title.text
    assert edu.get(f"/teach/groups/{group_id}/progress?sort=nonsense").status_code == 200

    cohort = w.ok("edu", "GET", f"/api/groups/{group_id}/progress")
    cases = {c["case_id"]: c for c in cohort["by_case"]}
    assert (cases[hard["id"]]["error_rate"], cases[hard["id"]]["learners"]) == (1.0, 2)
    assert cases[easy["id"]]["error_rate"] == 0.5
    assert cases[hard["id"]]["difficulty"] > cases[easy["id"]]["difficulty"]

    export = text.split("download")[0].rsplit('href="', 1)[1].split('"')[0]
    assert export == f"/api/groups/{group_id}/progress.csv"
    exported = list(csv.DictReader(io.StringIO(edu.get(export).text)))
    assert len(exported) == 4 and {r["learner"] for r in exported} == {"ann", "bob"}

    renamed = post(edu, f"/teach/groups/{group_id}", {"name": "PGY1 2026", "members": ["ann"]})
    assert renamed.status_code == 303
    assert w.ok("edu", "GET", f"/api/groups/{group_id}")["members"] == ["ann"]
    removed = post(
        edu,
        f"/teach/groups/{group_id}/assignments/{assignments['Chest']['id']}/delete",
        {},
    )
    assert removed.status_code == 303
    assert [a["title"] for a in w.ok("ann", "GET", "/api/assignments")] == ["Week 1"]
    page = edu.get(f"/teach/groups/{group_id}")
    assert "removes the group and its 1 assignment" in page.text
    assert post(edu, f"/teach/groups/{group_id}/delete", {}).status_code == 303
    assert w.call("edu", "GET", f"/api/groups/{group_id}").status_code == 404
    assert "Group deleted." in edu.get("/teach/groups?notice=deleted").text

    assert audited(w, "edu") == [
        "program.update",
        "group.create",
        "assignment.create",
        "assignment.create",
        "group.update",
        "assignment.delete",
        "group.delete",
    ]


def test_bad_input_is_a_400_naming_the_field_and_changes_nothing(w: World) -> None:
    case = add_case(w, title="A case", tags={"categories": ["TCE301"]})
    edu = browser(w, "edu")
    nameless = post(edu, "/teach/groups", {"name": " ", "members": ["ann"]})
    assert nameless.status_code == 400 and "Name:" in nameless.text
    stranger = post(edu, "/teach/groups", {"name": "X", "members": ["ann", "b-learner"]})
    assert stranger.status_code == 400 and "Members: no user b-learner" in stranger.text
    assert w.ok("edu", "GET", "/api/groups") == []

    group_id = made_id(post(edu, "/teach/groups", {"name": "PGY2", "members": []}))
    url = f"/teach/groups/{group_id}/assignments"
    cases = {"title": "T", "source": "cases"}
    for form, says in (
        ({**cases, "case_ids": [case["id"]], "due_at": "friday"}, "Due: not a date and time"),
        ({**cases, "case_ids": ["f" * 24]}, "Cases: 1 of the chosen cases are not published"),
        (cases, "Cases: choose at least one published case."),
        ({"title": "T", "source": "tags"}, "Tags: choose at least a category"),
        ({"title": "T", "source": "tags", "category": "TCE302"}, "Tags: no published case"),
        ({"title": "T", "source": "tags", "modality": "XX"}, "Modality: no published case"),
        ({"title": "T", "source": "tags", "level": "nope"}, "Level: not an IHE TCE level"),
        ({"title": "", "source": "cases", "case_ids": [case["id"]]}, "Title:"),
        ({"title": "T"}, "Cases: choose the cases, or a set of tags."),
    ):
        answer = post(edu, url, form)
        assert answer.status_code == 400, form
        assert says in answer.text and "Nothing was changed" in answer.text, form
    assert w.ok("edu", "GET", f"/api/groups/{group_id}/assignments") == []

    bad = post(
        edu,
        "/teach/program",
        {
            "desired_retention": "2",
            "new_per_day": "many",
            "reviews_per_day": "200",
            "fast_answer_seconds": "20",
            "timezone": "Mars/Olympus",
        },
    )
    assert bad.status_code == 400
    for says in ("Desired retention:", "New per day:", "Timezone:"):
        assert says in bad.text
    assert w.ok("edu", "GET", "/api/program")["desired_retention"] == 0.9

    assert edu.get("/teach/groups/not-an-id").status_code == 404
    assert edu.get(f"/teach/groups/{'0' * 24}/progress").status_code == 404
    gone = post(edu, f"/teach/groups/{group_id}/assignments/{'0' * 24}/delete", {})
    assert gone.status_code == 404 and "no such assignment" in gone.text
    assert audited(w, "edu") == ["group.create"]


def test_learners_are_refused_and_another_institution_finds_nothing(w: World) -> None:
    edu = browser(w, "edu")
    group_id = made_id(post(edu, "/teach/groups", {"name": "Secret PGY1", "members": ["ann"]}))
    group_urls = (
        "/teach/groups",
        f"/teach/groups/{group_id}",
        f"/teach/groups/{group_id}/progress",
        "/teach/program",
    )

    ann = browser(w, "ann")
    for url in group_urls:
        refused = ann.get(url)
        assert refused.status_code == 403 and "Not allowed" in refused.text, url
    attempt = post(ann, f"/teach/groups/{group_id}/delete", {})
    assert attempt.status_code == 403

    other = browser(w, "b-edu")
    assert "Secret PGY1" not in other.get("/teach/groups").text
    assert 'value="ann"' not in other.get("/teach/groups").text
    assert 'value="b-learner"' in other.get("/teach/groups").text
    for url in group_urls[1:3]:
        missing = other.get(url)
        assert missing.status_code == 404 and "Secret PGY1" not in missing.text, url
    assert post(other, f"/teach/groups/{group_id}/delete", {}).status_code == 404
    renamed = post(other, f"/teach/groups/{group_id}", {"name": "Mine", "members": []})
    assert renamed.status_code == 404
    assert w.ok("edu", "GET", f"/api/groups/{group_id}")["name"] == "Secret PGY1"
    assert audited(w, "b-edu") == []


def test_administrators_set_the_program_but_keep_out_of_the_groups(w: World) -> None:
    admin = browser(w, "admin")
    page = admin.get("/teach/program")
    assert page.status_code == 200 and 'href="/teach/groups"' not in page.text
    assert 'value="UTC" selected' in page.text
    settings = {
        "desired_retention": "0.85",
        "new_per_day": "5",
        "reviews_per_day": "50",
        "fast_answer_seconds": "12.5",
        "timezone": "America/New_York",
    }
    assert post(admin, "/teach/program", settings).status_code == 303
    saved = admin.get("/teach/program?notice=saved")
    assert "Settings saved." in saved.text and 'value="America/New_York" selected' in saved.text
    assert w.ok("ann", "GET", "/api/program") == {
        "desired_retention": 0.85,
        "new_per_day": 5,
        "reviews_per_day": 50,
        "fast_answer_seconds": 12.5,
        "timezone": "America/New_York",
    }
    assert admin.get("/teach/groups").status_code == 403
    assert audited(w, "admin") == ["program.update"]
