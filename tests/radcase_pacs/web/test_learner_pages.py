"""The learner's pages over HTTP, with authentication on and a learner signed in through the
form: the question, the hint, the answer, the feedback and the revealed case, progress; the
no-leak rule over every byte the browser receives before each answer; and the refusals
(bad addresses, answering twice, a form without its token, another institution)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from radcase_pacs.auth.principal import Role
from radcase_pacs.settings import Settings
from tests.apps import served
from tests.factories import multipart_body, to_bytes
from tests.web.department import EDUCATOR, HIDDEN, HINT, LEARNER, NODULE, PASSWORD, chest_ct

ADMIN_PASSWORD = "an admin password for tests"
OTHER = "hospital-b"
OHIF = "https://ohif.example.org/viewer?StudyInstanceUIDs={study}"


@dataclass
class Ward:
    client: TestClient
    case: dict[str, Any]
    questions: dict[str, dict[str, Any]]
    """By kind, as the educator wrote them (with their keys)."""
    nodule_sop: str


def token(client: TestClient, username: str, password: str) -> dict[str, str]:
    answer = client.post(
        "/api/auth/token",
        data={"grant_type": "password", "username": username, "password": password},
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def sign_in(client: TestClient, username: str, password: str = PASSWORD) -> None:
    client.cookies.clear()
    answer = client.post(
        "/login",
        data={"username": username, "password": password, "next": "/", "csrf": ""},
        headers={"Origin": "http://testserver"},
    )
    assert answer.status_code == 303, answer.text


def csrf_of(page: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([0-9a-f]*)"', page)
    assert found is not None
    return found.group(1)


def build(client: TestClient) -> Ward:
    """A learner, an educator, and a published chest CT case with a question of each kind
    (multiple choice with a hint, free text, locate), made through the API."""
    users = client.app.state.auth.users  # type: ignore[attr-defined]
    users.add_user(LEARNER, "default", Role.LEARNER, PASSWORD)
    users.add_user(EDUCATOR, "default", Role.EDUCATOR, PASSWORD)
    users.ensure_institution(OTHER, "Hospital B")
    users.add_user("elsewhere", OTHER, Role.LEARNER, PASSWORD)
    educator = token(client, EDUCATOR, PASSWORD)

    def ok(method: str, url: str, **kwargs: Any) -> Any:
        answer = client.request(method, url, headers=educator, **kwargs)
        assert answer.status_code in (200, 201), f"{method} {url}: {answer.text}"
        return answer.json()

    instances = chest_ct()
    body, content_type = multipart_body([to_bytes(ds) for ds in instances])
    stored = client.post(
        "/dicomweb/studies",
        content=body,
        headers={**educator, "Content-Type": content_type, "Accept": "application/dicom+json"},
    )
    assert stored.status_code == 200, stored.text
    case = ok(
        "POST",
        "/api/cases",
        json={
            "study_instance_uid": instances[0].StudyInstanceUID,
            "title": HIDDEN["title"],
            "history": "64-year-old smoker with a cough for three months.",
            "findings": HIDDEN["findings"],
            "diagnosis": HIDDEN["diagnosis"],
            "differential": [HIDDEN["differential"]],
            "discussion": HIDDEN["discussion"],
            "tags": {
                "categories": ["TCE302"],
                "level": "TCE202",
                "modalities": ["CT"],
                "free": [HIDDEN["free_tag"]],
            },
        },
    )
    ok("POST", f"/api/cases/{case['id']}/publish")
    study = case["teaching_study_instance_uid"]
    found = client.get(
        f"/teaching/dicomweb/studies/{study}/instances",
        params={"InstanceNumber": str(NODULE[2])},
        headers=educator,
    )
    nodule_sop = found.json()[0]["00080018"]["Value"][0]
    x, y, _, r = NODULE
    bodies = {
        "multiple_choice": {
            "prompt": "What is the most likely diagnosis?",
            "key": {
                "kind": "multiple_choice",
                "options": [
                    {"id": "a", "text": "Pneumonia"},
                    {"id": "b", "text": "Lung cancer"},
                    {"id": "c", "text": "Pneumothorax"},
                ],
                "correct": ["b"],
            },
            "feedback": HIDDEN["feedback"],
            "hint": HINT,
        },
        "free_text": {
            "prompt": "Name the finding.",
            "key": {
                "kind": "free_text",
                "accepted": [HIDDEN["free_text"]],
                "synonyms": [HIDDEN["synonym"]],
            },
        },
        "locate": {
            "prompt": "Point at the nodule.",
            "key": {
                "kind": "locate",
                "sop_instance_uid": nodule_sop,
                "frame": 1,
                "region": {"shape": "ellipse", "cx": x, "cy": y, "rx": r + 2, "ry": r + 2},
            },
        },
    }
    questions = {
        kind: ok("POST", f"/api/cases/{case['id']}/questions", json=body)
        for kind, body in bodies.items()
    }
    return Ward(client, case, questions, nodule_sop)


@pytest.fixture(scope="module")
def ward(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ward]:
    settings = Settings(
        data_dir=Path(tmp_path_factory.mktemp("learner") / "data"),
        auth="on",
        admin_password=ADMIN_PASSWORD,
        password_hash_rounds=4,
        viewer_url=OHIF,
    )
    with served(settings, follow_redirects=False) as client:
        yield build(client)


def start_session(client: TestClient) -> str:
    """Today's review started from the Today page's form; the first question's address."""
    today = client.get("/")
    assert today.status_code == 200
    started = client.post("/review", data={"source": "due", "csrf": csrf_of(today.text)})
    assert started.status_code == 303, started.text
    location = started.headers["location"]
    assert re.fullmatch(r"/sessions/[0-9a-f]{24}/items/1", location), location
    return location


