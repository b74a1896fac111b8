"""The authorization matrix, generated from the application's route table: every route x
method x role x institution, with the answer the access rules promise; and the rule that no
institution reads, lists, counts or infers another's data.

Institution A is the home institution ("default") and holds a clinical study, its teaching
case and users of every role; institution B holds users of every role and nothing else.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from radcase_pacs.app import create_app
from radcase_pacs.auth.policy import rule_for
from radcase_pacs.auth.principal import Role
from radcase_pacs.deployment import open_deployment
from radcase_pacs.routes import route_table
from radcase_pacs.settings import Settings
from tests.apps import served
from tests.factories import make_instance, multipart_body, to_bytes

A, B = "default", "hospital-b"
PASSWORD = "a long password"
USER_ROLES = (Role.ADMIN, Role.EDUCATOR, Role.LEARNER)
CALLERS = [(tenant, role) for tenant in (A, B) for role in Role]
DENIED = {401, 403}


@dataclass
class World:
    client: TestClient
    headers: dict[tuple[str, Role], dict[str, str]]
    values: dict[str, str]
    secrets_of_a: list[str]
    """Strings only institution A's data contains: none may reach an institution B caller."""


def login(client: TestClient, username: str) -> dict[str, str]:
    response = client.post(
        "/api/auth/token",
        data={"grant_type": "password", "username": username, "password": PASSWORD},
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data = tmp_path_factory.mktemp("authz") / "data"
    settings = Settings(
        data_dir=Path(data), auth="on", admin_password=PASSWORD, password_hash_rounds=4
    )
    with served(settings) as client:
        users = client.app.state.auth.users  # type: ignore[attr-defined]
        headers: dict[tuple[str, Role], dict[str, str]] = {}
        users.ensure_institution(B, "Hospital B")
        for tenant in (A, B):
            for role in USER_ROLES:
                name = f"{tenant}-{role.value}"
                users.add_user(name, tenant, role, PASSWORD)
                headers[(tenant, role)] = login(client, name)
            _, token = users.add_api_key(tenant, f"{tenant}-bridge")
            headers[(tenant, Role.SERVICE)] = {"Authorization": f"Bearer {token}"}
        ds = make_instance(patient_name="SECRET^PATIENT", patient_id="SECRET-PID-A")
        body, content_type = multipart_body([to_bytes(ds)])
        stored = client.post(
            "/dicomweb/studies",
            content=body,
            headers={**headers[(A, Role.SERVICE)], "Content-Type": content_type},
        )
        assert stored.status_code == 200, stored.text
        case = client.post(
            "/api/cases",
            json={"study_instance_uid": ds.StudyInstanceUID, "title": "Secret case title A"},
            headers=headers[(A, Role.EDUCATOR)],
        )
        assert case.status_code == 201, case.text
        copy = case.json()["instances"][0]
        learning = teach(client, headers, case.json()["id"])
        key = users.api_keys(A)[0]
        values = {
            "study": ds.StudyInstanceUID,
            "series": ds.SeriesInstanceUID,
            "instance": ds.SOPInstanceUID,
            "frames": "1",
            "path": "7FE00010",
            "case_id": case.json()["id"],
            "sop_instance_uid": copy["sop_instance_uid"],
            "username": f"{A}-learner",
            "key_id": key.key_id,
            "teaching_study": case.json()["teaching_study_instance_uid"],
            "teaching_series": copy["series_instance_uid"],
            "teaching_instance": copy["sop_instance_uid"],
            **learning,
            "position": "1",
        }
        secrets_of_a = [
            ds.StudyInstanceUID,
            ds.SOPInstanceUID,
            "SECRET^PATIENT",
            "SECRET-PID-A",
            case.json()["id"],
            case.json()["teaching_study_instance_uid"],
            copy["sop_instance_uid"],
            "Secret case title A",
            f"{A}-learner",
            key.key_id,
            *learning.values(),
            "Secret prompt A",
            "Secret group A",
            "Secret assignment A",
        ]
        yield World(client, headers, values, secrets_of_a)


def teach(
    client: TestClient, headers: dict[tuple[str, Role], dict[str, str]], case_id: str
) -> dict[str, str]:
    """A's case published with a question, a group, an assignment and a learner's session."""
    educator, learner = headers[(A, Role.EDUCATOR)], headers[(A, Role.LEARNER)]

    def made(method: str, url: str, body: dict[str, Any], who: dict[str, str]) -> str:
        response = client.request(method, url, json=body, headers=who)
        assert response.status_code in (200, 201), response.text
        return str(response.json()["id"])

    made("POST", f"/api/cases/{case_id}/publish", {}, educator)
    question = made(
        "POST",
        f"/api/cases/{case_id}/questions",
        {"prompt": "Secret prompt A", "key": {"kind": "free_text", "accepted": ["x"]}},
        educator,
    )
    group = made(
        "POST", "/api/groups", {"name": "Secret group A", "members": [f"{A}-learner"]}, educator
    )
    assignment = made(
        "POST",
        f"/api/groups/{group}/assignments",
        {"title": "Secret assignment A", "case_ids": [case_id]},
        educator,
    )
    session = made(
        "POST", "/api/quiz/sessions", {"source": "assignment", "assignment_id": assignment}, learner
    )
    return {
        "question_id": question,
        "group_id": group,
        "assignment_id": assignment,
        "session_id": session,
    }


def _every_route() -> list[tuple[str, str]]:
    """The whole server's route table (a deployment in a folder of its own, gone after)."""
    with (
        tempfile.TemporaryDirectory() as folder,
        open_deployment(Settings(auth="off", data_dir=Path(folder))) as deployment,
    ):
        return route_table(create_app(deployment).routes)


ROUTES = _every_route()


def concrete(template: str, values: dict[str, str]) -> str:
    teaching = template.startswith("/teaching/")

    def fill(match: re.Match[str]) -> str:
        name = match.group(1).split(":")[0]
        if teaching and name in ("study", "series", "instance"):
            return values[f"teaching_{name}"]
        return values[name]

    return re.sub(r"\{([^}]+)\}", fill, template)


BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("/api/auth/token", "POST"): {"data": {"grant_type": "nonsense"}},
    ("/api/cases", "POST"): {"json": {}},
    ("/api/cases/{case_id}", "PATCH"): {"json": {}},
    ("/api/cases/{case_id}/instances/{sop_instance_uid}/review", "POST"): {"json": {}},
    ("/api/users", "POST"): {"json": {}},
    ("/api/users/{username}", "PATCH"): {"json": {}},
    ("/api/institutions", "POST"): {"json": {}},
    ("/api/api-keys", "POST"): {"json": {}},
    ("/api/cases/{case_id}/questions", "POST"): {"json": {}},
    ("/api/cases/{case_id}/questions/{question_id}", "PUT"): {"json": {}},
    ("/api/program", "PUT"): {"json": {"desired_retention": 2}},
    ("/api/groups", "POST"): {"json": {}},
    ("/api/groups/{group_id}", "PUT"): {"json": {}},
    ("/api/groups/{group_id}/assignments", "POST"): {"json": {}},
    ("/api/quiz/sessions", "POST"): {"json": {}},
    ("/api/quiz/sessions/{session_id}/items/{position}/answer", "POST"): {"json": {}},
}
# Deleting is answered for a resource that does not exist, so the matrix removes nothing; so
# are the pages' posts that remove something.
REMOVING = {
    ("/admin/keys/{key_id}/revoke", "POST"),
    ("/teach/groups/{group_id}/delete", "POST"),
    ("/teach/groups/{group_id}/assignments/{assignment_id}/delete", "POST"),
    ("/api/cases/{case_id}/unpublish", "POST"),
    ("/teach/cases/{case_id}/unpublish", "POST"),
    ("/teach/cases/{case_id}/delete", "POST"),
    ("/teach/cases/{case_id}/questions/{question_id}/delete", "POST"),
}
MISSING = {
    "study": "1.2.3.999",
    "series": "1.2.3.998",
    "instance": "1.2.3.997",
    "case_id": "0" * 24,
    "key_id": "0" * 16,
    "question_id": "0" * 24,
    "group_id": "0" * 24,
    "assignment_id": "0" * 24,
}


