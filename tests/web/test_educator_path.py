"""An educator's whole path in Chromium at desktop size with the mouse, on the embedded
default with authentication on, from a study a PACS sent to a quiz a resident has answered:

sign in through the form; find the study in the clinical worklist (sent beforehand through
STOW-RS with an API key, as a PACS would: a CT series and a screen capture that the
de-identification holds back for burned-in text); make a case of it; blank the capture's text
by drawing a rectangle (the pixels are then zero in the teaching copy served over
/teaching/dicomweb); fill the case; write one question of each kind, the locate region drawn
with the mouse; preview a question and the case as a learner; publish; create a group with the
learner and assign the case. Then the learner, in a browser of their own, answers in the
learner's app, and the educator finds the answers on the group's progress page and in its CSV
export. axe-core checks every page visited; each screen is kept as a screenshot.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from radcase_pacs.app import create_app
from radcase_pacs.deployment import open_deployment
from radcase_pacs.settings import Settings
from tests.factories import multipart_body, to_bytes
from tests.radcase_pacs.web.authoring_world import CAPTURE_SIZE, TEXT_ROWS, capture, ct_stack
from tests.web.axe import assert_accessible
from tests.web.browser import DESKTOP, new_page, screenshot, serving
from tests.web.department import token
from tests.web.drawing import (
    FIRST_IMAGE,
    canvas_pixel,
    drag,
    screen,
    teaching_frame,
    viewer_ready,
    viewer_state,
)

pytestmark = pytest.mark.e2e

ADMIN_PASSWORD = "an admin password for the path"
EDUCATOR = "teacher"
LEARNER = "resident"
PASSWORD = "a long password for tests"
PATIENT = "TEACHING^CANDIDATE"
TITLE = "Round opacity on CT"
GROUP = "First years"
ASSIGNMENT = "Chest week"
FINDING = (40.0, 30.0, 8.0)
"""Column, row and radius of the bright disc on every CT slice (authoring_world.ct_stack)."""
WAIT = 30000
"""Milliseconds: the machine running the tests may be slow and busy."""


@dataclass(frozen=True)
class Site:
    base: str
    study_uid: str


def pacs_study() -> list[Dataset]:
    """A CT series and a burned-in screen capture of one patient's study."""
    study = generate_uid()
    instances = [*ct_stack(study), capture(study)]
    for ds in instances:
        ds.PatientName = PATIENT
        ds.PatientID = "TC-1"
        ds.AccessionNumber = "ACC-PATH-1"
    return instances


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """A server with an educator and a learner (made by the first admin) and a study the
    PACS sent with an API key, nothing else."""
    settings = Settings(
        data_dir=tmp_path / "data",
        auth="on",
        admin_password=ADMIN_PASSWORD,
        password_hash_rounds=4,
        dimse_port=0,
    )
    with open_deployment(settings) as deployment, serving(create_app(deployment)) as base:
        with httpx.Client(base_url=base, timeout=60) as client:
            admin = token(client, "admin", ADMIN_PASSWORD)
            for name, role in ((EDUCATOR, "educator"), (LEARNER, "learner")):
                made = client.post(
                    "/api/users",
                    json={"username": name, "password": PASSWORD, "role": role},
                    headers=admin,
                )
                assert made.status_code == 201, made.text
            key = client.post("/api/api-keys", json={"name": "pacs-router"}, headers=admin)
            assert key.status_code == 201, key.text
            instances = pacs_study()
            body, content_type = multipart_body([to_bytes(ds) for ds in instances])
            stored = client.post(
                "/dicomweb/studies",
                content=body,
                headers={
                    "X-API-Key": key.json()["token"],
                    "Content-Type": content_type,
                    "Accept": "application/dicom+json",
                },
            )
            assert stored.status_code == 200, stored.text
        yield Site(base, instances[0].StudyInstanceUID)


