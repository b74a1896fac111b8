"""A resident's whole loop in Chromium, on the embedded default with authentication on: sign
in, Today, start the review, scroll the stack and change the window, answer one question of
each kind (one of them wrong), read the feedback with the drawn region and the revealed case,
find the answers on the progress page, sign out. Once at desktop size with the mouse and the
keyboard, once at phone size with touch.

Every response the browser receives goes through the test (a route that fetches it and hands
it on), so before each answer every byte received so far (pages, scripts, styles, the
manifest, thumbnails, frames) is searched for the case's hidden texts. axe-core checks every
page at both sizes; screenshots are kept as artifacts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, Route
from playwright.sync_api import Error as PlaywrightError

from radcase_pacs.app import create_app
from radcase_pacs.deployment import open_deployment
from radcase_pacs.settings import Settings
from tests.web.axe import assert_accessible
from tests.web.browser import new_page, screenshot, serving, swipe
from tests.web.department import HIDDEN, HINT, LEARNER, NODULE, PASSWORD, Department, build
from tests.web.viewer_page import canvas_box, canvas_signature, settle, state

pytestmark = pytest.mark.e2e

ADMIN_PASSWORD = "an admin password for the browser"


@dataclass
class Received:
    """Every body the browser was handed, in order, with its URL."""

    bodies: list[tuple[str, bytes]] = field(default_factory=list)

    def route(self, route: Route) -> None:
        try:
            response = route.fetch(max_redirects=0)
            body = response.body()
        except PlaywrightError:
            return  # the page went away meanwhile: the browser never gets this response
        self.bodies.append((route.request.url, body))
        with contextlib.suppress(PlaywrightError):  # (likewise)
            route.fulfill(response=response, body=body)

    def assert_hidden(self, hidden: list[str]) -> None:
        """None of ``hidden`` (case-insensitive, as UTF-8) in anything received so far."""
        found = []
        for url, body in self.bodies:
            lowered = body.lower()
            found += [(text, url) for text in hidden if text.lower().encode() in lowered]
        assert not found, f"hidden texts reached the browser: {found}"


@pytest.fixture
def department(tmp_path: Path) -> Iterator[Department]:
    settings = Settings(
        data_dir=tmp_path / "data",
        auth="on",
        admin_password=ADMIN_PASSWORD,
        password_hash_rounds=4,
        dimse_port=0,
        viewer_url="https://ohif.example.org/viewer?StudyInstanceUIDs={study}",
    )
    with open_deployment(settings) as deployment, serving(create_app(deployment)) as base:
        yield build(base, ADMIN_PASSWORD)


def check_page(page: Page, name: str) -> None:
    assert_accessible(page)
    screenshot(page, name)


def first_image(page: Page) -> None:
    page.wait_for_function(
        "() => performance.getEntriesByName('radcase:first-image').length > 0", timeout=15000
    )


def press_in_viewer(page: Page, key: str) -> None:
    page.locator(".sv-canvas").focus()
    page.keyboard.press(key)


def sign_in(page: Page, department: Department, size: str) -> None:
    page.goto(department.base_url + "/")
    assert page.url.endswith("/login")
    check_page(page, f"learner-{size}-1-sign-in")
    page.get_by_label("Username").fill(LEARNER)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(department.base_url + "/")
    assert page.locator("[data-count=reviews]").inner_text() == "0"
    assert page.locator("[data-count=new]").inner_text() == "3"
    assert "Chest week" in page.inner_text("main")
    check_page(page, f"learner-{size}-2-today")


def answer_and_read(page: Page, size: str, step: str) -> str:
    page.get_by_role("button", name="Submit answer").click()
    page.wait_for_selector("#result")
    first_image(page)
    check_page(page, f"learner-{size}-{step}-feedback")
    return page.inner_text("main")


def run_loop(context: BrowserContext, department: Department, size: str) -> None:
    received = Received()
    context.route("**/*", received.route)
    page, problems = new_page(context)
    touch = size == "phone"
    sign_in(page, department, size)

    # -- the multiple-choice question: scroll, window, a hint, a wrong answer by key ------
    page.get_by_role("button", name="Start review").click()
    page.wait_for_url("**/sessions/*/items/1")
    first_image(page)
    page.wait_for_function(
        "() => document.querySelector('[data-viewer]').stackViewer.state().loaded"
    )
    before = state(page)
    if touch:
        page.locator(".sv-canvas").scroll_into_view_if_needed()
        box = canvas_box(page)
        x = box["x"] + box["width"] / 2
        swipe(page, (x, box["y"] + 40), (x, box["y"] + box["height"] - 40))
    else:
        press_in_viewer(page, "ArrowDown")
        press_in_viewer(page, "ArrowDown")
    settle(page)
    assert state(page)["index"] != before["index"], "the stack did not scroll"
    pixels = canvas_signature(page)
    page.get_by_role("button", name="Lung").click()
    assert canvas_signature(page) != pixels, "the window change did not reach the canvas"
    check_page(page, f"learner-{size}-3-question")
    received.assert_hidden([*HIDDEN.values(), HINT])

    page.get_by_role("button", name="Hint").click()
    page.wait_for_selector("#hint")
    page.wait_for_load_state("domcontentloaded")  # the page's scripts have run: keys act
    assert HINT in page.inner_text("#hint")
    if touch:
        page.get_by_label("Pneumonia").tap()
    else:
        page.locator("#option-3").focus()  # digit keys act while the options have the focus
        page.keyboard.press("1")
        assert page.get_by_label("Pneumonia").is_checked()
    received.assert_hidden(list(HIDDEN.values()))
    feedback = answer_and_read(page, size, "4")
    assert "Not right" in feedback and "Lung cancer" in feedback
    assert HIDDEN["feedback"] in feedback
    for text in (HIDDEN["title"], HIDDEN["diagnosis"]):
        assert text not in feedback

    # -- free text, right -----------------------------------------------------------------
    page.get_by_role("link", name="Next question").click()
    page.wait_for_url("**/sessions/*/items/2")
    first_image(page)
    page.get_by_label("Your answer").fill(HIDDEN["free_text"].upper())
    revealed_so_far = {HIDDEN["feedback"]}
    received.assert_hidden([t for t in HIDDEN.values() if t not in revealed_so_far])
    feedback = answer_and_read(page, size, "5")
    assert "Right" in feedback and "Not right" not in feedback
    revealed_so_far.add(HIDDEN["free_text"])

    # -- locate: a click or a tap on the nodule --------------------------------------------
    page.get_by_role("link", name="Next question").click()
    page.wait_for_url("**/sessions/*/items/3")
    first_image(page)
    page.wait_for_function(
        "sop => document.querySelector('[data-viewer]').stackViewer.state().sop === sop",
        arg=department.locate["sop"],
    )
    x, y = NODULE[0], NODULE[1]
    screen = page.evaluate(
        "([x, y]) => document.querySelector('[data-viewer]').stackViewer.toScreen(x, y)", [x, y]
    )
    page.locator(".sv-canvas").scroll_into_view_if_needed()
    target = {"x": screen[0], "y": screen[1]}
    if touch:
        page.locator(".sv-canvas").tap(position=target)
    else:
        page.locator(".sv-canvas").click(position=target)
    assert abs(float(page.locator("input[name=x]").input_value()) - x) <= 2
    assert abs(float(page.locator("input[name=y]").input_value()) - y) <= 2
    received.assert_hidden([t for t in HIDDEN.values() if t not in revealed_so_far])
    feedback = answer_and_read(page, size, "6")
    assert "Right" in feedback
    overlays = page.evaluate(
        "() => document.querySelector('[data-viewer]').stackViewer.overlays"
        ".map(o => [o.kind, o.label])"
    )
    assert ["ellipse", "Answer"] in overlays and ["point", "You"] in overlays
    for text in (HIDDEN["title"], HIDDEN["diagnosis"], HIDDEN["findings"], HIDDEN["discussion"]):
        assert text in feedback, f"the revealed case misses {text!r}"
    ohif = page.get_by_role("link", name="Open in OHIF")
    assert department.teaching_study in (ohif.get_attribute("href") or "")

    # -- progress ---------------------------------------------------------------------------
    page.get_by_role("link", name="Progress").first.click()
    page.wait_for_url("**/progress")
    history = page.inner_text("main")
    assert "3 reviews" in history or "3 answers" in history or history.count("multiple") >= 1
    check_page(page, f"learner-{size}-7-progress")
    csv = page.request.get(department.base_url + "/api/progress.csv")
    assert csv.ok and csv.text().count("\n") == 4  # a header and three answers

    # -- sign out ---------------------------------------------------------------------------
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login")
    assert page.request.get(department.base_url + "/api/me").status == 401
    problems.assert_none()


def test_a_residents_loop_with_mouse_and_keyboard(
    desktop: BrowserContext, department: Department
) -> None:
    run_loop(desktop, department, "desktop")


def test_a_residents_loop_on_a_phone_with_touch(
    phone: BrowserContext, department: Department
) -> None:
    run_loop(phone, department, "phone")
