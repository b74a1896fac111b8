"""The stack viewer as a browser test reads it: opened and settled, its state, the canvas's
pixels (a coarse fingerprint, or one point of the image under the current zoom and pan)."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import BrowserContext, Page

from tests.web.browser import new_page


def open_viewer(context: BrowserContext, url: str) -> tuple[Page, Any]:
    page, problems = new_page(context)
    page.goto(url)
    # Everything loaded and announced: what a test does next is not raced by loading.
    page.wait_for_function(
        "() => { const v = document.querySelector('[data-viewer]')?.stackViewer;"
        " return v && v.firstImageShown && v.announcedLoaded; }"
    )
    return page, problems


def state(page: Page) -> dict[str, Any]:
    found: dict[str, Any] = page.evaluate(
        "() => document.querySelector('[data-viewer]').stackViewer.state()"
    )
    return found


def settle(page: Page) -> None:
    """Two animation frames: whatever was asked for is on the canvas."""
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def canvas_signature(page: Page) -> list[int]:
    """A coarse fingerprint of the canvas (sums over a 16x16 grid of cells)."""
    settle(page)
    found: list[int] = page.evaluate(
        """() => {
            const c = document.querySelector('.sv-canvas');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            const cells = new Array(256).fill(0);
            for (let y = 0; y < c.height; y += 4) for (let x = 0; x < c.width; x += 4) {
                const i = (y * c.width + x) * 4;
                const cell = Math.floor(y * 16 / c.height) * 16 + Math.floor(x * 16 / c.width);
                cells[cell] += d[i] + d[i + 1] + d[i + 2];
            }
            return cells;
        }"""
    )
    return found


def pixel_at_image(page: Page, x: float, y: float) -> list[int]:
    """The canvas's RGBA where image point (x, y) is drawn, under the current zoom/pan."""
    settle(page)
    found: list[int] = page.evaluate(
        """([x, y]) => {
            const v = document.querySelector('[data-viewer]').stackViewer;
            const [sx, sy] = v.toScreen(x, y);
            const r = window.devicePixelRatio || 1;
            const c = v.canvas.getContext('2d');
            return Array.from(c.getImageData(Math.floor(sx * r), Math.floor(sy * r), 1, 1).data);
        }""",
        [x, y],
    )
    return found


def canvas_box(page: Page) -> dict[str, float]:
    box = page.locator(".sv-canvas").bounding_box()
    assert box is not None
    return box


def image_count(page: Page) -> str:
    return page.locator(".sv-position").inner_text()