class Screens:
    """Every page checked by axe and kept as ``educator-desktop-NN-<screen>``, numbered in
    the order of the path."""

    def __init__(self) -> None:
        self.count = 0

    def check(self, page: Page, name: str) -> None:
        assert_accessible(page)
        self.count += 1
        screenshot(page, f"educator-desktop-{self.count:02d}-{name}")


def sign_in(
    page: Page, base: str, path: str, username: str, screens: Screens | None = None
) -> None:
    """Through the form the sign-in redirect shows, back to ``path``."""
    page.goto(base + path)
    page.wait_for_url(re.compile(r".*/login(\?.*)?$"))
    if screens is not None:
        screens.check(page, "sign-in")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base + path)


def notice(page: Page, text: str) -> None:
    page.get_by_role("status").filter(has_text=text).first.wait_for(timeout=WAIT)


def case_json(page: Page, base: str, case_id: str) -> dict[str, Any]:
    answer = page.request.get(f"{base}/api/cases/{case_id}")
    assert answer.ok, answer.text()
    found: dict[str, Any] = answer.json()
    return found


# -- the educator's part ----------------------------------------------------------------------


def find_and_make_case(page: Page, site: Site, screens: Screens) -> str:
    sign_in(page, site.base, "/teach/studies", EDUCATOR, screens)
    page.get_by_label("Patient name").fill("teaching^*")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**/teach/studies?*")
    link = page.get_by_role("link", name="TEACHING, CANDIDATE")
    assert link.count() == 1
    page.wait_for_function("() => [...document.images].every(i => i.complete)")
    screens.check(page, "studies")
    link.click()
    page.wait_for_url(f"**/teach/studies/{site.study_uid}")
    page.wait_for_function(FIRST_IMAGE, timeout=WAIT)
    screens.check(page, "study")
    page.get_by_label("Title").fill(TITLE)
    page.get_by_role("button", name="Make a teaching case").click()
    page.wait_for_url("**/teach/cases/*?notice=created")
    case_id = page.url.split("/teach/cases/")[1].split("?")[0]
    page.wait_for_function(FIRST_IMAGE, timeout=WAIT)
    screens.check(page, "case-made")
    return case_id


def fill_case(page: Page, case_id: str, screens: Screens) -> None:
    page.get_by_label("History").fill("52-year-old with a cough for six weeks.")
    page.get_by_label("Findings").fill("A round, well-defined opacity.")
    page.get_by_label("Diagnosis").fill("Hamartoma")
    page.get_by_label("Pulmonary").check()
    page.get_by_label("Level (IHE TCE)").select_option("TCE202")
    page.get_by_label("Modality").fill("CT")
    page.get_by_label("Anatomy").fill("chest, lung")
    page.get_by_label("Free tags").fill("solitary nodule")
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_url(f"**/teach/cases/{case_id}?notice=saved")
    page.wait_for_function(FIRST_IMAGE, timeout=WAIT)
    screens.check(page, "case-filled")


