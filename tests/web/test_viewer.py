"""The stack viewer (radcase_pacs/web/static/viewer.js) in Chromium, over the teaching
DICOMweb app and a manifest from radcase_pacs/web/stack.py.

The page is this test's own (the app's templates are tested with the app): the static folder
at /static, the manifest embedded as the app embeds it, the DICOMweb app at
/teaching/dicomweb over a test archive, and ``Content-Security-Policy: default-src 'self'``
as the app sends it. The study: a CT series of 20 signed 16-bit 512x512 slices (rescale
intercept -1024, padding below the lowest HU), a 3-frame MONOCHROME2 instance, a native RGB
instance stored with planar configuration 1, and a baseline JPEG colour instance that the
server decompresses.
"""

from __future__ import annotations

import html
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from playwright.sync_api import BrowserContext
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

import radcase_pacs.web
from dicomweb.app import create_app as create_dicomweb_app
from dicomweb.context import DicomwebOptions
from radcase_pacs.web.stack import stack_manifest
from storage.archive import Archive
from storage.blobs.filesystem import FilesystemBlobStore
from storage.cache.memory import MemoryCache
from storage.index.sqlite import SqliteIndex
from storage.stores import Stores
from tests.factories import make_instance, to_bytes
from tests.web.axe import assert_accessible
from tests.web.browser import artifacts_dir, new_page, pinch, screenshot, serving, swipe
from tests.web.viewer_page import (
    canvas_box,
    canvas_signature,
    image_count,
    open_viewer,
    pixel_at_image,
    settle,
    state,
)

pytestmark = pytest.mark.e2e

STATIC = Path(radcase_pacs.web.__file__).resolve().parent / "static"
SLICES = 20
SIZE = 512
PADDING = -2000  # stored value outside the scanned circle: -3024 HU, below air
CSP = "default-src 'self'"


@dataclass(frozen=True)
class Study:
    uid: str
    ct_series: str
    ct_sops: list[str]
    multi_frame_sop: str
    rgb_sop: str
    jpeg_sop: str
    manifest: dict[str, Any]


def ct_slice(study: str, series: str, number: int) -> Dataset:
    """A body-like disk in HU (fat, soft tissue, a bone ring, lungs whose size changes with
    the slice, so that each slice looks different), stored signed with intercept -1024."""
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    r = np.hypot(x - SIZE / 2, y - SIZE / 2)
    hu = np.full((SIZE, SIZE), -1000.0)
    hu[r < 230] = -100
    hu[r < 215] = 40
    hu[(r > 200) & (r < 210)] = 900
    lung = 40 + number * 3
    hu[np.hypot(x - 170, y - 250) < lung] = -850
    hu[np.hypot(x - 342, y - 250) < lung] = -850
    stored = np.clip(hu + 1024, -32768, 32767).astype(np.int16)
    stored[r >= 250] = PADDING
    ds = make_instance(
        study_uid=study,
        series_uid=series,
        instance_number=number,
        series_number=1,
        rows=SIZE,
        columns=SIZE,
    )
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.WindowCenter, ds.WindowWidth = 40, 400
    ds.ImagePositionPatient = [0, 0, float(-number * 5)]
    ds.SeriesDescription = "hidden series description"
    ds.PixelData = stored.astype("<i2").tobytes()
    return ds


def multi_frame(study: str) -> Dataset:
    ds = make_instance(study_uid=study, modality="MR", series_number=2, rows=64, columns=64)
    ds.NumberOfFrames = 3
    frames = [np.full((64, 64), 500 * (k + 1), dtype="<u2") for k in range(3)]
    for k, frame in enumerate(frames):
        frame[8 : 8 + 10 * (k + 1), 8:20] = 4000
    ds.PixelData = np.stack(frames).tobytes()
    return ds


def rgb_planar(study: str) -> Dataset:
    """Red left half, blue right half, stored colour-by-plane."""
    ds = make_instance(study_uid=study, modality="XC", series_number=3, rows=64, columns=64)
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 1
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    red = np.zeros((64, 64), np.uint8)
    red[:, :32] = 255
    blue = np.zeros((64, 64), np.uint8)
    blue[:, 32:] = 255
    ds.PixelData = np.stack([red, np.zeros_like(red), blue]).tobytes()
    return ds


