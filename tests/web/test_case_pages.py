"""The educators' pages in Chromium, on the embedded default with authentication on: find a
study in the worklist, open it in the viewer, make a case of it, mark the image the viewer
shows as a key image, write a note and save; every page axe-clean at desktop and phone size,
with a screenshot of each."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page

from radcase_pacs.app import create_app
from radcase_pacs.deployment import open_deployment
from radcase_pacs.settings import Settings
from tests.factories import multipart_body, to_bytes
from tests.web.axe import assert_accessible
from tests.web.browser import new_page, screenshot, serving
from tests.web.department import EDUCATOR, PASSWORD, chest_ct, token

pytestmark = pytest.mark.e2e

ADMIN_PASSWORD = "an admin password for tests"
FIRST_IMAGE = "() => performance.getEntriesByName('radcase:first-image').length > 0"


@dataclass(frozen=True)
class Server:
    base: str
    study_uid: str


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """A server holding the phantom chest CT, an educator and nothing else."""
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(
            data_dir=Path(folder),
            auth="on",
            admin_password=ADMIN_PASSWORD,
            password_hash_rounds=4,
            dimse_port=0,
        )
        with open_deployment(settings) as deployment, serving(create_app(deployment)) as base:
            with httpx.Client(base_url=base, timeout=60) as client:
                admin = token(client, "admin", ADMIN_PASSWORD)
                made = client.post(
                    "/api/users",
                    json={"username": EDUCATOR, "password": PASSWORD, "role": "educator"},
                    headers=admin,
                )
                assert made.status_code == 201, made.text
                instances = chest_ct()
                body, content_type = multipart_body([to_bytes(ds) for ds in instances])
                stored = client.post(
                    "/dicomweb/studies",
                    content=body,
                    headers={**admin, "Content-Type": content_type},
                )
                assert stored.status_code == 200, stored.text
            yield Server(base, instances[0].StudyInstanceUID)


def sign_in(page: Page, base: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("Username").fill(EDUCATOR)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/")


def checked(page: Page, name: str) -> None:
    """The page as it is now: axe-clean, and kept as a screenshot."""
    assert_accessible(page)
    screenshot(page, name)


def test_an_educator_makes_a_case_and_marks_a_key_image(
    server: Server, desktop: BrowserContext
) -> None:
    page, problems = new_page(desktop)
    sign_in(page, server.base)
    page.goto(f"{server.base}/teach/studies")
    page.get_by_label("Patient name").fill("chest^*")
    page.get_by_label("Study date from").fill("2024-01-01")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**/teach/studies?*")
    link = page.get_by_role("link", name="CHEST, PHANTOM")
    assert link.count() == 1
    assert link.get_attribute("href") == f"/teach/studies/{server.study_uid}"
    page.wait_for_function("() => [...document.images].every(i => i.complete)")
    checked(page, "teach-studies-desktop")

    link.click()
    page.wait_for_url(f"**/teach/studies/{server.study_uid}")
    page.wait_for_function(FIRST_IMAGE, timeout=15000)
    checked(page, "teach-study-desktop")

    page.get_by_label("Title").fill("Solitary pulmonary nodule")
    page.get_by_role("button", name="Make a teaching case").click()
    page.wait_for_url("**/teach/cases/*?notice=created")
    case_id = page.url.split("/teach/cases/")[1].split("?")[0]
    page.wait_for_function(FIRST_IMAGE, timeout=15000)
    assert page.get_by_role("status").filter(has_text="Case made").count() == 1
    checked(page, "teach-case-desktop")

    page.get_by_role("application").focus()
    for _ in range(9):
        page.keyboard.press("ArrowDown")
    page.wait_for_function(
        "() => document.querySelector('[data-viewer]').stackViewer.state().index === 9"
    )
    sop = page.evaluate("() => document.querySelector('[data-viewer]').stackViewer.state().sop")
    page.get_by_role("button", name="Mark as key image").click()
    row = page.get_by_role("list", name="Key images").get_by_role("listitem")
    assert row.count() == 1
    assert row.get_by_role("button", name="Show Series 1 · image 10").count() == 1
    page.wait_for_function(
        "() => document.getElementById('announcer').textContent.includes('added to the key')"
    )
    row.get_by_label("Note").fill("The nodule, right lower zone")
    page.get_by_label("Diagnosis").fill("Adenocarcinoma")
    page.get_by_label("Pulmonary").check()
    page.get_by_label("Level (IHE TCE)").select_option("TCE202")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(f"**/teach/cases/{case_id}?notice=saved")
    page.wait_for_function(FIRST_IMAGE, timeout=15000)
    saved = page.get_by_role("list", name="Key images").get_by_role("listitem")
    assert saved.count() == 1
    assert saved.get_by_label("Note").input_value() == "The nodule, right lower zone"
    saved.get_by_role("button", name="Show Series 1 · image 10").click()
    checked(page, "teach-case-saved-desktop")

    with httpx.Client(base_url=server.base) as client:
        educator = token(client, EDUCATOR, PASSWORD)
        case = client.get(f"/api/cases/{case_id}", headers=educator).json()
    assert case["key_images"] == [
        {"sop_instance_uid": sop, "frame": None, "note": "The nodule, right lower zone"}
    ]
    assert case["diagnosis"] == "Adenocarcinoma"
    assert case["tags"]["categories"] == ["TCE302"] and case["tags"]["level"] == "TCE202"

    for path, name in (
        ("/teach/cases", "teach-cases-desktop"),
        (f"/teach/cases/{case_id}/as-learner", "teach-case-as-learner-desktop"),
        (f"/teach/cases/{case_id}/delete", "teach-case-delete-desktop"),
    ):
        page.goto(server.base + path)
        if "as-learner" in path:
            page.wait_for_function(FIRST_IMAGE, timeout=15000)
        checked(page, name)
    problems.assert_none()


def test_the_educators_pages_at_phone_size(server: Server, phone: BrowserContext) -> None:
    page, problems = new_page(phone)
    sign_in(page, server.base)
    page.goto(f"{server.base}/teach/studies?name=CHEST*")
    page.wait_for_function("() => [...document.images].every(i => i.complete)")
    checked(page, "teach-studies-phone")
    page.goto(f"{server.base}/teach/studies/{server.study_uid}")
    page.wait_for_function(FIRST_IMAGE, timeout=15000)
    checked(page, "teach-study-phone")
    page.get_by_label("Title").fill("Phone-made case")
    page.get_by_role("button", name="Make a teaching case").click()
    page.wait_for_url("**/teach/cases/*?notice=created")
    case_id = page.url.split("/teach/cases/")[1].split("?")[0]
    page.wait_for_function(FIRST_IMAGE, timeout=15000)
    page.get_by_role("button", name="Mark as key image").tap()
    assert page.get_by_role("list", name="Key images").get_by_role("listitem").count() == 1
    checked(page, "teach-case-phone")
    for path, name in (
        ("/teach/cases", "teach-cases-phone"),
        (f"/teach/cases/{case_id}/as-learner", "teach-case-as-learner-phone"),
        (f"/teach/cases/{case_id}/delete", "teach-case-delete-phone"),
    ):
        page.goto(server.base + path)
        if "as-learner" in path:
            page.wait_for_function(FIRST_IMAGE, timeout=15000)
        checked(page, name)
    problems.assert_none()
