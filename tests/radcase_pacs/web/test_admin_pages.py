"""The administrators' pages over HTTP: users, API keys, institutions and the audit log, each
change audited, and every page refused to the roles that must not use it."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from radcase_pacs.auth.principal import Role
from radcase_pacs.settings import Settings
from tests.apps import served
from tests.radcase_pacs.web.test_signin import PASSWORD, csrf_of, sign_in

LEARNER_PASSWORD = "resident password 1"


@pytest.fixture
def admin(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path / "data", auth="on", admin_password=PASSWORD, password_hash_rounds=4
    )
    with served(settings, follow_redirects=False) as client:
        assert sign_in(client).status_code == 303
        yield client


def post(client: TestClient, url: str, **form: str) -> httpx.Response:
    token = csrf_of(client.get("/admin/users").text)
    return client.post(url, data={**form, "csrf": token})


def sign_in_as(client: TestClient, username: str, password: str) -> int:
    other = TestClient(client.app, follow_redirects=False)
    answer = other.post(
        "/login", data={"username": username, "password": password, "next": "/", "csrf": ""}
    )
    return answer.status_code


def test_an_added_learner_can_sign_in_and_changes_end_their_sessions(admin: TestClient) -> None:
    added = post(
        admin, "/admin/users", username="resident", role="learner", password=LEARNER_PASSWORD
    )
    assert added.status_code == 303
    page = admin.get("/admin/users?notice=added")
    assert "User added." in page.text and "resident" in page.text
    learner = TestClient(admin.app, follow_redirects=False)
    assert (
        learner.post(
            "/login",
            data={"username": "resident", "password": LEARNER_PASSWORD, "next": "/", "csrf": ""},
        ).status_code
        == 303
    )
    assert learner.get("/api/me").json()["role"] == "learner"

    assert post(admin, "/admin/users/resident", action="role", role="educator").status_code == 303
    assert learner.get("/api/me").status_code == 401  # the change ended the session
    assert sign_in_as(admin, "resident", LEARNER_PASSWORD) == 303

    assert post(admin, "/admin/users/resident", action="disable").status_code == 303
    assert sign_in_as(admin, "resident", LEARNER_PASSWORD) == 400
    assert post(admin, "/admin/users/resident", action="enable").status_code == 303
    new = "a brand new password"
    assert post(admin, "/admin/users/resident", action="password", password=new).status_code == 303
    assert sign_in_as(admin, "resident", LEARNER_PASSWORD) == 400
    assert sign_in_as(admin, "resident", new) == 303

    actions = [e["action"] for e in admin.get("/api/audit?actor=admin").json()["entries"]]
    assert actions.count("user.update") == 4 and "user.create" in actions


def test_bad_user_forms_say_what_is_wrong_and_change_nothing(admin: TestClient) -> None:
    bad = post(admin, "/admin/users", username="no spaces", role="learner", password="x" * 20)
    assert bad.status_code == 400
    assert "Username:" in bad.text and "Nothing was changed" in bad.text
    weak = post(admin, "/admin/users", username="ok", role="learner", password="short")
    assert weak.status_code == 400 and "Password:" in weak.text
    role = post(admin, "/admin/users", username="ok", role="service", password="x" * 20)
    assert role.status_code == 400 and "Role:" in role.text
    taken = post(admin, "/admin/users", username="admin", role="learner", password="x" * 20)
    assert taken.status_code == 409
    missing = post(admin, "/admin/users/nobody", action="disable")
    assert missing.status_code == 404
    nothing = post(admin, "/admin/users/admin", action="fly")
    assert nothing.status_code == 400
    assert [u["username"] for u in admin.get("/api/users").json()] == ["admin"]


def test_a_new_api_key_is_shown_once_and_a_revoked_one_stops_working(admin: TestClient) -> None:
    created = post(admin, "/admin/keys", name="pacs-bridge")
    assert created.status_code == 201
    text = created.text
    token = text.split('id="new-key" class="secret" readonly value="')[1].split('"')[0]
    assert token.startswith("rk_")
    listing = admin.get("/admin/keys").text
    assert "pacs-bridge" in listing and token not in listing
    key_id = token[3:].split("_")[0]
    fresh = TestClient(admin.app)
    assert fresh.get("/dicomweb/studies", headers={"X-API-Key": token}).status_code in (200, 204)
    revoked = post(admin, f"/admin/keys/{key_id}/revoke")
    assert revoked.status_code == 303
    assert fresh.get("/dicomweb/studies", headers={"X-API-Key": token}).status_code == 401
    assert "Revoked" in admin.get("/admin/keys").text


def test_the_audit_log_finds_a_sign_in_and_exports_it(admin: TestClient) -> None:
    post(admin, "/admin/users", username="resident", role="learner", password=LEARNER_PASSWORD)
    assert sign_in_as(admin, "resident", LEARNER_PASSWORD) == 303
    page = admin.get("/admin/audit", params={"actor": "resident", "action": "auth.login"})
    assert page.status_code == 200 and "1 entry" in page.text
    assert "POST /login" in page.text and "testclient" in page.text
    export = page.text.split('class="button" href="')[1].split('"')[0].replace("&amp;", "&")
    rows = list(csv.DictReader(io.StringIO(admin.get(export).text)))
    assert [(r["actor"], r["action"]) for r in rows] == [("resident", "auth.login")]
    by_address = admin.get("/admin/audit", params={"source": "testclient", "actor": "resident"})
    assert "1 entry" in by_address.text
    none = admin.get("/admin/audit", params={"until": "2000-01-01T00:00"})
    assert "0 entries" in none.text
    bad = admin.get("/admin/audit", params={"since": "yesterday"})
    assert bad.status_code == 400 and "From: not a date and time" in bad.text


@pytest.mark.parametrize("role", [Role.LEARNER, Role.EDUCATOR])
def test_administration_is_refused_to_other_roles(admin: TestClient, role: Role) -> None:
    name = f"a-{role.value}"
    post(admin, "/admin/users", username=name, role=role.value, password=LEARNER_PASSWORD)
    other = TestClient(admin.app, follow_redirects=False)
    other.post(
        "/login", data={"username": name, "password": LEARNER_PASSWORD, "next": "/", "csrf": ""}
    )
    for url in ("/admin/users", "/admin/keys", "/admin/audit", "/admin/institutions"):
        answer = other.get(url)
        assert answer.status_code == 403 and "Not allowed" in answer.text, url
    assert "Administration" not in other.get("/").text
    token = csrf_of(other.get("/").text)
    attempt = other.post(
        "/admin/users",
        data={"username": "x", "role": "admin", "password": "x" * 20, "csrf": token},
    )
    assert attempt.status_code == 403


def test_institutions_are_managed_by_the_home_admins_only(admin: TestClient) -> None:
    added = post(admin, "/admin/institutions", tenant="hospital-b", name="Hospital B")
    assert added.status_code == 303
    assert "Hospital B" in admin.get("/admin/institutions").text
    users = admin.app.state.auth.users  # type: ignore[attr-defined]
    users.add_user("b-admin", "hospital-b", Role.ADMIN, LEARNER_PASSWORD)
    other = TestClient(admin.app, follow_redirects=False)
    other.post(
        "/login",
        data={"username": "b-admin", "password": LEARNER_PASSWORD, "next": "/", "csrf": ""},
    )
    assert other.get("/admin/institutions").status_code == 403
    listing = other.get("/admin/users").text
    assert "b-admin" in listing and ">admin<" not in listing
    audit = other.get("/admin/audit").text
    assert "user.create" not in audit  # the home institution's entries stay there
