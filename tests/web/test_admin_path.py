"""The administrator's path in Chromium, on the embedded default with authentication on: sign
in; add a learner in /admin/users, who can then sign in (in a browser of their own); create an
API key (read from the page that shows it once), which reads /dicomweb, revoke it, and it is
refused at once; find the learner's sign-in in the audit log by filtering; export it as CSV.
Every administration page axe-clean at desktop size (mouse) and at phone size (touch), with a
screenshot of each.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from radcase_pacs.app import create_app
from radcase_pacs.deployment import open_deployment
from radcase_pacs.settings import Settings
from tests.web.axe import assert_accessible
from tests.web.browser import DESKTOP, new_page, screenshot, serving

pytestmark = pytest.mark.e2e

ADMIN_PASSWORD = "an admin password for the path"
LEARNER = "new.resident"
LEARNER_PASSWORD = "a long password for the new resident"
KEY_NAME = "pacs-router"
WAIT = 30000


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server with its first administrator and nobody else."""
    folder: Path = tmp_path_factory.mktemp("admin")
    settings = Settings(
        data_dir=folder / "data",
        auth="on",
        admin_password=ADMIN_PASSWORD,
        password_hash_rounds=4,
        dimse_port=0,
    )
    with open_deployment(settings) as deployment, serving(create_app(deployment)) as url:
        yield url


class Screens:
    """Every page checked by axe and kept as ``admin-<size>-NN-<screen>``; at phone size the
    page must not scroll sideways either (its tables scroll in their own region)."""

    def __init__(self, size: str) -> None:
        self.size = size
        self.count = 0

    def check(self, page: Page, name: str) -> None:
        assert_accessible(page)
        if self.size == "phone":
            overflow = page.evaluate(
                "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{name} scrolls sideways at phone size"
        self.count += 1
        screenshot(page, f"admin-{self.size}-{self.count:02d}-{name}")


def sign_in(page: Page, base: str, path: str, username: str, password: str) -> None:
    page.goto(base + path)
    page.wait_for_url(re.compile(r".*/login(\?.*)?$"))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base + path)


def admin_nav(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Administration").get_by_role("link", name=name).click()


def learner_signs_in(browser: Browser, base: str) -> None:
    """The new learner, in a browser of their own, reaches Today."""
    context = browser.new_context(**DESKTOP)
    try:
        page, problems = new_page(context)
        sign_in(page, base, "/", LEARNER, LEARNER_PASSWORD)
        assert page.get_by_role("heading", name="Today", exact=True).count() == 1
        assert LEARNER in page.get_by_role("banner").inner_text()
        problems.assert_none()
    finally:
        context.close()


def test_an_administrator_adds_a_learner_revokes_a_key_and_reads_the_audit_log(
    base: str, browser: Browser, desktop: BrowserContext
) -> None:
    page, problems = new_page(desktop)
    screens = Screens("desktop")
    page.goto(base + "/admin/users")
    page.wait_for_url(re.compile(r".*/login(\?.*)?$"))
    screens.check(page, "sign-in")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base + "/admin/users")
    screens.check(page, "users")

    # -- a learner added, who can sign in -----------------------------------------------------
    add = page.get_by_role("region", name="Add a user")
    add.get_by_label("Username").fill(LEARNER)
    add.get_by_label("Role").select_option("learner")
    add.get_by_label("Password").fill(LEARNER_PASSWORD)
    add.get_by_role("button", name="Add user").click()
    page.wait_for_url(base + "/admin/users?notice=added")
    row = page.get_by_role("row", name=re.compile(re.escape(LEARNER)))
    assert row.get_by_role("cell").all_inner_texts()[:2] == ["Learner", "Active"]
    screens.check(page, "user-added")
    learner_signs_in(browser, base)

    # -- an API key: shown once, works, revoked, refused ---------------------------------------
    admin_nav(page, "API keys")
    page.wait_for_url(base + "/admin/keys")
    screens.check(page, "keys")
    page.get_by_label("Name").fill(KEY_NAME)
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_label("Key", exact=True)
    secret.wait_for(timeout=WAIT)
    key = secret.input_value()
    assert key.startswith("rk_")
    screens.check(page, "key-created")
    studies = base + "/dicomweb/studies"
    headers = {"X-API-Key": key, "Accept": "application/dicom+json"}
    assert page.request.get(studies, headers=headers).status in (200, 204)
    page.goto(base + "/admin/keys")  # the key is not shown again
    assert key not in page.content()
    page.get_by_role("button", name=f"Revoke {KEY_NAME}").click()
    page.wait_for_url(base + "/admin/keys?notice=revoked")
    row = page.get_by_role("row", name=re.compile(KEY_NAME))
    assert "Revoked" in row.get_by_role("cell").all_inner_texts()
    screens.check(page, "key-revoked")
    # The page's own session cookie goes along: the key, not the cookie, is what is judged.
    assert page.request.get(studies, headers=headers).status == 401

    # -- the learner's sign-in in the audit log, and its CSV -----------------------------------
    admin_nav(page, "Audit log")
    page.wait_for_url(base + "/admin/audit")
    screens.check(page, "audit")
    filters = page.get_by_role("form", name="Filter the audit log")
    filters.get_by_label("User").fill(LEARNER)
    filters.get_by_label("Action").fill("auth.login")
    filters.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r".*/admin/audit\?.*actor=.*"))
    assert page.get_by_role("heading", name="1 entry").count() == 1
    entry = page.get_by_role("region", name="1 entry").get_by_role("row").nth(1)
    cells = entry.get_by_role("cell").all_inner_texts()
    assert cells[1].startswith(LEARNER) and cells[2] == "auth.login", cells
    screens.check(page, "audit-filtered")
    export = page.get_by_role("link", name="Export as CSV").get_attribute("href")
    assert export is not None and "actor=" in export and "action=auth.login" in export
    answer = page.request.get(base + export)
    assert answer.ok and answer.headers["content-type"].startswith("text/csv")
    (found,) = list(csv.DictReader(io.StringIO(answer.text())))
    assert (found["actor"], found["role"], found["action"]) == (LEARNER, "learner", "auth.login")

    admin_nav(page, "Institutions")
    page.wait_for_url(base + "/admin/institutions")
    screens.check(page, "institutions")

    admin_nav(page, "Status")
    page.wait_for_url(base + "/admin/status")
    assert "Serving" in page.inner_text("main")
    assert "GET /admin/users" in page.inner_text("main")
    screens.check(page, "status")
    problems.assert_none()


def test_the_administration_pages_at_phone_size(base: str, phone: BrowserContext) -> None:
    page, problems = new_page(phone)
    screens = Screens("phone")
    sign_in(page, base, "/admin/users", "admin", ADMIN_PASSWORD)
    screens.check(page, "users")
    page.goto(base + "/admin/keys")
    screens.check(page, "keys")
    page.get_by_label("Name").fill("phone-key")
    page.get_by_role("button", name="Create key").tap()
    page.get_by_label("Key", exact=True).wait_for(timeout=WAIT)
    screens.check(page, "key-created")
    page.goto(base + "/admin/audit?action=apikey.create")
    assert page.get_by_role("heading", name=re.compile(r"^\d+ entr")).count() == 1
    screens.check(page, "audit")
    page.goto(base + "/admin/institutions")
    screens.check(page, "institutions")
    page.goto(base + "/admin/status")
    screens.check(page, "status")
    problems.assert_none()