def blank_burned_in_text(page: Page, site: Site, case_id: str, screens: Screens) -> None:
    page.get_by_role("link", name="Burned-in review (1 to review)").click()
    page.wait_for_url(f"**/teach/cases/{case_id}/review")
    viewer_ready(page, WAIT)
    screens.check(page, "burned-in-review")
    # Across the capture's top rows, from a little inside the first pixel to a little inside
    # the last one of the text: whole pixels.
    drag(page, screen(page, -0.4, -0.4), screen(page, CAPTURE_SIZE - 0.6, TEXT_ROWS - 0.6))
    drawn = {n: page.locator(f'[name="{n}-0"]').input_value() for n in ("x", "y", "width")}
    assert drawn == {"x": "0", "y": "0", "width": str(CAPTURE_SIZE)}
    assert page.locator('[name="height-0"]').input_value() == str(TEXT_ROWS)
    screens.check(page, "burned-in-drawn")
    page.get_by_role("button", name="Preview the blanking").click()
    page.wait_for_selector("form[data-preview]")
    viewer_ready(page, WAIT)
    assert canvas_pixel(page, 10, 2)[:3] == [0, 0, 0]
    assert canvas_pixel(page, 10, TEXT_ROWS + 3)[:3] != [0, 0, 0]
    screens.check(page, "burned-in-preview")
    page.get_by_role("button", name="Blank these regions").click()
    page.wait_for_url(f"**/teach/cases/{case_id}/review?notice=blanked")
    assert "can be published" in page.locator("[data-gate]").inner_text()
    screens.check(page, "burned-in-blanked")

    case = case_json(page, site.base, case_id)
    (flagged,) = [i for i in case["instances"] if i["burned_in"]]
    url = (
        f"{site.base}/teaching/dicomweb/studies/{case['teaching_study_instance_uid']}"
        f"/series/{flagged['series_instance_uid']}/instances/{flagged['sop_instance_uid']}"
    )
    pixels = teaching_frame(page, url, CAPTURE_SIZE, CAPTURE_SIZE)
    assert (pixels[:TEXT_ROWS] == 0).all(), "the drawn rectangle is not blank"
    assert (pixels[TEXT_ROWS:] == 1000).all(), "pixels outside the rectangle changed"


def write_questions(page: Page, site: Site, case_id: str, screens: Screens) -> str:
    """One question of each kind; the SOP Instance UID of the locate question's image."""
    page.get_by_role("navigation", name="This case").get_by_role("link", name="Questions").click()
    page.wait_for_url(f"**/teach/cases/{case_id}/questions")
    screens.check(page, "questions-empty")

    page.get_by_role("link", name="Multiple choice").click()
    page.get_by_label("Prompt").fill("What is the most likely diagnosis?")
    for n, text in enumerate(["Pneumonia", "Hamartoma", "Metastasis", "Abscess"]):
        page.get_by_label(f"Option {n + 1}", exact=True).fill(text)
    page.get_by_label("Right answer: option 2").check()
    page.get_by_label("Feedback").fill("Popcorn calcification and fat.")
    page.get_by_label("Hint").fill("Look for fat.")
    screens.check(page, "question-multiple-choice")
    page.get_by_role("button", name="Save the question").click()
    notice(page, "Question added.")
    page.get_by_role("link", name="Back to the questions").click()

    page.get_by_role("link", name="Free-text diagnosis").click()
    page.get_by_label("Prompt").fill("Name the lesion.")
    page.get_by_label("Accepted answers").fill("Hamartoma")
    page.get_by_label("Synonyms").fill("pulmonary hamartoma\nchondroid hamartoma")
    screens.check(page, "question-free-text")
    page.get_by_role("button", name="Save the question").click()
    notice(page, "Question added.")
    page.get_by_role("link", name="Back to the questions").click()

    page.get_by_role("link", name="Locate the finding").click()
    viewer_ready(page, WAIT)
    page.get_by_label("Prompt").fill("Outline the lesion.")
    page.get_by_role("radio", name="Ellipse").check()
    x, y, r = FINDING
    drag(page, screen(page, x - r, y - r), screen(page, x + r, y + r))
    assert float(page.get_by_label("Centre column (cx)").input_value()) == pytest.approx(x, abs=0.6)
    assert float(page.get_by_label("Centre row (cy)").input_value()) == pytest.approx(y, abs=0.6)
    assert float(page.get_by_label("Half-width (rx)").input_value()) == pytest.approx(r, abs=0.6)
    sop = viewer_state(page)["sop"]
    assert page.locator('[name="sop"]').input_value() == sop
    screens.check(page, "question-locate-drawn")
    page.get_by_role("button", name="Save the question").click()
    notice(page, "Question added.")

    questions = page.request.get(f"{site.base}/api/cases/{case_id}/questions").json()
    assert [q["key"]["kind"] for q in questions] == ["multiple_choice", "free_text", "locate"]
    assert questions[0]["key"]["correct"] == ["b"]
    region = questions[2]["key"]["region"]
    assert region["shape"] == "ellipse" and questions[2]["key"]["sop_instance_uid"] == sop
    assert (region["cx"], region["cy"]) == (pytest.approx(x, abs=0.6), pytest.approx(y, abs=0.6))
    return str(sop)


