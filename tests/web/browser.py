"""The browser side of the web app's tests: Debian's Chromium driven by Python Playwright
(never a downloaded browser), an app served on a free loopback port, screenshots kept as
artifacts, touch gestures and the canvas read back.

Chromium missing: the tests that need it are skipped, or fail under ``CI=true``
(tests/backends.py ``unavailable``), as the OHIF test does.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from playwright.sync_api import Browser, BrowserContext, Page, Playwright

from tests.backends import unavailable
from tests.factories import free_port

HERE = Path(__file__).resolve().parent
DESKTOP = {"viewport": {"width": 1920, "height": 1080}}
PHONE = {
    "viewport": {"width": 375, "height": 667},
    "device_scale_factor": 2,
    "has_touch": True,
    "is_mobile": True,
}


def chromium_path() -> str | None:
    """``$CHROMIUM``, else Debian's ``chromium`` on the PATH or in /usr/bin."""
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "/usr/bin/chromium"):
        if candidate and (found := shutil.which(candidate)):
            return found
    return None


def launch(playwright: Playwright) -> Browser:
    """Headless Chromium from the system; ``--no-sandbox`` only where it cannot run
    sandboxed (as root, in a container)."""
    path = chromium_path()
    if path is None:
        unavailable("Chromium is not installed (Debian package chromium, or set CHROMIUM)")
    args = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    return playwright.chromium.launch(executable_path=path, headless=True, args=args)


def artifacts_dir() -> Path:
    """``$ARTIFACTS_DIR/web`` when CI names a folder, else tests/web/artifacts (git-ignored)."""
    root = os.environ.get("ARTIFACTS_DIR")
    folder = Path(root) / "web" if root else HERE / "artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def screenshot(page: Page, name: str) -> Path:
    """The whole page as ``<artifacts>/<name>.png``."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")
    path = artifacts_dir() / f"{safe}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """``app`` under uvicorn in a thread on a free loopback port; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class Problems:
    """What went wrong in a page that no assertion looks at: console errors, uncaught
    exceptions, failed requests and HTTP errors. ``assert_none`` at the end of a test."""

    def __init__(self, page: Page) -> None:
        self.found: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.found.append(f"uncaught: {error}"))
        page.on("requestfailed", self._failed)
        page.on("response", self._response)

    def _failed(self, request: Any) -> None:
        """A request the page itself gave up (a navigation away cancels the background
        loading of the stack) is not a problem; any other failure is."""
        if "ERR_ABORTED" not in (request.failure or ""):
            self.found.append(f"failed: {request.method} {request.url} ({request.failure})")

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.found.append(f"console: {message.text}")

    def _response(self, response: Any) -> None:
        if response.status >= 400:
            self.found.append(f"HTTP {response.status}: {response.request.method} {response.url}")

    def assert_none(self) -> None:
        assert not self.found, "problems in the page:\n" + "\n".join(self.found)


def new_page(context: BrowserContext) -> tuple[Page, Problems]:
    page = context.new_page()
    return page, Problems(page)


def swipe(
    page: Page, start: tuple[float, float], end: tuple[float, float], steps: int = 10
) -> None:
    """One finger from ``start`` to ``end`` (CSS pixels of the viewport) through real touch
    events (CDP Input.dispatchTouchEvent), which Chromium turns into pointer events as it
    does for a finger on a phone."""
    touch(page, [[start]] + [[_between(start, end, k / steps)] for k in range(1, steps + 1)])


def pinch(
    page: Page, centre: tuple[float, float], distance: float, to_distance: float, steps: int = 10
) -> None:
    """Two fingers either side of ``centre`` moving from ``distance`` apart to
    ``to_distance`` apart."""
    frames = []
    for k in range(steps + 1):
        half = (distance + (to_distance - distance) * k / steps) / 2
        frames.append([(centre[0] - half, centre[1]), (centre[0] + half, centre[1])])
    touch(page, frames)


def touch(page: Page, frames: list[list[tuple[float, float]]]) -> None:
    """Touch points frame by frame: the first frame starts them, the others move them, then
    they end."""
    session = page.context.new_cdp_session(page)
    try:
        for k, points in enumerate(frames):
            session.send(
                "Input.dispatchTouchEvent",
                {
                    "type": "touchStart" if k == 0 else "touchMove",
                    "touchPoints": [{"x": x, "y": y, "id": i} for i, (x, y) in enumerate(points)],
                },
            )
        session.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    finally:
        session.detach()


def _between(a: tuple[float, float], b: tuple[float, float], t: float) -> tuple[float, float]:
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)
