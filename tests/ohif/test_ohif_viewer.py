"""The OHIF v3 viewer (the prebuilt ``dist/`` of ``@ohif/app``, version pinned in
package.json) against our real server, in headless Chromium driven by playwright-core.

What a radiologist does: the study list shows our studies (a non-ASCII name among them),
a click on a study and on "Basic Viewer" opens it, an image appears, the mouse wheel moves
through the slices; and a resident opens the de-identified teaching copy through
``/teaching/dicomweb``. Twice: OHIF and our server on one origin behind a reverse proxy
(as nginx would serve them), and on two origins, relying on our CORS. Any failed request to
our server or to the page's own server, any HTTP error from them and any console error
fails the test; screenshots, the console log and the times to the first image are kept in
``artifacts/ohif/`` (or ``$ARTIFACTS_DIR/ohif/``).

The browser side is tests/ohif/viewer.mjs; it reports, this module judges. Chromium, node
and npm missing: skipped locally, a failure under CI=true (tests/backends.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.backends import unavailable
from tests.ohif import install
from tests.ohif.app_config import TEACHING, app_config_js
from tests.ohif.study import Study, store, studies, teaching_case
from tests.ohif.webserver import viewer_server
from tests.serving import ROOT, serve

pytestmark = pytest.mark.e2e

HERE = Path(__file__).resolve().parent
DRIVER = HERE / "viewer.mjs"
MODES = ("same-origin", "cross-origin")
MODE_BUTTON = "Basic Viewer"  # the longitudinal mode's button in OHIF's study list
WHEEL_STEPS = 3
DEADLINE_MS = 120_000  # the whole browser session; each wait inside polls, none sleeps
DRIVER_TIMEOUT = 240


@dataclass(frozen=True)
class Toolchain:
    node: str
    chromium: str
    dist: Path


@dataclass(frozen=True)
class Pacs:
    """Our running server with the studies stored and the teaching case made."""

    base: str
    studies: list[Study]
    teaching_study_uid: str


def artifacts_dir() -> Path:
    root = os.environ.get("ARTIFACTS_DIR")
    return (Path(root) if root else ROOT / "artifacts") / "ohif"


def chromium_path() -> str | None:
    path = os.environ.get("CHROMIUM") or "/usr/bin/chromium"
    return shutil.which(path)


@pytest.fixture(scope="module")
def toolchain() -> Toolchain:
    """Chromium, node and npm from the system; playwright-core and OHIF installed by
    ``make test`` (``python -m tests.ohif.install``) before the tests run."""
    chromium, node, npm = chromium_path(), shutil.which("node"), shutil.which("npm")
    if chromium is None:
        unavailable("Chromium is not installed (Debian package chromium, or set CHROMIUM)")
    if node is None or npm is None:
        unavailable("node and npm are not installed (Debian packages nodejs, npm)")
    dist = install.installed_dist()
    if dist is None or not install.node_modules_current():
        unavailable("the viewer is not installed: python -m tests.ohif.install (make test does)")
    return Toolchain(node=node, chromium=chromium, dist=dist)


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pacs]:
    """Our server, embedded default in a temporary folder, authentication off (a loopback
    demo: every request acts as an admin, which may make teaching cases), CORS at its
    default (any origin)."""
    folder = tmp_path_factory.mktemp("ohif-server")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADCASE_")}
    env |= {
        "RADCASE_AUTH": "off",
        "RADCASE_DATA_DIR": str(folder / "data"),
        "RADCASE_DIMSE_PORT": "0",
        "RADCASE_LOG_LEVEL": "warning",
    }
    with serve(env, log=folder / "server.log") as base:
        made = studies()
        for study in made:
            store(f"{base}/dicomweb", study)
        yield Pacs(base, made, teaching_case(base, made[0]))


@pytest.fixture(scope="module", autouse=True)
def fresh_artifacts() -> None:
    """This run's screenshots and times only: nothing left over from an earlier run."""
    shutil.rmtree(artifacts_dir(), ignore_errors=True)
    artifacts_dir().mkdir(parents=True)


def driver_input(mode: str, viewer: str, pacs: Pacs, toolchain: Toolchain) -> dict[str, Any]:
    return {
        "chromium": toolchain.chromium,
        "viewer": viewer,
        "localOrigins": [viewer, pacs.base],
        "studies": [
            {"description": s.description, "nameParts": s.name_parts} for s in pacs.studies
        ],
        "modeButton": MODE_BUTTON,
        "wheelSteps": WHEEL_STEPS,
        "teachingPath": f"/viewer/{TEACHING}?StudyInstanceUIDs={pacs.teaching_study_uid}",
        "artifacts": str(artifacts_dir() / mode),
        "deadlineMs": DEADLINE_MS,
    }


