"""The educators' cohort pages in Chromium at desktop and phone size, on the embedded default
with authentication on: the groups list, a group (its assignments, the new-assignment form,
its members), the group's progress with a learner's answers in it, and the program's
settings. Each is axe-clean, does not scroll sideways on a phone, and is kept as a screenshot
(``teach-<page>-<size>``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import BrowserContext

from radcase_pacs.app import create_app
from radcase_pacs.deployment import open_deployment
from radcase_pacs.settings import Settings
from tests.web.axe import assert_accessible
from tests.web.browser import new_page, screenshot, serving
from tests.web.department import EDUCATOR, LEARNER, PASSWORD, build, token

pytestmark = pytest.mark.e2e

ADMIN_PASSWORD = "an admin password for the cohort pages"


@dataclass(frozen=True)
class Cohort:
    base: str
    group_id: str


def answer_everything(client: httpx.Client, department: Any) -> None:
    """The learner answers the three questions through the API: two right, one wrong, so
    that every table of the progress page has rows."""
    learner = token(client, LEARNER, PASSWORD)
    session = client.post("/api/quiz/sessions", json={"source": "due"}, headers=learner)
    assert session.status_code == 201, session.text
    kinds = {question_id: kind for kind, question_id in department.questions.items()}
    locate = department.locate
    answers = {
        "multiple_choice": {"kind": "multiple_choice", "selected": ["b"]},
        "free_text": {"kind": "free_text", "text": "pneumonia"},
        "locate": {
            "kind": "locate",
            "sop_instance_uid": locate["sop"],
            "frame": 1,
            "x": locate["x"],
            "y": locate["y"],
        },
    }
    items = session.json()["items"]
    assert len(items) == 3
    for item in items:
        url = f"/api/quiz/sessions/{session.json()['id']}/items/{item['position']}"
        assert client.get(url, headers=learner).status_code == 200
        given = client.post(
            url + "/answer", json=answers[kinds[item["question_id"]]], headers=learner
        )
        assert given.status_code == 200, given.text


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cohort]:
    """The department of tests/web/department.py, its learner's answers given."""
    folder: Path = tmp_path_factory.mktemp("cohort")
    settings = Settings(
        data_dir=folder / "data",
        auth="on",
        admin_password=ADMIN_PASSWORD,
        password_hash_rounds=4,
        dimse_port=0,
    )
    with open_deployment(settings) as deployment, serving(create_app(deployment)) as base:
        department = build(base, ADMIN_PASSWORD)
        with httpx.Client(base_url=base, timeout=60) as client:
            answer_everything(client, department)
            groups = client.get("/api/groups", headers=token(client, EDUCATOR, PASSWORD))
            assert groups.status_code == 200, groups.text
            (group,) = groups.json()
        yield Cohort(base, group["id"])


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_the_cohort_pages_are_accessible_and_pictured(
    size: str, request: pytest.FixtureRequest, cohort: Cohort
) -> None:
    context: BrowserContext = request.getfixturevalue(size)
    page, problems = new_page(context)
    page.goto(f"{cohort.base}/login")
    page.get_by_label("Username").fill(EDUCATOR)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{cohort.base}/")
    group = f"/teach/groups/{cohort.group_id}"
    pages = {
        "groups": ("/teach/groups", "First years"),
        "group": (group, "Chest week"),
        "group-progress": (f"{group}/progress", "1 wrong of 3"),
        "program": ("/teach/program", "Desired retention"),
    }
    for name, (path, expected) in pages.items():
        page.goto(cohort.base + path)
        assert expected in page.locator("main").inner_text(), f"{name} lacks {expected!r}"
        assert_accessible(page)
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{name} scrolls sideways at {size} size"
        screenshot(page, f"teach-{name}-{size}")
    problems.assert_none()
