"""A server with an educator, learners, published cases with questions, and a clock the test
moves: what the quiz and spaced-repetition tests start from."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydicom.uid import generate_uid
from starlette.testclient import TestClient

from radcase_pacs.auth.principal import Role
from radcase_pacs.settings import Settings
from tests.apps import served
from tests.factories import make_instance, multipart_body, to_bytes

PASSWORD = "quiz-password-123"
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
SQUARE = [[2, 2], [6, 2], [6, 6], [2, 6]]


class Clock:
    """The teaching layer's time, moved by the test."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class World:
    client: TestClient
    clock: Clock
    headers: dict[str, dict[str, str]]
    cases: list[dict[str, Any]] = field(default_factory=list)

    def as_(self, user: str) -> dict[str, str]:
        return self.headers[user]

    def call(self, user: str, method: str, url: str, **kwargs: Any) -> Any:
        """A request as ``user``; the response, its status checked by the caller."""
        return self.client.request(method, url, headers=self.headers[user], **kwargs)

    def ok(self, user: str, method: str, url: str, status: int = 200, **kwargs: Any) -> Any:
        response = self.call(user, method, url, **kwargs)
        assert response.status_code == status, f"{method} {url}: {response.text}"
        return response.json() if response.content else None


def quiz_settings(base: Settings) -> Settings:
    return base.model_copy(
        update={
            "auth": "on",
            "admin_password": PASSWORD,
            "password_hash_rounds": 4,
            "access_token_seconds": 24 * 3600,
        }
    )


@contextmanager
def world(
    settings: Settings, users: dict[str, Role] | None = None, clock: Clock | None = None
) -> Iterator[World]:
    clock = clock or Clock()
    users = users or {"edu": Role.EDUCATOR, "ann": Role.LEARNER, "bob": Role.LEARNER}
    with served(quiz_settings(settings), clock=clock) as client:
        store = client.app.state.auth.users  # type: ignore[attr-defined]
        headers = {}
        for name, role in users.items():
            store.add_user(name, settings.tenant, role, PASSWORD)
            token = client.post(
                "/api/auth/token",
                data={"grant_type": "password", "username": name, "password": PASSWORD},
            )
            assert token.status_code == 200, token.text
            headers[name] = {"Authorization": f"Bearer {token.json()['access_token']}"}
        yield World(client, clock, headers)


def add_case(
    w: World,
    *,
    title: str,
    diagnosis: str = "",
    tags: dict[str, Any] | None = None,
    publish: bool = True,
    **content: Any,
) -> dict[str, Any]:
    """A clinical study of two 8x8 images stored, made a teaching case and published."""
    study_uid, series_uid = generate_uid(), generate_uid()
    parts = [
        to_bytes(make_instance(study_uid=study_uid, series_uid=series_uid, instance_number=n + 1))
        for n in range(2)
    ]
    body, content_type = multipart_body(parts)
    stored = w.client.post(
        "/dicomweb/studies",
        content=body,
        headers={**w.headers["edu"], "Content-Type": content_type},
    )
    assert stored.status_code == 200, stored.text
    case = w.ok(
        "edu",
        "POST",
        "/api/cases",
        201,
        json={
            "study_instance_uid": study_uid,
            "title": title,
            "diagnosis": diagnosis,
            "tags": tags or {},
            **content,
        },
    )
    if publish:
        case = w.ok("edu", "POST", f"/api/cases/{case['id']}/publish")
    w.cases.append(case)
    return case


def multiple_choice(correct: list[str] | None = None) -> dict[str, Any]:
    return {
        "prompt": "Which finding is shown?",
        "key": {
            "kind": "multiple_choice",
            "options": [{"id": i, "text": f"option {i}"} for i in ("a", "b", "c", "d")],
            "correct": correct or ["b"],
        },
        "feedback": "Option b: look at the apex.",
        "hint": "Think of the apex.",
    }


def free_text() -> dict[str, Any]:
    return {
        "prompt": "Your diagnosis?",
        "key": {
            "kind": "free_text",
            "accepted": ["tension pneumothorax"],
            "synonyms": ["pneumothorax under tension"],
        },
        "feedback": "Mediastinal shift away from the lucent side.",
    }


def locate(case: dict[str, Any]) -> dict[str, Any]:
    return {
        "prompt": "Point at the lesion.",
        "key": {
            "kind": "locate",
            "sop_instance_uid": case["instances"][0]["sop_instance_uid"],
            "frame": 1,
            "region": {"shape": "polygon", "points": SQUARE},
        },
        "feedback": "The lesion is the bright square.",
    }


def add_question(w: World, case: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = w.ok(
        "edu", "POST", f"/api/cases/{case['id']}/questions", 201, json=body
    )
    return result


def answer_for(question: dict[str, Any], right: bool) -> dict[str, Any]:
    """A right or a wrong answer to a question as the educator wrote it."""
    key = question["key"]
    if key["kind"] == "multiple_choice":
        wrong = [o["id"] for o in key["options"] if o["id"] not in key["correct"]][:1]
        return {"kind": "multiple_choice", "selected": key["correct"] if right else wrong}
    if key["kind"] == "free_text":
        return {"kind": "free_text", "text": key["accepted"][0] if right else "pneumonia"}
    x, y = (4, 4) if right else (7.5, 7.5)
    return {
        "kind": "locate",
        "sop_instance_uid": key["sop_instance_uid"],
        "frame": key["frame"],
        "x": x,
        "y": y,
    }