def run_driver(toolchain: Toolchain, data: dict[str, Any]) -> dict[str, Any]:
    """viewer.mjs in node; its last line of output is the report."""
    done = subprocess.run(
        [toolchain.node, str(DRIVER), json.dumps(data)],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=DRIVER_TIMEOUT,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and lines, f"viewer.mjs failed:\n{done.stdout}\n{done.stderr}"
    report: dict[str, Any] = json.loads(lines[-1])
    return report


def record_times(mode: str, report: dict[str, Any]) -> dict[str, Any]:
    """Adds this mode's times to artifacts/ohif/time-to-first-image.json (one key a mode),
    before any assertion, so that a failing run keeps what it measured."""
    path = artifacts_dir() / "time-to-first-image.json"
    times = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    mine: dict[str, Any] = {
        "study_list_click_to_first_image_ms": report.get("viewer", {}).get("firstImageMs"),
        "teaching_navigation_to_first_image_ms": report.get("teaching", {}).get("firstImageMs"),
        "ohif_timings_ms": report["ohifTimings"],
    }
    times[mode] = mine
    path.write_text(json.dumps(times, indent=2) + "\n", encoding="utf-8")
    return mine


def check_study_list(report: dict[str, Any], pacs: Pacs) -> None:
    """Every study once, with its whole name; the lower-case family name (non-ASCII) finds
    the first study and only it."""
    rows = {row["description"]: row for row in report["studyList"]}
    for study in pacs.studies:
        row = rows[study.description]
        assert row["rows"] == 1, row
        assert row["nameParts"] == study.name_parts, f"the name is not shown: {row}"
    filtered = report["filtered"]
    assert len(filtered["rows"]) == 1, filtered
    assert pacs.studies[0].description in filtered["rows"][0], filtered


def check_viewer(report: dict[str, Any]) -> None:
    viewer, scroll, teaching = report["viewer"], report["scroll"], report["teaching"]
    assert viewer["nonBlank"] and viewer["firstImageMs"] is not None, viewer
    assert scroll["changed"] and scroll["nonBlank"], scroll
    assert scroll["sliceAfter"]["index"] > scroll["sliceBefore"]["index"], scroll
    assert teaching["nonBlank"] and teaching["firstImageMs"] is not None, teaching
    assert teaching["nameParts"] == [], f"the teaching copy shows the patient's name: {teaching}"
    assert report["settledBeforeTeaching"] and report["settledAtEnd"], "requests never settled"


def check_routes(mode: str, report: dict[str, Any], viewer: str, pacs: Pacs) -> None:
    """Behind the proxy the browser reaches only the proxy (BulkDataURIs and all); on two
    origins it reaches our server directly."""
    origins = set(report["origins"])
    assert viewer in origins
    if mode == "same-origin":
        assert pacs.base not in origins, report["origins"]
    else:
        assert pacs.base in origins, report["origins"]


def drive(mode: str, toolchain: Toolchain, pacs: Pacs) -> tuple[str, dict[str, Any], set[str]]:
    """Serves OHIF for ``mode`` and runs the browser through it: the viewer's URL, the
    driver's report and the path roots the proxy forwarded (empty without a proxy)."""
    upstream = pacs.base if mode == "same-origin" else None
    with viewer_server(toolchain.dist, upstream=upstream) as (viewer, site):
        root = viewer if upstream else pacs.base
        site.app_config = app_config_js(f"{root}/dicomweb", f"{root}/teaching/dicomweb")
        report = run_driver(toolchain, driver_input(mode, viewer, pacs, toolchain))
        served = {path.split("/studies", 1)[0] for _, path, _ in site.served}
    return viewer, report, served if upstream else set()


@pytest.mark.parametrize("mode", MODES)
def test_ohif_opens_our_studies(
    mode: str, toolchain: Toolchain, pacs: Pacs, capsys: pytest.CaptureFixture[str]
) -> None:
    """The study list, the filter, the first image, scrolling and the teaching copy, with
    no failed request and no console error; the times are printed and kept."""
    viewer, report, proxied = drive(mode, toolchain, pacs)
    times = record_times(mode, report)
    with capsys.disabled():
        print(
            f"\nOHIF {mode}: first image {times['study_list_click_to_first_image_ms']} ms "
            f"after 'Basic Viewer', teaching case {times['teaching_navigation_to_first_image_ms']}"
            f" ms after navigation; external requests: {report['externalRequests'] or 'none'}"
        )
    where = f"(screenshots in {artifacts_dir() / mode})"
    assert "error" not in report, f"{report['error']}\n{where}"
    assert report["failedRequests"] == [], f"{report['failedRequests']} {where}"
    assert report["consoleErrors"] == [], f"{report['consoleErrors']} {where}"
    check_study_list(report, pacs)
    check_viewer(report)
    check_routes(mode, report, viewer, pacs)
    if mode == "same-origin":
        assert {"/dicomweb", "/teaching/dicomweb"} <= proxied, sorted(proxied)
