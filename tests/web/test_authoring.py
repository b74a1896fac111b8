"""The educators' authoring pages in Chromium, on the embedded default with authentication on:
a rectangle drawn on a flagged image and blanked (the pixels are zero in the teaching copy
served over /teaching/dicomweb), one question of each kind written with the locate region
drawn by mouse (desktop) and by touch (phone), the preview graded as the quiz grades, and
every page axe-clean at both sizes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from playwright.sync_api import BrowserContext, Page

from radcase_pacs.app import create_app
from radcase_pacs.deployment import open_deployment
from radcase_pacs.settings import Settings
from tests.radcase_pacs.web.authoring_world import (
    CAPTURE_SIZE,
    EDUCATOR,
    PASSWORD,
    TEXT_ROWS,
    Authoring,
    bearer,
    build,
    new_case,
)
from tests.web.axe import assert_accessible
from tests.web.browser import new_page, screenshot, serving, swipe
from tests.web.drawing import (
    canvas_pixel,
    drag,
    screen,
    shapes,
    teaching_frame,
    viewer_ready,
)

pytestmark = pytest.mark.e2e

ADMIN_PASSWORD = "a long admin password"


@dataclass
class Server:
    base: str
    first: Authoring

    def case(self) -> Authoring:
        """A case of its own for a test that changes it."""
        with httpx.Client(base_url=self.base, timeout=60) as client:
            return new_case(client, self.first.educator)

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        with httpx.Client(base_url=self.base, timeout=60) as client:
            answer = client.request(method, path, headers=self.first.educator, **kwargs)
            assert answer.is_success, answer.text
            return answer.json()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder: Path = tmp_path_factory.mktemp("authoring")
    settings = Settings(
        data_dir=folder / "data", auth="on", admin_password=ADMIN_PASSWORD, password_hash_rounds=4
    )
    with open_deployment(settings) as deployment, serving(create_app(deployment)) as base:
        with httpx.Client(base_url=base, timeout=60) as client:
            first = build(client, ADMIN_PASSWORD)
        yield Server(base, first)


# -- helpers --------------------------------------------------------------------------------


def signed_in(context: BrowserContext, server: Server, path: str) -> tuple[Page, Any]:
    page, problems = new_page(context)
    page.goto(f"{server.base}/login?next={path}")
    page.get_by_label("Username").fill(EDUCATOR)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{server.base}{path}")
    return page, problems


def teaching_pixels(page: Page, server: Server, case: Authoring) -> np.ndarray:
    """The flagged image's frame as the teaching root serves it, with the page's cookie."""
    url = (
        f"{server.base}/teaching/dicomweb/studies/{case.teaching_study}/series/"
        f"{case.flagged_series}/instances/{case.flagged_sop}"
    )
    return teaching_frame(page, url, CAPTURE_SIZE, CAPTURE_SIZE)


# -- burned-in review -----------------------------------------------------------------------


def test_a_rectangle_drawn_on_a_flagged_image_is_previewed_and_blanked(
    desktop: BrowserContext, server: Server
) -> None:
    case = server.case()
    page, problems = signed_in(desktop, server, f"/teach/cases/{case.case_id}/review")
    viewer_ready(page)
    assert (
        page.get_by_role("button", name="Draw", exact=True).get_attribute("aria-pressed") == "true"
    )
    # A drag a little past the text's corners: whole pixels, inside the image.
    drag(page, screen(page, -0.4, -0.4), screen(page, CAPTURE_SIZE - 0.6, TEXT_ROWS + 1.4))
    assert page.locator('[name="x-0"]').input_value() == "0"
    assert page.locator('[name="y-0"]').input_value() == "0"
    assert page.locator('[name="width-0"]').input_value() == str(CAPTURE_SIZE)
    assert page.locator('[name="height-0"]').input_value() == str(TEXT_ROWS + 2)
    # The bottom-right handle pulls the rectangle up by a row...
    drag(
        page,
        screen(page, CAPTURE_SIZE - 0.5, TEXT_ROWS + 1.5),
        screen(page, CAPTURE_SIZE - 0.5, TEXT_ROWS + 0.6),
    )
    assert page.locator('[name="height-0"]').input_value() == str(TEXT_ROWS + 1)
    # ...and the numeric field, the keyboard's way, sets it exactly.
    page.locator('[name="height-0"]').fill(str(TEXT_ROWS))
    (drawn,) = shapes(page)
    assert (drawn["x"], drawn["y"], drawn["width"], drawn["height"]) == (
        0,
        0,
        CAPTURE_SIZE,
        TEXT_ROWS,
    )
    screenshot(page, "authoring-review-drawn-desktop")
    page.get_by_role("button", name="Preview the blanking").click()
    page.wait_for_selector("form[data-preview]")
    viewer_ready(page)
    assert canvas_pixel(page, 10, 2)[:3] == [0, 0, 0]
    assert canvas_pixel(page, 10, TEXT_ROWS + 3)[:3] != [0, 0, 0]
    screenshot(page, "authoring-review-preview-desktop")
    page.get_by_role("button", name="Blank these regions").click()
    page.wait_for_url(f"**/teach/cases/{case.case_id}/review?notice=blanked")
    assert "can be published" in page.locator("[data-gate]").inner_text()
    pixels = teaching_pixels(page, server, case)
    assert (pixels[:TEXT_ROWS] == 0).all() and (pixels[TEXT_ROWS:] == 1000).all()
    problems.assert_none()


# -- the question editor ----------------------------------------------------------------------


def test_one_question_of_each_kind_with_the_region_drawn_by_mouse(
    desktop: BrowserContext, server: Server
) -> None:
    case = server.case()
    base = f"/teach/cases/{case.case_id}/questions"
    page, problems = signed_in(desktop, server, base)
    page.get_by_role("link", name="Multiple choice").click()
    page.get_by_label("Prompt").fill("What is it?")
    for n, text in enumerate(["Pneumonia", "Lung cancer", "Abscess"]):
        page.get_by_label(f"Option {n + 1}", exact=True).fill(text)
    page.get_by_role("button", name="Remove option 4").click()
    assert page.locator('[name^="option-text-"]').count() == 3
    page.get_by_label("Right answer: option 2").check()
    page.get_by_label("Feedback").fill("Spiculated.")
    page.get_by_role("button", name="Save the question").click()
    page.wait_for_selector("text=Question added.")

    page.goto(f"{server.base}{base}/new?kind=free_text")
    page.get_by_label("Prompt").fill("Name the finding.")
    page.get_by_label("Accepted answers").fill("Lung cancer")
    page.get_by_label("Synonyms").fill("carcinoma\nbronchogenic carcinoma")
    page.get_by_role("button", name="Save the question").click()
    page.wait_for_selector("text=Question added.")

    page.goto(f"{server.base}{base}/new?kind=locate")
    viewer_ready(page)
    page.get_by_label("Prompt").fill("Outline the nodule.")
    page.get_by_role("radio", name="Polygon").check()
    page.locator(".sv-canvas").focus()
    page.keyboard.press("ArrowDown")  # the second slice
    for x, y in [(32, 22), (48, 22), (48, 38)]:
        page.mouse.click(*screen(page, x, y))
    page.get_by_role("button", name="Close shape").click()
    points = page.get_by_label("Polygon points").input_value().splitlines()
    assert len(points) == 3
    second = page.evaluate("() => document.querySelector('[data-viewer]').stackViewer.state()")
    assert second["index"] == 1
    assert page.locator('[name="sop"]').input_value() == second["sop"]
    # A vertex dragged by its handle.
    drag(page, screen(page, 32, 22), screen(page, 30, 20))
    first = [
        float(v)
        for v in page.get_by_label("Polygon points").input_value().splitlines()[0].split(",")
    ]
    assert first == pytest.approx([30, 20], abs=0.6)
    screenshot(page, "authoring-locate-polygon-desktop")
    page.get_by_role("button", name="Save the question").click()
    page.wait_for_selector("text=Question added.")

    questions = server.api("GET", f"/api/cases/{case.case_id}/questions")
    assert [q["key"]["kind"] for q in questions] == ["multiple_choice", "free_text", "locate"]
    assert questions[0]["key"]["correct"] == ["b"] and len(questions[0]["key"]["options"]) == 3
    assert questions[1]["key"]["synonyms"] == ["carcinoma", "bronchogenic carcinoma"]
    locate = questions[2]["key"]
    assert locate["sop_instance_uid"] == second["sop"] and locate["region"]["shape"] == "polygon"
    assert len(locate["region"]["points"]) == 3

    # An ellipse instead, dragged and then widened by its handle.
    viewer_ready(page)
    assert (
        page.evaluate("() => document.querySelector('[data-viewer]').stackViewer.state().sop")
        == second["sop"]
    )
    page.get_by_role("radio", name="Ellipse").check()
    drag(page, screen(page, 32, 22), screen(page, 48, 38))
    assert float(page.get_by_label("Centre column (cx)").input_value()) == pytest.approx(
        40, abs=0.6
    )
    drag(page, screen(page, 48, 30), screen(page, 52, 30))
    assert float(page.get_by_label("Half-width (rx)").input_value()) == pytest.approx(12, abs=0.6)
    page.get_by_role("button", name="Save the question").click()
    page.wait_for_selector("text=Question saved.")
    region = server.api("GET", f"/api/cases/{case.case_id}/questions")[2]["key"]["region"]
    assert region["shape"] == "ellipse" and region["rx"] == pytest.approx(12, abs=0.6)

    # Preview as a learner: a click inside is right, a choice that is not is wrong.
    page.get_by_role("link", name="Preview as a learner").click()
    viewer_ready(page)
    page.mouse.click(*screen(page, 41, 31))
    assert page.get_by_label("Column (x)").input_value() == "41"
    page.get_by_role("button", name="Answer").click()
    assert page.get_by_role("status").filter(has_text="Right").is_visible()
    viewer_ready(page)
    screenshot(page, "authoring-preview-locate-desktop")
    page.goto(f"{server.base}{base}/{questions[0]['id']}/preview")
    page.get_by_label("Pneumonia").check()
    page.get_by_role("button", name="Answer").click()
    assert page.locator(".verdict").inner_text() == "Wrong"
    assert "Right: Lung cancer" in page.locator("main").inner_text()
    problems.assert_none()


def test_the_locate_region_is_drawn_by_touch_on_a_phone(
    phone: BrowserContext, server: Server
) -> None:
    case = server.case()
    path = f"/teach/cases/{case.case_id}/questions/new?kind=locate"
    page, problems = signed_in(phone, server, path)
    viewer_ready(page)
    page.get_by_label("Prompt").fill("Where is it?")
    swipe(page, screen(page, 30, 20), screen(page, 50, 40))
    assert float(page.get_by_label("Centre column (cx)").input_value()) == pytest.approx(
        40, abs=0.6
    )
    assert float(page.get_by_label("Half-height (ry)").input_value()) == pytest.approx(10, abs=0.6)
    # The side handle, dragged by a finger.
    swipe(page, screen(page, 40, 40), screen(page, 40, 44))
    assert float(page.get_by_label("Half-height (ry)").input_value()) == pytest.approx(14, abs=0.8)
    screenshot(page, "authoring-locate-ellipse-phone")
    page.get_by_role("radio", name="Polygon").check()
    for x, y in [(30, 20), (50, 20), (50, 40), (30, 40)]:
        page.touchscreen.tap(*screen(page, x, y))
    page.get_by_role("button", name="Close shape").click()
    assert len(page.get_by_label("Polygon points").input_value().splitlines()) == 4
    page.get_by_role("button", name="Save the question").click()
    page.wait_for_selector("text=Question added.")
    (question,) = server.api("GET", f"/api/cases/{case.case_id}/questions")
    points = question["key"]["region"]["points"]
    flat = [v for point in points for v in point]
    assert flat == pytest.approx([30, 20, 50, 20, 50, 40, 30, 40], abs=0.6)
    problems.assert_none()


# -- accessibility ----------------------------------------------------------------------------


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_every_authoring_page_is_accessible_and_pictured(
    size: str, request: pytest.FixtureRequest, server: Server
) -> None:
    context: BrowserContext = request.getfixturevalue(size)
    case = server.case()
    question = server.api(
        "POST",
        f"/api/cases/{case.case_id}/questions",
        json={
            "prompt": "Where?",
            "key": {
                "kind": "locate",
                "sop_instance_uid": case.ct_sops[0],
                "region": {"shape": "ellipse", "cx": 40, "cy": 30, "rx": 8, "ry": 8},
            },
            "hint": "Upper right.",
        },
    )
    base = f"/teach/cases/{case.case_id}"
    page, problems = signed_in(context, server, f"{base}/questions")  # no image in flight
    pages = {
        "review": f"{base}/review",
        "questions": f"{base}/questions",
        "new-multiple-choice": f"{base}/questions/new?kind=multiple_choice",
        "new-free-text": f"{base}/questions/new?kind=free_text",
        "edit-locate": f"{base}/questions/{question['id']}",
        "preview-locate": f"{base}/questions/{question['id']}/preview",
        "delete": f"{base}/questions/{question['id']}/delete",
    }
    for name, path in pages.items():
        page.goto(f"{server.base}{path}")
        if page.locator("[data-viewer]").count():
            viewer_ready(page)
        assert_accessible(page)
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{name} scrolls sideways"
        screenshot(page, f"authoring-{name}-{size}")
    problems.assert_none()


def test_bearer_for_the_api_is_not_the_browser_session(server: Server) -> None:
    """The fixture's API calls use a token; the pages need the cookie (a sanity check that
    the browser tests sign in for real)."""
    with httpx.Client(base_url=server.base, timeout=30, follow_redirects=False) as client:
        assert client.get(f"/teach/cases/{server.first.case_id}/questions").status_code == 303
        token = bearer(client, EDUCATOR, PASSWORD)
        listed = client.get(f"/teach/cases/{server.first.case_id}/questions", headers=token)
        assert listed.status_code == 200