def referenced(client: TestClient, page: str) -> list[str]:
    """Every body the browser fetches because of ``page``: its scripts and styles, and what
    the viewer will ask the teaching root for (each frame of the manifest, each series'
    thumbnail)."""
    bodies = []
    for url in re.findall(r'(?:src|href)="(/static/[^"]+)"', page):
        answer = client.get(url.replace("&amp;", "&"))
        assert answer.status_code == 200, url
        bodies.append(answer.text)
    manifest_text = re.search(
        r'<script type="application/json" class="stack-manifest">(.*?)</script>', page, re.S
    )
    assert manifest_text is not None, "the page has no viewer"
    manifest = json.loads(manifest_text.group(1))
    root, study = manifest["root"], manifest["study"]
    accept = (
        'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1'
    )
    for series in manifest["series"]:
        thumbnail = client.get(series["thumbnail"])
        assert thumbnail.status_code == 200
        bodies.append(thumbnail.content.decode("latin-1"))
        for image in series["images"]:
            for frame in range(1, image["frames"] + 1):
                url = (
                    f"{root}/studies/{study}/series/{series['uid']}/instances/{image['sop']}"
                    f"/frames/{frame}"
                )
                answer = client.get(url, headers={"Accept": accept})
                assert answer.status_code == 200, url
                bodies.append(answer.content.decode("latin-1"))
    return bodies


def hidden_texts(ward: Ward) -> dict[str, str]:
    return {**HIDDEN, "hint": HINT}


def assert_clean(bodies: list[str], secrets: dict[str, str], where: str) -> None:
    for body in bodies:
        lowered = body.lower()
        for name, secret in secrets.items():
            assert secret.lower() not in lowered, f"the {name} leaked {where}"


