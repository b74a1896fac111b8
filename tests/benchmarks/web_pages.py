"""How fast the web app's pages answer, and how soon the stack viewer shows its first image.

    python -m tests.benchmarks.web_pages [--requests 50] [--loads 10]

Starts the server on the embedded default (SQLite, a folder, the in-process cache) with
authentication on in this process, builds the test department through the API (a 20-slice
256x256 chest CT, a published case with three questions), signs in as the resident through
the sign-in form and then:

1. times each page ``--requests`` times over one keep-alive connection: the response time
   seen by the client on loopback, an upper bound of the server's time (medians and p95);
2. opens the question page in Chromium ``--loads`` times, each in a fresh browser context
   (nothing cached), and reads the viewer's ``radcase:first-image`` performance mark: the
   milliseconds from the start of navigation to the first image drawn on the canvas.
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

from radcase_pacs.app import create_app
from radcase_pacs.auth.browser import COOKIE
from radcase_pacs.deployment import open_deployment
from radcase_pacs.settings import Settings
from tests.web.browser import launch, serving
from tests.web.department import LEARNER, PASSWORD, build

ADMIN_PASSWORD = "benchmark admin password"


def csrf(page: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([0-9a-f]*)"', page)
    assert found is not None
    return found.group(1)


def sign_in(client: httpx.Client, username: str, password: str) -> None:
    answer = client.post(
        "/login",
        data={"username": username, "password": password, "next": "/", "csrf": ""},
        headers={"Origin": str(client.base_url).rstrip("/")},
    )
    assert answer.status_code == 303, answer.text


def timed(request: Callable[[], httpx.Response], times: int) -> tuple[float, float]:
    """(median, p95) in milliseconds of ``times`` calls, after two warm-up calls."""
    for _ in range(2):
        request().raise_for_status()
    samples = []
    for _ in range(times):
        start = time.perf_counter()
        answer = request()
        samples.append((time.perf_counter() - start) * 1000)
        assert answer.status_code == 200, answer.status_code
    samples.sort()
    return statistics.median(samples), samples[max(0, int(len(samples) * 0.95) - 1)]


def page_times(base: str, requests: int) -> tuple[list[tuple[str, float, float]], str]:
    """Each page's (name, median, p95), and the question page's path."""
    rows = []
    with httpx.Client(base_url=base, timeout=30, follow_redirects=False) as client:
        rows.append(("Sign in", *timed(lambda: client.get("/login"), requests)))
        sign_in(client, LEARNER, PASSWORD)
        rows.append(("Today", *timed(lambda: client.get("/"), requests)))
        started = client.post(
            "/review",
            data={"source": "due", "csrf": csrf(client.get("/").text)},
            headers={"Origin": base},
        )
        assert started.status_code == 303, started.text
        question = started.headers["location"]
        rows.append(("Question", *timed(lambda: client.get(question), requests)))
        page = client.get(question).text
        option = re.search(r'name="option" value="([^"]+)"', page)
        assert option is not None, "the first question is the multiple-choice one"
        answered = client.post(
            f"{question}/answer",
            data={"kind": "multiple_choice", "option": option.group(1), "csrf": csrf(page)},
            headers={"Origin": base},
        )
        assert answered.status_code == 303, answered.text
        rows.append(("Feedback", *timed(lambda: client.get(question), requests)))
        rows.append(("Progress", *timed(lambda: client.get("/progress"), requests)))
    with httpx.Client(base_url=base, timeout=30, follow_redirects=False) as admin:
        sign_in(admin, "admin", ADMIN_PASSWORD)
        rows.append(("Users (admin)", *timed(lambda: admin.get("/admin/users"), requests)))
        rows.append(("Audit log (admin)", *timed(lambda: admin.get("/admin/audit"), requests)))
    return rows, question


def first_images(base: str, question: str, loads: int) -> list[float]:
    """Milliseconds from navigation start to the first image, one per fresh context."""
    with httpx.Client(base_url=base, follow_redirects=False) as client:
        sign_in(client, LEARNER, PASSWORD)
        cookie = client.cookies[COOKIE]
    out = []
    with sync_playwright() as playwright:
        browser = launch(playwright)
        for _ in range(loads):
            context = browser.new_context(viewport={"width": 1920, "height": 1080})
            context.add_cookies([{"name": COOKIE, "value": cookie, "url": base}])
            page = context.new_page()
            page.goto(base + question)
            page.wait_for_function(
                "() => performance.getEntriesByName('radcase:first-image').length > 0",
                timeout=10000,
            )
            out.append(
                page.evaluate(
                    "() => performance.getEntriesByName('radcase:first-image')[0].startTime"
                )
            )
            context.close()
        browser.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--loads", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(
            data_dir=Path(folder), auth="on", admin_password=ADMIN_PASSWORD, dimse_port=0
        )
        with open_deployment(settings) as deployment, serving(create_app(deployment)) as base:
            build(base, ADMIN_PASSWORD)
            rows, question = page_times(base, args.requests)
            images = first_images(base, question, args.loads)
    print(f"page response times, {args.requests} requests each (ms, client on loopback)")
    print(f"{'page':<20}{'median':>10}{'p95':>10}")
    for name, median, p95 in rows:
        print(f"{name:<20}{median:>10.1f}{p95:>10.1f}")
    print(
        f"\nviewer, first image after navigation start, {args.loads} fresh loads (ms): "
        f"median {statistics.median(images):.0f}, min {min(images):.0f}, max {max(images):.0f}"
    )


if __name__ == "__main__":
    main()
