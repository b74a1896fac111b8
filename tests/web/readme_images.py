"""The README's screenshots, from the browser tests' artifacts.

    python -m pytest tests/web               # writes tests/web/artifacts/*.png
    python -m tests.web.readme_images        # copies the chosen ones, scaled, to docs/screens

Scaled to 960 pixels wide (phone shots to 375) and cut at 1600 pixels high, so the README
shows each screen whole without a large repository.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from tests.web.browser import artifacts_dir

ROOT = Path(__file__).resolve().parents[2]
TARGET = ROOT / "docs" / "screens"
CHOSEN = {
    "learner-desktop-1-sign-in": "sign-in",
    "learner-desktop-2-today": "today",
    "learner-desktop-3-question": "question",
    "learner-desktop-6-feedback": "feedback",
    "learner-desktop-7-progress": "progress",
    "learner-phone-3-question": "question-phone",
    "educator-desktop-02-studies": "teach-studies",
    "educator-desktop-03-study": "teach-study",
    "educator-desktop-05-case-filled": "teach-case",
    "educator-desktop-08-burned-in-preview": "teach-review",
    "educator-desktop-13-question-locate-drawn": "teach-locate",
    "educator-desktop-14-question-preview": "teach-preview",
    "teach-cases-desktop": "teach-cases",
    "educator-desktop-20-group-assigned": "teach-group",
    "educator-desktop-28-cohort-progress": "teach-progress",
    "admin-desktop-03-user-added": "admin-users",
    "admin-desktop-05-key-created": "admin-keys",
    "admin-desktop-08-audit-filtered": "admin-audit",
    "admin-desktop-10-status": "admin-status",
}
WIDTH = {"phone": 375}
MAX_HEIGHT = 1600


def main() -> None:
    TARGET.mkdir(parents=True, exist_ok=True)
    for source, name in CHOSEN.items():
        image = Image.open(artifacts_dir() / f"{source}.png").convert("RGB")
        width = WIDTH["phone"] if "phone" in source else 960
        height = round(image.height * width / image.width)
        scaled = image.resize((width, height), Image.Resampling.LANCZOS)
        scaled.crop((0, 0, width, min(height, MAX_HEIGHT))).save(
            TARGET / f"{name}.png", optimize=True
        )
        print(TARGET / f"{name}.png")


if __name__ == "__main__":
    main()
