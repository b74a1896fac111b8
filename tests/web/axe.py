"""axe-core in the page: the accessibility check of every web test (WCAG 2.2 AA rules).

axe-core is the npm package pinned (exact version) in tests/web/package.json, installed from
package-lock.json by ``make test`` (``npm ci`` in tests/web), never fetched at test time. It
is read from node_modules and evaluated in the page, so the page's own Content Security
Policy does not stand in the way (Playwright evaluates outside it).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from playwright.sync_api import Page

from tests.backends import unavailable

HERE = Path(__file__).resolve().parent
PACKAGE = HERE / "node_modules" / "axe-core"
BLOCKING = ("serious", "critical")
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


@functools.cache
def axe_source() -> str:
    """The pinned axe-core's script; skipped (a failure under CI=true) when it is not
    installed at the pinned version."""
    pinned = json.loads((HERE / "package.json").read_text(encoding="utf-8"))["dependencies"]
    wanted = pinned["axe-core"]
    manifest = PACKAGE / "package.json"
    if not manifest.is_file():
        unavailable("axe-core is not installed: npm ci in tests/web (make test does)")
    installed = json.loads(manifest.read_text(encoding="utf-8"))["version"]
    if installed != wanted:
        unavailable(f"axe-core {installed} is installed, {wanted} is pinned: npm ci in tests/web")
    return (PACKAGE / "axe.min.js").read_text(encoding="utf-8")


def violations(page: Page) -> list[dict[str, Any]]:
    """axe's violations on the page as it is now."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(axe_source())
    found: list[dict[str, Any]] = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})"
        ".then(r => r.violations)",
        TAGS,
    )
    return found


def describe(found: list[dict[str, Any]]) -> str:
    """One block a violation: impact, rule, what it means, the elements it was found on."""
    lines = []
    for violation in found:
        lines.append(f"[{violation['impact']}] {violation['id']}: {violation['help']}")
        lines.append(f"    {violation['helpUrl']}")
        for node in violation["nodes"][:5]:
            lines.append(f"    at {' '.join(node['target'])}: {node['failureSummary']}")
    return "\n".join(lines)


def assert_accessible(page: Page) -> None:
    """No serious or critical axe violation; the list of them, readable, when there is."""
    blocking = [v for v in violations(page) if v.get("impact") in BLOCKING]
    assert not blocking, "accessibility violations:\n" + describe(blocking)