def preview_as_learner(page: Page, case_id: str, screens: Screens) -> None:
    page.get_by_role("link", name="Preview as a learner").click()
    viewer_ready(page, WAIT)
    x, y, _ = FINDING
    page.mouse.click(*screen(page, x + 1, y + 1))
    page.get_by_role("button", name="Answer").click()
    page.get_by_role("status").filter(has_text="Right").wait_for(timeout=WAIT)
    viewer_ready(page, WAIT)
    screens.check(page, "question-preview")
    page.get_by_role("link", name="Back to the editor").click()
    page.wait_for_url(re.compile(r".*/questions/[^/?]+$"))
    page.get_by_role("navigation", name="This case").get_by_role("link", name="Questions").click()
    page.wait_for_url(f"**/teach/cases/{case_id}/questions")
    assert page.get_by_role("heading", name=re.compile("^3 questions")).count() == 1
    screens.check(page, "questions")
    page.get_by_role("navigation", name="This case").get_by_role("link", name="Case").click()
    page.wait_for_url(f"**/teach/cases/{case_id}")
    page.wait_for_function(FIRST_IMAGE, timeout=WAIT)
    page.get_by_role("link", name="As a learner will see it").click()
    page.wait_for_url(f"**/teach/cases/{case_id}/as-learner")
    page.wait_for_function(FIRST_IMAGE, timeout=WAIT)
    screens.check(page, "case-as-learner")


def publish(page: Page, site: Site, case_id: str, screens: Screens) -> None:
    page.goto(f"{site.base}/teach/cases/{case_id}")
    page.wait_for_function(FIRST_IMAGE, timeout=WAIT)
    page.get_by_role("button", name="Publish").click()
    page.wait_for_url(f"**/teach/cases/{case_id}?notice=published")
    page.wait_for_function(FIRST_IMAGE, timeout=WAIT)
    assert page.get_by_role("button", name="Unpublish").count() == 1
    screens.check(page, "case-published")


def group_and_assign(page: Page, screens: Screens) -> str:
    """A group of the learner with the case assigned; the group's page URL."""
    page.get_by_role("navigation", name="Teaching").get_by_role("link", name="Groups").click()
    page.wait_for_url("**/teach/groups")
    screens.check(page, "groups-empty")
    page.get_by_label("Name").fill(GROUP)
    page.get_by_role("group", name="Members").get_by_label(LEARNER).check()
    page.get_by_role("button", name="Create group").click()
    page.wait_for_url("**/teach/groups/*?notice=group")
    group_url = page.url.split("?")[0]
    screens.check(page, "group-made")
    page.get_by_label("Title").fill(ASSIGNMENT)
    page.get_by_label("Due date and time").fill("2030-01-31T17:00")
    page.get_by_role("group", name="Chosen cases").get_by_label(TITLE).check()
    page.get_by_role("button", name="Create assignment").click()
    page.wait_for_url(f"{group_url}?notice=assigned")
    assert page.get_by_role("row", name=re.compile(ASSIGNMENT)).count() == 1
    screens.check(page, "group-assigned")
    return group_url


# -- the learner's part -----------------------------------------------------------------------