def jpeg_colour(study: str) -> Dataset:
    path = get_testdata_file("SC_rgb_dcmtk_+eb+cy+np.dcm")
    assert path is not None
    ds = pydicom.dcmread(path)
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 4
    return ds


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archive]:
    folder = tmp_path_factory.mktemp("viewer-archive")
    stores = Stores(
        index=SqliteIndex(folder / "index.sqlite3"),
        blobs=FilesystemBlobStore(folder / "blobs"),
        cache=MemoryCache(256 * 1024 * 1024),
    )
    stores.open()
    yield Archive(stores)
    stores.close()


@pytest.fixture(scope="module")
def study(archive: Archive) -> Study:
    uid, series = generate_uid(), generate_uid()
    made = [ct_slice(uid, series, n) for n in range(1, SLICES + 1)]
    extra = [multi_frame(uid), rgb_planar(uid), jpeg_colour(uid)]
    for ds in [*made, *extra]:
        archive.ingest(io.BytesIO(to_bytes(ds)))
    manifest = stack_manifest(archive, uid)
    return Study(
        uid,
        series,
        [ds.SOPInstanceUID for ds in made],
        extra[0].SOPInstanceUID,
        extra[1].SOPInstanceUID,
        extra[2].SOPInstanceUID,
        manifest,
    )