def test_every_route_has_an_access_rule() -> None:
    missing = [f"{method} {path}" for path, method in ROUTES if rule_for(method, path) is None]
    assert not missing, "routes without an access rule:\n" + "\n".join(missing)
    assert len(ROUTES) > 40


def expected_denial(path: str, method: str, tenant: str | None, role: Role | None) -> int | None:
    """401, 403, or None when the rules let the caller through."""
    rule = rule_for(method, path)
    assert rule is not None
    if rule.roles is None:
        return None
    if role is None:
        return 303 if rule.page else 401  # a page sends the browser to the sign-in form
    if role not in rule.roles or (rule.home_only and tenant != A):
        return 403
    return None


# Logging out ends the session the matrix's callers share: test_logout_ends_the_session
# covers that route for every kind of caller.
MATRIX = [(path, method) for path, method in ROUTES if path != "/api/auth/logout"]


@pytest.mark.parametrize(("path", "method"), MATRIX, ids=[f"{m} {p}" for p, m in MATRIX])
def test_the_matrix(world: World, path: str, method: str) -> None:
    values = dict(world.values)
    if method == "DELETE" or (path, method) in REMOVING:
        values.update(MISSING)
    url = concrete(path, values)
    kwargs = BODIES.get((path, method), {})
    callers: list[tuple[str | None, Role | None]] = [(None, None), *CALLERS]
    for tenant, role in callers:
        headers = world.headers[(tenant, role)] if tenant and role else {}
        response = world.client.request(
            method, url, headers=headers, follow_redirects=False, **kwargs
        )
        denial = expected_denial(path, method, tenant, role)
        who = f"{role.value if role else 'anonymous'}@{tenant}"
        if denial is not None:
            assert response.status_code == denial, f"{who}: {response.status_code}"
        else:
            assert response.status_code not in DENIED, f"{who}: {response.status_code}"
            assert response.status_code < 500, f"{who}: {response.status_code}"
        if tenant == B:
            body = response.content.decode("latin-1")
            leaked = [s for s in world.secrets_of_a if s in body and s not in url]
            assert not leaked, f"{who} saw {leaked} in {method} {url}"


def test_logout_ends_the_session(world: World) -> None:
    for tenant, role in ((A, Role.LEARNER), (B, Role.EDUCATOR)):
        headers = login(world.client, f"{tenant}-{role.value}")
        assert world.client.get("/api/me", headers=headers).status_code == 200
        assert world.client.post("/api/auth/logout", headers=headers).status_code == 204
        assert world.client.get("/api/me", headers=headers).status_code == 401
    assert world.client.post("/api/auth/logout").status_code == 401