def test_the_whole_loop_leaks_nothing_before_each_answer(ward: Ward) -> None:
    client = ward.client
    sign_in(client, LEARNER)
    first = start_session(client)
    session_url = first.rsplit("/", 1)[0]
    secrets = hidden_texts(ward)
    by_id = {q["id"]: (kind, q) for kind, q in ward.questions.items()}
    answered: dict[str, str] = {}

    for position in (1, 2, 3):
        url = f"{session_url}/{position}"
        page = client.get(url)
        assert page.status_code == 200, page.text
        html = page.text
        assert f"Question {position} of 3" in html
        assert "64-year-old smoker" in html and "64 years" in html and "male" in html
        assert "CT" in html
        # Today and progress are pages the learner may open mid-session too.
        before = [html, *referenced(client, html), client.get("/").text]
        before.append(client.get("/progress").text)
        kind = next(
            k for k in ("multiple_choice", "free_text", "locate") if f'data-kind="{k}"' in html
        )
        question = ward.questions[kind]
        assert by_id[question["id"]][0] == kind
        if kind == "multiple_choice":
            # The options are shown by design; which one is right is not.
            assert 'type="radio"' in html and 'data-key="2"' in html
            assert "Show a hint" in html and HINT not in html
            assert_clean(before, secrets, f"before asking for the hint ({kind})")
            token = csrf_of(html)
            hinted = client.post(f"{url}/hint", data={"csrf": token})
            assert hinted.status_code == 303 and hinted.headers["location"] == f"{url}#hint"
            html = client.get(url).text
            assert HINT in html and "marked as hinted" in html
            before.append(html)
            secrets_now = {k: v for k, v in secrets.items() if k != "hint"}
            assert_clean(before, secrets_now, f"before the answer ({kind})")
            form = {"kind": kind, "option": "a", "csrf": csrf_of(html)}  # wrong
        elif kind == "free_text":
            assert 'name="text"' in html and 'for="answer-text"' in html
            assert_clean(before, secrets, f"before the answer ({kind})")
            form = {"kind": kind, "text": HIDDEN["synonym"], "csrf": csrf_of(html)}
        else:
            assert "data-locate" in html and f'data-open-sop="{ward.nodule_sop}"' in html
            assert "press X to show a crosshair" in html and "Click or tap" in html
            assert "answer-overlays" not in html
            assert_clean(before, secrets, f"before the answer ({kind})")
            form = {
                "kind": kind,
                "sop": ward.nodule_sop,
                "frame": "1",
                "x": str(NODULE[0] + 3),
                "y": str(NODULE[1] - 2),
                "csrf": csrf_of(html),
            }
        done = client.post(f"{url}/answer", data=form)
        assert done.status_code == 303, done.text
        assert done.headers["location"] == f"{url}#result"
        answered[kind] = client.get(url).text

    mc, free, spot = answered["multiple_choice"], answered["free_text"], answered["locate"]
    assert "Not right." in mc and 'role="status"' in mc
    assert "You chose: Pneumonia" in mc and "The answer: <strong>Lung cancer</strong>" in mc
    assert HIDDEN["feedback"] in mc and "(with the hint)" in mc
    assert "Again" in mc and "<time datetime=" in mc
    assert "Right." in free and HIDDEN["free_text"] in free
    assert HIDDEN["synonym"] in free  # what the learner typed, never the key's synonyms list
    assert "Good" in free or "Easy" in free
    assert "Right." in spot and "inside the region" in spot
    overlays = json.loads(
        re.search(r'id="answer-overlays">(.*?)</script>', spot, re.S).group(1)  # type: ignore[union-attr]
    )
    assert overlays[0]["kind"] == "ellipse" and overlays[0]["sop"] == ward.nodule_sop
    assert overlays[1]["kind"] == "point" and overlays[1]["x"] == NODULE[0] + 3
    # The whole case after its last question, with the department's viewer.
    last = answered[max(answered, key=lambda k: answered[k].count("The case:"))]
    for name in ("title", "diagnosis", "findings", "differential", "discussion"):
        assert HIDDEN[name] in last, name
    study = ward.case["teaching_study_instance_uid"]
    assert OHIF.replace("{study}", study) in last and "Open in OHIF" in last
    assert 'href="/?notice=done"' in last
    assert "Session done" in client.get("/?notice=done").text


def test_progress_shows_the_answers(ward: Ward) -> None:
    client = ward.client
    sign_in(client, LEARNER)
    page = client.get("/progress")
    assert page.status_code == 200, page.text
    html = page.text
    assert html.count('<svg class="chart"') == 3 and 'role="img"' in html
    assert "Accuracy by day" in html and "Retention by day" in html
    for table in ("days-table", "forecast-table", "by-category", "by-modality", "by-level"):
        assert f'id="{table}"' in html, table
    assert "Pulmonary" in html and "Intermediate" in html
    assert 'href="/api/progress.csv"' in html
    history = re.search(r'<table id="history-table">(.*?)</table>', html, re.S)
    assert history is not None and history.group(1).count("<tr>") == 4  # header + 3 answers
    assert "Wrong (hint)" in history.group(1)
    for secret in (HIDDEN["title"], HIDDEN["diagnosis"]):
        assert secret not in html
    assert client.get("/api/progress.csv").status_code == 200
    assert len(client.get("/api/progress").json()["due_forecast"]) == 14


