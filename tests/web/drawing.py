"""Drawing on the stack viewer from a browser test, as a person does: the viewer settled, an
image point turned into a viewport point, a drag of the mouse, the canvas read back, and the
teaching copy's frame fetched with the page's cookie to see what the blanking left.

Shared by the authoring pages' tests and the educator's whole-path test.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from playwright.sync_api import Page

FRAME_ACCEPT = (
    'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1'
)
FIRST_IMAGE = "() => performance.getEntriesByName('radcase:first-image').length > 0"


def settle(page: Page) -> None:
    """Two animation frames: whatever was asked for is on the canvas."""
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def viewer_ready(page: Page, timeout: float = 30000) -> None:
    """The viewer has shown its first image and announced the stack loaded."""
    page.wait_for_function(
        "() => { const v = document.querySelector('[data-viewer]')?.stackViewer;"
        " return v && v.firstImageShown && v.announcedLoaded; }",
        timeout=timeout,
    )
    settle(page)


def screen(page: Page, x: float, y: float) -> tuple[float, float]:
    """The viewport point where image point (x, y) is drawn (the image scrolled into view)."""
    page.evaluate("() => document.querySelector('.sv-canvas').scrollIntoView({block: 'center'})")
    box = page.locator(".sv-canvas").bounding_box()
    assert box is not None
    at = page.evaluate(
        "([x, y]) => document.querySelector('[data-viewer]').stackViewer.toScreen(x, y)", [x, y]
    )
    return box["x"] + at[0], box["y"] + at[1]


def shapes(page: Page) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = page.evaluate(
        "() => document.querySelector('[data-viewer]').stackViewer.shapes()"
    )
    return found


def viewer_state(page: Page) -> dict[str, Any]:
    found: dict[str, Any] = page.evaluate(
        "() => document.querySelector('[data-viewer]').stackViewer.state()"
    )
    return found


def drag(page: Page, start: tuple[float, float], end: tuple[float, float]) -> None:
    """The mouse pressed at ``start``, moved in steps to ``end`` and released."""
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=8)
    page.mouse.up()


def canvas_pixel(page: Page, x: float, y: float) -> list[int]:
    """The canvas's RGBA where image point (x, y) is drawn."""
    settle(page)
    found: list[int] = page.evaluate(
        """([x, y]) => {
            const v = document.querySelector('[data-viewer]').stackViewer;
            const [sx, sy] = v.toScreen(x, y);
            const r = window.devicePixelRatio || 1;
            return Array.from(v.canvas.getContext('2d')
                .getImageData(Math.floor(sx * r), Math.floor(sy * r), 1, 1).data);
        }""",
        [x, y],
    )
    return found


def teaching_frame(page: Page, url: str, rows: int, columns: int) -> np.ndarray:
    """The first frame of the instance at ``url`` (a /teaching/dicomweb instance URL) as the
    teaching root serves it natively (PS3.18 §8.7.3 frames, explicit VR little endian), with
    the page's session cookie; 16-bit unsigned samples."""
    answer = page.request.get(f"{url}/frames/1", headers={"Accept": FRAME_ACCEPT})
    assert answer.status == 200, answer.text()
    body = answer.body()
    frame = body[body.index(b"\r\n\r\n") + 4 : body.rindex(b"\r\n--")]
    return np.frombuffer(frame, "<u2").reshape(rows, columns)