def page_html(manifest: dict[str, Any], attributes: str) -> str:
    data = json.dumps(manifest).replace("<", "\\u003c")
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Stack viewer</title>
<link rel="stylesheet" href="/static/viewer.css">
</head>
<body>
<main>
<h1>Stack viewer</h1>
<section class="stack-viewer" aria-label="Images" data-viewer {attributes}>
<script type="application/json" class="stack-manifest">{data}</script>
</section>
</main>
<script type="module" src="/static/viewer.js"></script>
</body>
</html>"""


@pytest.fixture(scope="module")
def base(archive: Archive, study: Study) -> Iterator[str]:
    async def page(request: Request) -> Response:
        attributes = []
        if request.query_params.get("locate"):
            attributes.append("data-locate")
        if sop := request.query_params.get("sop"):
            attributes.append(f'data-open-sop="{html.escape(sop)}"')
        body = page_html(study.manifest, " ".join(attributes))
        return HTMLResponse(body, headers={"Content-Security-Policy": CSP})

    async def no_icon(request: Request) -> Response:
        return Response(status_code=204)

    app = Starlette(
        routes=[
            Route("/", page),
            Route("/favicon.ico", no_icon),
            Mount("/static", app=StaticFiles(directory=STATIC)),
            Mount(
                "/teaching/dicomweb",
                app=create_dicomweb_app(archive, DicomwebOptions(read_only=True)),
            ),
        ]
    )
    with serving(app) as url:
        yield url


# -- helpers --------------------------------------------------------------------------------


# -- tests ----------------------------------------------------------------------------------


def test_the_first_image_is_drawn_and_its_time_recorded(desktop: BrowserContext, base: str) -> None:
    page, problems = open_viewer(desktop, base)
    cells = canvas_signature(page)
    assert max(cells) > 0 and len(set(cells)) > 10, "the canvas is blank"
    assert image_count(page) == f"Image 1 of {SLICES}"
    first = page.evaluate(
        "() => performance.getEntriesByName('radcase:first-image').map(e => e.startTime)"
    )
    assert len(first) == 1
    (artifacts_dir() / "time-to-first-image.json").write_text(
        json.dumps({"viewer_first_image_ms": round(first[0], 1)}) + "\n", encoding="utf-8"
    )
    print(f"\ntime to first image: {first[0]:.1f} ms from navigation start")
    page.wait_for_function(
        "() => document.querySelector('[data-viewer]').stackViewer.state().loaded"
    )
    assert page.locator(".sv-status").inner_text() == "All 25 images loaded"
    problems.assert_none()


def test_wheel_arrow_keys_and_slider_move_through_the_stack(
    desktop: BrowserContext, base: str, study: Study
) -> None:
    page, problems = open_viewer(desktop, base)
    box = canvas_box(page)
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    before = canvas_signature(page)
    page.mouse.wheel(0, 100)
    page.mouse.wheel(0, 100)
    settle(page)
    assert image_count(page) == f"Image 3 of {SLICES}"
    assert state(page)["sop"] == study.ct_sops[2]
    assert canvas_signature(page) != before
    page.locator(".sv-canvas").focus()
    page.keyboard.press("ArrowDown")
    assert image_count(page) == f"Image 4 of {SLICES}"
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")
    assert image_count(page) == f"Image 2 of {SLICES}"
    page.keyboard.press("PageDown")
    assert state(page)["index"] == 11
    page.keyboard.press("End")
    assert image_count(page) == f"Image {SLICES} of {SLICES}"
    page.keyboard.press("Home")
    assert state(page)["index"] == 0
    page.get_by_role("slider", name="Image number").fill("15")
    assert image_count(page) == f"Image 15 of {SLICES}"
    page.get_by_role("button", name="Next image").click()
    assert state(page)["sop"] == study.ct_sops[15]
    # Drag with the scroll tool: downwards goes forward.
    page.mouse.move(box["x"] + 300, box["y"] + 200)
    page.mouse.down()
    page.mouse.move(box["x"] + 300, box["y"] + 300, steps=10)
    page.mouse.up()
    assert state(page)["index"] > 15
    problems.assert_none()


def test_a_swipe_moves_through_the_stack_on_a_phone(phone: BrowserContext, base: str) -> None:
    page, problems = open_viewer(phone, base)
    box = canvas_box(page)
    x = box["x"] + box["width"] / 2
    before = canvas_signature(page)
    swipe(page, (x, box["y"] + 40), (x, box["y"] + box["height"] - 40))
    after = state(page)
    assert after["index"] > 0, after
    assert image_count(page) == f"Image {after['index'] + 1} of {SLICES}"
    assert canvas_signature(page) != before
    problems.assert_none()


def test_presets_keys_and_a_window_drag_change_the_pixels(
    desktop: BrowserContext, base: str
) -> None:
    page, problems = open_viewer(desktop, base)
    assert state(page)["window"] == [40, 400]
    default = canvas_signature(page)
    page.get_by_role("button", name="Lung", exact=True).click()
    assert state(page)["window"] == [-600, 1500]
    lung = canvas_signature(page)
    assert lung != default
    assert (
        page.get_by_role("button", name="Lung", exact=True).get_attribute("aria-pressed") == "true"
    )
    page.wait_for_function(
        "() => document.querySelector('.sv-status').textContent.startsWith('Lung')"
    )
    # A window change shows within one animation frame of being asked for.
    changed_in_one_frame = page.evaluate(
        """() => new Promise(resolve => {
            const v = document.querySelector('[data-viewer]').stackViewer;
            const c = v.canvas.getContext('2d');
            const probe = () => Array.from(c.getImageData(v.canvas.width / 2 | 0,
                v.canvas.height / 2 | 0, 1, 1).data).join();
            const before = probe();
            v.applyPreset('Bone');
            requestAnimationFrame(() => resolve(probe() !== before));
        })"""
    )
    assert changed_in_one_frame
    page.get_by_role("button", name="Window", exact=True).click()
    box = canvas_box(page)
    page.mouse.move(box["x"] + 400, box["y"] + 400)
    page.mouse.down()
    page.mouse.move(box["x"] + 300, box["y"] + 500, steps=8)
    page.mouse.up()
    dragged = state(page)["window"]
    assert dragged[0] > 500 and dragged[1] < 2000, dragged
    assert canvas_signature(page) not in (lung, default)
    page.locator(".sv-canvas").focus()
    page.keyboard.press("ArrowRight")
    assert state(page)["window"][1] > dragged[1]
    page.keyboard.press("r")
    assert state(page)["window"] == [40, 400]
    problems.assert_none()


def test_zoom_pan_and_reset(desktop: BrowserContext, base: str) -> None:
    page, problems = open_viewer(desktop, base)
    box = canvas_box(page)
    centre = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.move(*centre)
    page.keyboard.down("Control")
    page.mouse.wheel(0, -300)
    page.keyboard.up("Control")
    assert state(page)["zoom"] > 1.5
    assert state(page)["index"] == 0, "ctrl+wheel zooms, it does not scroll"
    page.get_by_role("button", name="Zoom in").click()
    zoomed = state(page)["zoom"]
    page.get_by_role("button", name="Pan", exact=True).click()
    before = state(page)["pan"]  # the zoom about the pointer moved the image a little
    page.mouse.move(*centre)
    page.mouse.down()
    page.mouse.move(centre[0] + 80, centre[1] + 30, steps=5)
    page.mouse.up()
    assert state(page)["pan"] == pytest.approx([before[0] + 80, before[1] + 30])
    page.get_by_text("More controls").click()
    page.get_by_role("button", name="Move left").click()
    assert state(page)["pan"] == pytest.approx([before[0] + 40, before[1] + 30])
    page.get_by_role("button", name="Reset").click()
    after = state(page)
    assert (after["zoom"], after["pan"]) == (1, [0, 0]) and zoomed > 1
    problems.assert_none()


def test_a_pinch_zooms_on_a_phone(phone: BrowserContext, base: str) -> None:
    page, problems = open_viewer(phone, base)
    box = canvas_box(page)
    pinch(page, (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2), 60, 180)
    assert state(page)["zoom"] > 2
    assert state(page)["index"] == 0
    problems.assert_none()


def test_overlays_are_drawn_at_their_image_coordinates_under_zoom_and_pan(
    desktop: BrowserContext, base: str, study: Study
) -> None:
    page, problems = open_viewer(desktop, base)
    sop = study.ct_sops[0]
    page.evaluate(
        """(sop) => document.querySelector('[data-viewer]').stackViewer.setOverlays([
            {sop, frame: 1, kind: 'point', x: 200, y: 230, label: 'Your answer'},
            {sop, frame: 1, kind: 'polygon', points: [[260, 260], [330, 260], [330, 320]]},
            {sop, frame: 1, kind: 'ellipse', cx: 256, cy: 300, rx: 40, ry: 20},
            {sop, frame: 2, kind: 'point', x: 200, y: 245},
        ])""",
        sop,
    )
    page.evaluate(
        "() => { const v = document.querySelector('[data-viewer]').stackViewer;"
        " v.setZoom(2.5); v.panBy(-120, 90); }"
    )
    # Image pixels per CSS pixel: the image fits the canvas, then the zoom.
    zoom = page.evaluate(
        "() => { const v = document.querySelector('[data-viewer]').stackViewer;"
        " return v.toScreen(1, 0)[0] - v.toScreen(0, 0)[0]; }"
    )
    yellow, green = (255, 212, 0), (61, 220, 132)
    for x, y, colour in [
        (200 - 7 / zoom, 230, yellow),  # on the point's circle (7 CSS pixels)
        (295, 260, green),  # on the polygon's first edge
        (296, 300, green),  # on the ellipse's right end
    ]:
        assert tuple(pixel_at_image(page, x, y)[:3]) == colour, (x, y)
    # The overlay of another frame is not drawn here.
    assert tuple(pixel_at_image(page, 200 - 7 / zoom, 245)[:3]) != yellow
    screenshot(page, "viewer-overlays-desktop")
    problems.assert_none()


def test_locate_by_click_and_by_keyboard_gives_image_coordinates_under_zoom(
    desktop: BrowserContext, base: str, study: Study
) -> None:
    page, problems = open_viewer(desktop, f"{base}/?locate=1&sop={study.ct_sops[4]}")
    assert state(page)["index"] == 4
    page.evaluate(
        """() => { const v = document.querySelector('[data-viewer]').stackViewer;
            window.located = [];
            v.addEventListener('locate', e => window.located.push(e.detail));
            v.setZoom(3); v.panBy(150, -60); }"""
    )
    settle(page)
    screen = page.evaluate(
        "() => document.querySelector('[data-viewer]').stackViewer.toScreen(280, 270)"
    )
    box = canvas_box(page)
    page.mouse.click(box["x"] + screen[0], box["y"] + screen[1])
    page.wait_for_function("() => window.located.length === 1")
    assert page.evaluate("() => window.located[0]") == {
        "sop": study.ct_sops[4],
        "frame": 1,
        "x": 280,
        "y": 270,
    }
    assert tuple(pixel_at_image(page, 280 - 7 / 3, 270)[:3]) == (255, 212, 0)
    page.wait_for_function(
        "() => document.querySelector('.sv-status').textContent.startsWith('Point placed')"
    )
    page.locator(".sv-canvas").focus()
    page.keyboard.press("x")
    assert page.get_by_role("button", name="Crosshair").get_attribute("aria-pressed") == "true"
    page.keyboard.press("Shift+ArrowRight")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowUp")
    page.keyboard.press("Enter")
    page.wait_for_function("() => window.located.length === 2")
    assert page.evaluate("() => window.located[1]") == {
        "sop": study.ct_sops[4],
        "frame": 1,
        "x": 291,
        "y": 269,
    }
    assert state(page)["index"] == 4, "the crosshair's arrows do not scroll"
    problems.assert_none()


def test_series_chooser_multi_frame_and_colour(
    desktop: BrowserContext, base: str, study: Study
) -> None:
    page, problems = open_viewer(desktop, base)
    page.get_by_role("button", name="MR · series 2 · 3 images").click()
    page.wait_for_function(
        "() => document.querySelector('.sv-status').textContent.startsWith('MR')"
    )
    settle(page)
    assert image_count(page) == "Image 1 of 3"
    first = canvas_signature(page)
    page.locator(".sv-canvas").focus()
    page.keyboard.press("ArrowDown")
    assert (state(page)["sop"], state(page)["frame"]) == (study.multi_frame_sop, 2)
    assert canvas_signature(page) != first
    page.get_by_role("button", name="XC · series 3 · 1 image").click()
    settle(page)
    assert tuple(pixel_at_image(page, 10, 32)[:3]) == (255, 0, 0)
    assert tuple(pixel_at_image(page, 50, 32)[:3]) == (0, 0, 255)
    page.get_by_role("button", name="OT · series 4 · 1 image").click()
    page.wait_for_function(
        "() => document.querySelector('[data-viewer]').stackViewer.state().sop === "
        f"'{study.jpeg_sop}'"
    )
    settle(page)
    red = pixel_at_image(page, 50, 5)  # the top band of the test image is red
    assert red[0] > 200 and red[1] < 60 and red[2] < 60, red
    problems.assert_none()


def test_the_rest_of_the_stack_is_loaded_in_the_background(
    desktop: BrowserContext, base: str, study: Study
) -> None:
    page, problems = new_page(desktop)
    frame_requests: list[str] = []
    page.on("request", lambda r: frame_requests.append(r.url) if "/frames/" in r.url else None)
    page.goto(base)
    page.wait_for_function(
        "() => document.querySelector('[data-viewer]')?.stackViewer?.state().loaded"
    )
    assert "/frames/1" in frame_requests[0] and study.ct_sops[0] in frame_requests[0]
    # One request an instance: the multi-frame instance's three frames in one.
    assert len(frame_requests) == SLICES + 3
    page.locator(".sv-canvas").focus()
    page.keyboard.press("End")
    drawn = page.evaluate(
        "() => new Promise(r => requestAnimationFrame(() => r("
        "document.querySelector('[data-viewer]').stackViewer.drawnKey)))"
    )
    assert drawn.startswith(study.ct_sops[-1] + "/1|")
    assert len(frame_requests) == SLICES + 3
    problems.assert_none()


def test_decoding_of_stored_values(desktop: BrowserContext, base: str) -> None:
    """decodeFrame and multipartBodies on bytes made here: masking and sign extension of
    Bits Stored, planar configuration 1, YBR_FULL, and a quoted boundary."""
    page, problems = open_viewer(desktop, base)
    found = page.evaluate(
        """async () => {
            const m = await import('/static/viewer.js');
            const base = {rows: 1, columns: 2, samplesPerPixel: 1, planarConfiguration: 0,
                          photometric: 'MONOCHROME2'};
            // 12 bits stored, signed: 0xF800 masks to 0x800 = -2048; high bits ignored.
            const signed12 = m.decodeFrame(new Uint8Array([0x00, 0xF8, 0xFF, 0x17]),
                {...base, bitsAllocated: 16, bitsStored: 12, pixelRepresentation: 1});
            const unsigned12 = m.decodeFrame(new Uint8Array([0x00, 0xF8, 0xFF, 0xFF]),
                {...base, bitsAllocated: 16, bitsStored: 12, pixelRepresentation: 0});
            const signed16 = m.decodeFrame(new Uint8Array([0x30, 0xF8, 0xFF, 0x7F]),
                {...base, bitsAllocated: 16, bitsStored: 16, pixelRepresentation: 1});
            const signed8 = m.decodeFrame(new Uint8Array([0xFF, 0x05]),
                {...base, bitsAllocated: 8, bitsStored: 8, pixelRepresentation: 1});
            const planar = m.decodeFrame(new Uint8Array([1, 2, 3, 4, 5, 6]),
                {...base, samplesPerPixel: 3, planarConfiguration: 1, photometric: 'RGB',
                 bitsAllocated: 8, bitsStored: 8, pixelRepresentation: 0});
            const ybr = m.decodeFrame(new Uint8Array([128, 128, 128, 76, 85, 255]),
                {...base, samplesPerPixel: 3, photometric: 'YBR_FULL',
                 bitsAllocated: 8, bitsStored: 8, pixelRepresentation: 0});
            const body = new TextEncoder().encode(
                '--a b\\r\\nContent-Type: application/octet-stream\\r\\n\\r\\nXY' +
                '\\r\\n--a b\\r\\n\\r\\nZ\\r\\n--a b--\\r\\n');
            const parts = m.multipartBodies(body.buffer,
                'multipart/related; type="application/octet-stream"; boundary="a b"');
            return {
                signed12: Array.from(signed12.values), unsigned12: Array.from(unsigned12.values),
                signed16: Array.from(signed16.values), min16: signed16.min,
                signed8: Array.from(signed8.values), planar: Array.from(planar.values),
                ybr: Array.from(ybr.values),
                parts: parts.map(p => new TextDecoder().decode(p)),
                window: [m.windowed(-1000, 40, 400), m.windowed(40, 40, 400),
                         m.windowed(1000, 40, 400)],
            };
        }"""
    )
    assert found["signed12"] == [-2048, 2047]
    assert found["unsigned12"] == [2048, 4095]
    assert found["signed16"] == [-2000, 32767] and found["min16"] == -2000
    assert found["signed8"] == [-1, 5]
    assert found["planar"] == [1, 3, 5, 2, 4, 6]
    assert found["ybr"][:3] == [128, 128, 128]
    assert found["ybr"][3] > 240 and found["ybr"][4] < 10 and found["ybr"][5] < 10
    assert found["parts"] == ["XY", "Z"]
    assert found["window"][0] == 0 and found["window"][2] == 255
    assert 126 < found["window"][1] < 129
    problems.assert_none()


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_the_viewer_is_accessible_and_pictured(
    size: str, request: pytest.FixtureRequest, base: str
) -> None:
    context: BrowserContext = request.getfixturevalue(size)
    page, problems = open_viewer(context, f"{base}/?locate=1")
    assert_accessible(page)
    screenshot(page, f"viewer-{size}")
    page.get_by_text("Keyboard shortcuts").click()
    page.get_by_text("More controls").click()
    assert_accessible(page)
    canvas = page.get_by_role("application")
    assert "image 1 of 20" in (canvas.get_attribute("aria-label") or "")
    for name in ["Scroll", "Window", "Zoom", "Pan", "Zoom in", "Zoom out", "Reset", "Lung"]:
        assert page.get_by_role("button", name=name, exact=True).is_visible(), name
    page.keyboard.press("Tab")
    focused = page.evaluate("() => document.activeElement.textContent")
    assert focused, "the first control takes the focus"
    screenshot(page, f"viewer-{size}-all-controls")
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, "the page scrolls sideways"
    problems.assert_none()