def test_bad_addresses_are_a_not_found_page(ward: Ward) -> None:
    client = ward.client
    sign_in(client, LEARNER)
    for url in (
        "/sessions/nothex/items/1",
        "/sessions/" + "0" * 24 + "/items/1",
        "/sessions/" + "0" * 24 + "/items/0",
        "/sessions/" + "0" * 24 + "/items/-1",
        "/sessions/" + "0" * 24 + "/items/99999999999999999999",
    ):
        answer = client.get(url)
        assert answer.status_code == 404, url
        assert "no such question" in answer.text and "<h1" in answer.text


def test_answering_twice_and_unreadable_answers_are_said_plainly(ward: Ward) -> None:
    client = ward.client
    sign_in(client, LEARNER)
    url = start_practice(client)
    token = csrf_of(client.get(url).text)
    kind = ward_kind(client.get(url).text)
    empty = client.post(f"{url}/answer", data={"kind": kind, "csrf": token})
    assert empty.status_code == 400 and "first." in empty.text
    nonsense = client.post(f"{url}/answer", data={"kind": "essay", "csrf": token})
    assert nonsense.status_code == 400
    body = answer_body(kind, ward)
    assert client.post(f"{url}/answer", data={**body, "csrf": token}).status_code == 303
    again = client.post(f"{url}/answer", data={**body, "csrf": token})
    assert again.status_code == 409
    assert "already answered" in again.text and f'href="{url}"' in again.text


def test_a_form_without_its_token_is_refused(ward: Ward) -> None:
    client = ward.client
    sign_in(client, LEARNER)
    url = start_practice(client)
    refused = client.post(f"{url}/answer", data={"kind": "free_text", "text": "x"})
    assert refused.status_code == 403 and "did not come from this site" in refused.text
    assert client.post(f"{url}/hint", data={"csrf": "0" * 64}).status_code == 403
    assert 'id="answer-form"' in client.get(url).text  # still unanswered


def test_another_institution_cannot_open_the_item(ward: Ward) -> None:
    client = ward.client
    sign_in(client, LEARNER)
    url = start_practice(client)
    sign_in(client, "elsewhere")
    answer = client.get(url)
    assert answer.status_code == 404
    assert HIDDEN["title"] not in answer.text and "Point at" not in answer.text
    token = csrf_of(client.get("/").text)
    posted = client.post(f"{url}/answer", data={"kind": "free_text", "text": "x", "csrf": token})
    assert posted.status_code == 404


def test_the_viewer_link_needs_a_study_slot_and_a_web_address() -> None:
    for bad in ("javascript:alert(1)//{study}", "https://ohif.example.org/viewer"):
        with pytest.raises(ValueError):
            Settings(viewer_url=bad)
    link = Settings(viewer_url=OHIF).viewer_link("1.2.3")
    assert link == "https://ohif.example.org/viewer?StudyInstanceUIDs=1.2.3"
    assert Settings().viewer_link("1.2.3") is None


def start_practice(client: TestClient) -> str:
    """A practice session of the pulmonary cases (the due queue may be empty by now)."""
    token = csrf_of(client.get("/").text)
    started = client.post(
        "/review", data={"source": "tags", "filter": "category:TCE302", "csrf": token}
    )
    assert started.status_code == 303
    return str(started.headers["location"])


def ward_kind(html: str) -> str:
    found = re.search(r'data-kind="([a-z_]+)"', html)
    assert found is not None
    return found.group(1)


def answer_body(kind: str, ward: Ward) -> dict[str, str]:
    if kind == "multiple_choice":
        return {"kind": kind, "option": "b"}
    if kind == "free_text":
        return {"kind": kind, "text": "granuloma"}
    return {"kind": kind, "sop": ward.nodule_sop, "frame": "1", "x": "1", "y": "1"}