def learner_answers(browser: Browser, site: Site, locate_sop: str, screens: Screens) -> None:
    """Right on the multiple choice and the locate question, wrong on the free text."""
    context = browser.new_context(**DESKTOP)
    try:
        page, problems = new_page(context)
        sign_in(page, site.base, "/", LEARNER)
        assert page.locator("[data-count=new]").inner_text() == "3"
        assert ASSIGNMENT in page.get_by_role("region", name="Assignments").inner_text()
        screens.check(page, "learner-today")
        page.get_by_role("button", name=f"Start {ASSIGNMENT}").click()
        for position in (1, 2, 3):
            page.wait_for_url(f"**/sessions/*/items/{position}")
            page.wait_for_function(FIRST_IMAGE, timeout=WAIT)
            if page.get_by_role("radio").count():
                page.get_by_role("radio", name="Hamartoma").check()
                kind = "multiple-choice"
            elif page.get_by_label("Your answer").count():
                page.get_by_label("Your answer").fill("pneumonia")
                kind = "free-text"
            else:
                page.wait_for_function(
                    "sop => document.querySelector('[data-viewer]')"
                    ".stackViewer.state().sop === sop",
                    arg=locate_sop,
                    timeout=WAIT,
                )
                x, y, _ = FINDING
                page.mouse.click(*screen(page, x, y))
                assert abs(float(page.locator("input[name=x]").input_value()) - x) <= 1
                kind = "locate"
            screens.check(page, f"learner-{kind}")
            page.get_by_role("button", name="Submit answer").click()
            page.wait_for_selector("#result")
            page.wait_for_function(FIRST_IMAGE, timeout=WAIT)
            verdict = page.locator("#result").inner_text()
            assert ("Not right" in verdict) == (kind == "free-text"), verdict
            screens.check(page, f"learner-{kind}-feedback")
            onward = "Next question" if position < 3 else "Finish: back to Today"
            page.get_by_role("link", name=onward).click()
        page.wait_for_url("**/?notice=done")
        problems.assert_none()
    finally:
        context.close()


# -- back to the educator ---------------------------------------------------------------------


def read_progress(page: Page, site: Site, group_url: str, case_id: str, screens: Screens) -> None:
    page.goto(group_url)
    page.get_by_role("link", name=f"Progress of {GROUP}").click()
    page.wait_for_url(f"{group_url}/progress")
    learner_row = page.get_by_role("row", name=re.compile(LEARNER))
    cells = learner_row.get_by_role("cell").all_inner_texts()
    assert cells[:2] == ["3", "67%"], cells  # three answers, two of them right
    missed = page.get_by_role("region", name="Most missed cases").inner_text()
    assert TITLE in missed and "1 wrong of 3" in missed
    case_row = page.get_by_role("region", name="Table of cases").get_by_role(
        "row", name=re.compile(TITLE)
    )
    assert case_row.get_by_role("cell").all_inner_texts()[:4] == ["1", "3", "1", "33%"]
    screens.check(page, "cohort-progress")

    export = page.get_by_role("link", name="Export the answers as CSV").get_attribute("href")
    assert export is not None
    answer = page.request.get(site.base + export)
    assert answer.ok and answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text())))
    assert len(rows) == 3
    assert {r["learner"] for r in rows} == {LEARNER} and {r["case_id"] for r in rows} == {case_id}
    by_kind = {r["kind"]: r["correct"] for r in rows}
    assert by_kind == {"multiple_choice": "1", "free_text": "0", "locate": "1"}


def test_an_educator_goes_from_a_pacs_study_to_a_cohorts_answers(
    site: Site, browser: Browser, desktop: BrowserContext
) -> None:
    page, problems = new_page(desktop)
    screens = Screens()
    case_id = find_and_make_case(page, site, screens)
    fill_case(page, case_id, screens)
    blank_burned_in_text(page, site, case_id, screens)
    locate_sop = write_questions(page, site, case_id, screens)
    preview_as_learner(page, case_id, screens)
    publish(page, site, case_id, screens)
    group_url = group_and_assign(page, screens)

    learner_answers(browser, site, locate_sop, screens)

    read_progress(page, site, group_url, case_id, screens)
    problems.assert_none()
