"""The educators' authoring pages over HTTP: burned-in review (held copy shown, blanking
previewed then applied through the case service) and the question editor (each kind written
through the form, reordered, deleted after a confirmation, previewed as a learner and graded
as the quiz grades), every change audited, bad input answered 400 in sentences."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from starlette.testclient import TestClient

from radcase_pacs.settings import Settings
from tests.apps import served
from tests.radcase_pacs.web.authoring_world import (
    CAPTURE_SIZE,
    TEXT_ROWS,
    Authoring,
    bearer,
    build,
    csrf_of,
    sign_in,
    teaching_frame,
)

ADMIN_PASSWORD = "a long admin password"


@dataclass
class Site:
    client: TestClient
    world: Authoring
    admin: dict[str, str]

    def post(self, url: str, data: dict[str, Any]) -> httpx.Response:
        token = csrf_of(self.client.get(f"/teach/cases/{self.world.case_id}/questions").text)
        return self.client.post(url, data={**data, "csrf": token})

    def audited(self, action: str) -> list[dict[str, Any]]:
        entries = self.client.get(
            "/api/audit", params={"action": action}, headers=self.admin
        ).json()["entries"]
        return list(entries)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    settings = Settings(
        data_dir=tmp_path / "data", auth="on", admin_password=ADMIN_PASSWORD, password_hash_rounds=4
    )
    with served(settings, follow_redirects=False) as client:
        world = build(client, ADMIN_PASSWORD)
        admin = bearer(client, "admin", ADMIN_PASSWORD)
        sign_in(client)
        yield Site(client, world, admin)


# -- burned-in review -------------------------------------------------------------------------


def test_the_review_page_shows_the_held_copy_and_says_why_publishing_waits(site: Site) -> None:
    w = site.world
    page = site.client.get(f"/teach/cases/{w.case_id}/review")
    assert page.status_code == 200
    assert 'data-gate="refused"' in page.text and "cannot be published" in page.text
    assert f"/teach/cases/{w.case_id}/review/{w.flagged_sop}" in page.text
    assert 'data-draw="rectangle"' in page.text and "Burned In Annotation" in page.text
    frames = site.client.get(f"/teach/cases/{w.case_id}/review/{w.flagged_sop}/frames/1")
    assert frames.status_code == 200
    assert frames.headers["content-type"].startswith("multipart/related")
    body = frames.content
    pixels = body[body.index(b"\r\n\r\n") + 4 : body.rindex(b"\r\n--")]
    values = np.frombuffer(pixels, "<u2").reshape(CAPTURE_SIZE, CAPTURE_SIZE)
    assert (values[:TEXT_ROWS] == 4095).all() and (values[TEXT_ROWS:] == 1000).all()
    # The held copy is not in the teaching collection yet.
    refused = site.client.post(f"/api/cases/{w.case_id}/publish", headers=w.educator)
    assert refused.status_code == 409


def test_blanking_is_previewed_then_applied_to_the_teaching_copy(site: Site) -> None:
    w = site.world
    url = f"/teach/cases/{w.case_id}/review"
    region = {"x-0": "0", "y-0": "0", "width-0": str(CAPTURE_SIZE), "height-0": str(TEXT_ROWS)}
    preview = site.post(url, {"sop": w.flagged_sop, "action": "preview", **region})
    assert preview.status_code == 200
    assert "Blank these regions" in preview.text and "data-preview" in preview.text
    assert f"Rectangle 1: column 0, row 0, {CAPTURE_SIZE} by {TEXT_ROWS} pixels" in preview.text
    assert not site.audited("case.review"), "a preview changes nothing"
    done = site.post(url, {"sop": w.flagged_sop, "action": "blank", **region})
    assert done.status_code == 303
    assert done.headers["location"] == f"{url}?notice=blanked"
    after = site.client.get(done.headers["location"]).text
    assert "blanked" in after and 'data-gate="open"' in after
    frame = teaching_frame(site.client, w, w.educator)
    values = np.frombuffer(frame, "<u2").reshape(CAPTURE_SIZE, CAPTURE_SIZE)
    assert (values[:TEXT_ROWS] == 0).all() and (values[TEXT_ROWS:] == 1000).all()
    (entry,) = site.audited("case.review")
    assert entry["actor"] == "teacher" and "blank regions=1" in entry["detail"]
    again = site.post(url, {"sop": w.flagged_sop, "action": "clean"})
    assert again.status_code == 409
    assert site.client.post(f"/api/cases/{w.case_id}/publish", headers=w.educator).is_success


def test_bad_rectangles_are_refused_in_sentences_and_change_nothing(site: Site) -> None:
    w = site.world
    url = f"/teach/cases/{w.case_id}/review"
    cases = [
        ({"x-0": "a", "y-0": "0", "width-0": "4", "height-0": "4"}, "Rectangle 1, x:"),
        ({"x-0": "0", "y-0": "0", "width-0": "0", "height-0": "4"}, "Rectangle 1, width:"),
        ({}, "Rectangles: draw or enter at least one rectangle"),
        ({"x-0": "60", "y-0": "0", "width-0": "40", "height-0": "4"}, "Rectangles:"),
    ]
    for fields, sentence in cases:
        answer = site.post(url, {"sop": w.flagged_sop, "action": "blank", **fields})
        assert answer.status_code == 400, fields
        assert sentence in answer.text and "Nothing was changed" in answer.text
    assert site.post(url, {"sop": "1.2.3", "action": "clean"}).status_code == 400
    assert site.post(url, {"sop": w.flagged_sop, "action": "fly"}).status_code == 400
    forged = site.client.post(url, data={"sop": w.flagged_sop, "action": "clean", "csrf": "0"})
    assert forged.status_code == 403
    # Only the attempt the service refused got as far as the audit log (audited before it
    # was tried); the image still waits for review.
    assert len(site.audited("case.review")) == 1
    case = site.client.get(f"/api/cases/{w.case_id}", headers=w.educator).json()
    assert case["pending_reviews"] == 1
    clean = site.post(url, {"sop": w.flagged_sop, "action": "clean"})
    assert clean.status_code == 303 and clean.headers["location"].endswith("notice=clean")


def test_unknown_cases_images_and_frames_are_404_pages(site: Site) -> None:
    w = site.world
    assert site.client.get("/teach/cases/nonesuch/review").status_code == 404
    assert site.client.get(f"/teach/cases/{w.case_id}/review?sop=1.2.3").status_code == 404
    base = f"/teach/cases/{w.case_id}/review"
    assert site.client.get(f"{base}/{w.flagged_sop}/frames/2").status_code == 404
    assert site.client.get(f"{base}/{w.ct_sops[0]}/frames/1").status_code == 404
    assert site.client.get(f"{base}/{w.flagged_sop}/frames/x").status_code == 400
    assert site.client.get("/teach/cases/nonesuch/questions").status_code == 404
    assert site.client.get(f"/teach/cases/{w.case_id}/questions/nonesuch").status_code == 404
    assert site.client.get(f"/teach/cases/{w.case_id}/questions/new?kind=essay").status_code == 404


# -- the question editor ----------------------------------------------------------------------


def question_ids(site: Site) -> list[str]:
    listed = site.client.get(
        f"/api/cases/{site.world.case_id}/questions", headers=site.world.educator
    )
    return [q["id"] for q in listed.json()]


def add(site: Site, kind: str, fields: dict[str, Any]) -> str:
    answer = site.post(
        f"/teach/cases/{site.world.case_id}/questions/new",
        {"kind": kind, "action": "save", **fields},
    )
    assert answer.status_code == 303, answer.text
    return str(answer.headers["location"].split("/")[-1].split("?")[0])


def test_one_question_of_each_kind_is_written_through_the_form(site: Site) -> None:
    w = site.world
    base = f"/teach/cases/{w.case_id}/questions"
    new_mc = site.client.get(f"{base}/new?kind=multiple_choice")
    assert new_mc.status_code == 200 and new_mc.text.count('name="option-text-') == 4
    rows = {f"option-text-{n}": text for n, text in enumerate(["A", "B", "", ""])}
    more = site.post(f"{base}/new", {"kind": "multiple_choice", "action": "add-option", **rows})
    assert more.status_code == 200 and more.text.count('name="option-text-') == 5
    mc = add(
        site,
        "multiple_choice",
        {
            "prompt": "Which?",
            **{f"option-id-{n}": letter for n, letter in enumerate("abcd")},
            "option-text-0": "Pneumonia",
            "option-text-1": "Cancer",
            "option-text-2": "",
            "option-text-3": "Abscess",
            "correct": ["1", "3"],
            "feedback": "Both fit.",
            "hint": "Look twice.",
        },
    )
    ft = add(
        site,
        "free_text",
        {"prompt": "Name it.", "accepted": "Lung cancer\n", "synonyms": "carcinoma\nNSCLC"},
    )
    locate_page = site.client.get(f"{base}/new?kind=locate")
    assert locate_page.status_code == 200 and "data-locate-form" in locate_page.text
    assert w.ct_sops[0] in locate_page.text and w.flagged_sop not in locate_page.text
    loc = add(
        site,
        "locate",
        {
            "prompt": "Where?",
            "sop": w.ct_sops[1],
            "frame": "1",
            "region_shape": "polygon",
            "points": "30, 20\n50, 20\n50, 40\n30, 40",
        },
    )
    stored = site.client.get(f"/api/cases/{w.case_id}/questions", headers=w.educator).json()
    assert [q["id"] for q in stored] == [mc, ft, loc]
    keys = [q["key"] for q in stored]
    assert [o["text"] for o in keys[0]["options"]] == ["Pneumonia", "Cancer", "Abscess"]
    assert sorted(keys[0]["correct"]) == ["b", "d"]
    assert keys[1]["accepted"] == ["Lung cancer"] and keys[1]["synonyms"] == ["carcinoma", "NSCLC"]
    assert keys[2]["region"] == {
        "shape": "polygon",
        "points": [[30, 20], [50, 20], [50, 40], [30, 40]],
    }
    edit = site.client.get(f"{base}/{loc}")
    assert "30, 20\n50, 20" in edit.text and "Preview as a learner" in edit.text
    changed = site.post(
        f"{base}/{loc}",
        {
            "prompt": "Where now?",
            "sop": w.ct_sops[2],
            "frame": "1",
            "region_shape": "ellipse",
            "cx": "40",
            "cy": "30",
            "rx": "9.5",
            "ry": "8",
        },
    )
    assert changed.status_code == 303
    key = site.client.get(f"/api/cases/{w.case_id}/questions", headers=w.educator).json()[2]["key"]
    assert key["sop_instance_uid"] == w.ct_sops[2]
    assert key["region"] == {"shape": "ellipse", "cx": 40, "cy": 30, "rx": 9.5, "ry": 8}
    assert len(site.audited("question.create")) == 3
    assert len(site.audited("question.update")) == 1


def test_bad_questions_are_refused_in_sentences_naming_the_field(site: Site) -> None:
    w = site.world
    base = f"/teach/cases/{w.case_id}/questions/new"
    cases = [
        ("multiple_choice", {"prompt": "Q", "option-text-0": "one"}, "Options: write at least two"),
        (
            "multiple_choice",
            {"prompt": "Q", "option-text-0": "a", "option-text-1": "b"},
            "Correct options:",
        ),
        (
            "multiple_choice",
            {"prompt": " ", "option-text-0": "a", "option-text-1": "b", "correct": "0"},
            "Prompt:",
        ),
        ("free_text", {"prompt": "Q", "accepted": "  "}, "Accepted answers:"),
        ("free_text", {"prompt": "Q", "accepted": "x" * 301}, "Accepted answers, line 1:"),
        (
            "locate",
            {
                "prompt": "Q",
                "sop": w.ct_sops[0],
                "frame": "1",
                "region_shape": "ellipse",
                "cx": "x",
            },
            "Ellipse centre column (cx): enter a number",
        ),
        (
            "locate",
            {
                "prompt": "Q",
                "sop": w.ct_sops[0],
                "frame": "1",
                "region_shape": "ellipse",
                "cx": "1",
                "cy": "1",
                "rx": "0",
                "ry": "1",
            },
            "Ellipse half-width (rx):",
        ),
        (
            "locate",
            {
                "prompt": "Q",
                "sop": w.ct_sops[0],
                "frame": "1",
                "region_shape": "polygon",
                "points": "1, 1\n2, 2\n3, 3",
            },
            "Region: the polygon has no area",
        ),
        (
            "locate",
            {
                "prompt": "Q",
                "sop": "1.2.3.4",
                "frame": "1",
                "region_shape": "polygon",
                "points": "1, 1\n9, 2\n3, 9",
            },
            "Image: instance",
        ),
        ("locate", {"prompt": "Q", "sop": "", "frame": "0x", "points": "a b"}, "Frame:"),
    ]
    for kind, fields, sentence in cases:
        answer = site.post(base, {"kind": kind, "action": "save", **fields})
        assert answer.status_code == 400, (fields, answer.status_code)
        assert sentence in answer.text, (sentence, answer.text[-3000:])
    assert site.post(base, {"kind": "essay"}).status_code == 400
    # Only the question the service refused (its image) got as far as the audit log.
    assert question_ids(site) == [] and len(site.audited("question.create")) == 1


def test_questions_are_reordered_and_deleted_after_a_confirmation(site: Site) -> None:
    w = site.world
    base = f"/teach/cases/{w.case_id}/questions"
    ids = [add(site, "free_text", {"prompt": f"Q{n}", "accepted": "x"}) for n in range(3)]
    assert site.post(f"{base}/{ids[2]}/move", {"direction": "up"}).status_code == 303
    assert question_ids(site) == [ids[0], ids[2], ids[1]]
    assert site.post(f"{base}/{ids[0]}/move", {"direction": "up"}).status_code == 303
    assert question_ids(site) == [ids[0], ids[2], ids[1]], "the first stays first"
    assert site.post(f"{base}/{ids[0]}/move", {"direction": "down"}).status_code == 303
    assert question_ids(site) == [ids[2], ids[0], ids[1]]
    listing = site.client.get(base).text
    assert listing.index("Q2") < listing.index("Q0") < listing.index("Q1")
    confirm = site.client.get(f"{base}/{ids[1]}/delete")
    assert confirm.status_code == 200 and "Delete the question" in confirm.text
    assert "review history" in confirm.text
    deleted = site.post(f"{base}/{ids[1]}/delete", {})
    assert deleted.status_code == 303 and question_ids(site) == [ids[2], ids[0]]
    assert site.post(f"{base}/{ids[1]}/delete", {}).status_code == 404
    assert [e["action"] for e in site.audited("question.delete")] == ["question.delete"]


def test_the_preview_grades_as_the_quiz_and_records_nothing(site: Site) -> None:
    w = site.world
    base = f"/teach/cases/{w.case_id}/questions"
    mc = add(
        site,
        "multiple_choice",
        {
            "prompt": "Which?",
            "option-text-0": "No",
            "option-text-1": "Yes",
            "correct": "1",
            "feedback": "Because yes.",
            "hint": "Not no.",
        },
    )
    ft = add(site, "free_text", {"prompt": "Name it.", "accepted": "Crohn's disease"})
    loc = add(
        site,
        "locate",
        {
            "prompt": "Where?",
            "sop": w.ct_sops[0],
            "frame": "1",
            "region_shape": "ellipse",
            "cx": "40",
            "cy": "30",
            "rx": "8",
            "ry": "8",
        },
    )
    shown = site.client.get(f"{base}/{mc}/preview")
    assert (
        shown.status_code == 200 and "Select one" in shown.text and "Because yes." not in shown.text
    )
    assert "Show the hint" in shown.text
    right = site.post(f"{base}/{mc}/preview", {"selected": "b"})
    assert ">Right<" in right.text and "Because yes." in right.text
    wrong = site.post(f"{base}/{mc}/preview", {"selected": ["a", "b"]})
    assert ">Wrong<" in wrong.text and "Right: Yes" in wrong.text
    assert ">Right<" in site.post(f"{base}/{ft}/preview", {"text": "disease CROHNS"}).text
    assert ">Wrong<" in site.post(f"{base}/{ft}/preview", {"text": "colitis"}).text
    inside = site.post(
        f"{base}/{loc}/preview", {"sop": w.ct_sops[0], "frame": "1", "x": "44", "y": "33"}
    )
    assert ">Right<" in inside.text and "solution-overlays" in inside.text
    elsewhere = site.post(
        f"{base}/{loc}/preview", {"sop": w.ct_sops[1], "frame": "1", "x": "40", "y": "30"}
    )
    assert ">Wrong<" in elsewhere.text
    bad = site.post(f"{base}/{loc}/preview", {"x": "left", "y": "1"})
    assert bad.status_code == 400 and "X:" in bad.text
    history = site.client.get("/api/progress/history", headers=w.educator).json()
    assert history["total"] == 0, "a preview records no review"
