"""Logging in over HTTP: tokens, refresh, throttling, the first admin, revocation seen by a
second server process, and institutions sealed from each other on the clinical root."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError
from starlette.testclient import TestClient

from radcase_pacs.auth.principal import Role
from radcase_pacs.settings import Settings
from storage.errors import BackendFailure
from tests.apps import served
from tests.factories import make_instance, multipart_body, to_bytes
from tests.radcase_pacs.test_production import production_env
from tests.serving import serve

__all__ = ["production_env"]

PASSWORD = "a long password"


def grant(client: TestClient | httpx.Client, **form: str) -> httpx.Response:
    return client.post("/api/auth/token", data=form)


def password_grant(
    client: TestClient | httpx.Client, username: str, password: str
) -> httpx.Response:
    return grant(client, grant_type="password", username=username, password=password)


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path / "data",
        auth="on",
        admin_password=PASSWORD,
        password_hash_rounds=4,
        login_max_failures=3,
    )
    with served(settings) as client:
        yield client


def bearer(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_the_token_endpoint_answers_as_oauth2_says(secured: TestClient) -> None:
    answer = password_grant(secured, "admin", PASSWORD)
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert answer.headers["cache-control"] == "no-store"
    assert secured.get("/api/me", headers=bearer(answer)).json() == {
        "username": "admin",
        "tenant": "default",
        "role": "admin",
    }
    again = grant(secured, grant_type="refresh_token", refresh_token=body["refresh_token"])
    assert secured.get("/api/me", headers=bearer(again)).status_code == 200
    spent = grant(secured, grant_type="refresh_token", refresh_token=body["refresh_token"])
    assert spent.status_code == 400 and spent.json()["error"] == "invalid_grant"
    assert grant(secured, grant_type="client_credentials").json()["error"] == (
        "unsupported_grant_type"
    )
    assert secured.post("/api/auth/token", data={}).status_code == 422


def test_a_failed_login_says_nothing_about_which_part_was_wrong(secured: TestClient) -> None:
    secured.app.state.auth.users.add_user("pat", "default", Role.LEARNER, PASSWORD)  # type: ignore[attr-defined]
    wrong_password = password_grant(secured, "pat", "not the password")
    unknown_user = password_grant(secured, "nobody-at-all", PASSWORD)
    assert wrong_password.status_code == unknown_user.status_code == 400
    assert wrong_password.json() == unknown_user.json()


def test_repeated_failures_are_throttled_even_with_the_right_password(
    secured: TestClient,
) -> None:
    for _ in range(3):
        assert password_grant(secured, "admin", "guess").status_code == 400
    blocked = password_grant(secured, "admin", PASSWORD)
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    audit = secured.app.state.audit  # type: ignore[attr-defined]
    total, _ = audit.search(None, action="auth.login_failed", limit=10)
    assert total == 3


def test_requests_without_credentials_are_401_and_cors_readable(secured: TestClient) -> None:
    response = secured.get("/dicomweb/studies", headers={"Origin": "https://viewer.example"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["access-control-allow-origin"] == "https://viewer.example"
    preflight = secured.options(
        "/dicomweb/studies",
        headers={
            "Origin": "https://viewer.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status_code == 200
    assert secured.get("/healthz").status_code == 200
    assert (
        secured.get("/dicomweb/studies", headers={"Authorization": "Bearer junk"}).status_code
        == 401
    )


def test_the_first_admin_password_is_printed_once_when_generated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RADCASE_ADMIN_PASSWORD", raising=False)
    settings = Settings(data_dir=tmp_path / "data", auth="on", password_hash_rounds=4)
    with served(settings):
        pass
    printed = capsys.readouterr().err
    assert "created the first admin" in printed
    password = printed.split("with password '")[1].split("'")[0]
    with served(settings) as client:
        assert password_grant(client, "admin", password).status_code == 200
    assert "created the first admin" not in capsys.readouterr().err


def test_auth_off_is_refused_off_loopback() -> None:
    with pytest.raises(ValidationError, match="auth = off"):
        Settings(auth="off", host="0.0.0.0")
    assert Settings(auth="off", host="::1").auth == "off"


def test_institutions_do_not_see_each_others_clinical_data(secured: TestClient) -> None:
    users = secured.app.state.auth.users  # type: ignore[attr-defined]
    for tenant in ("default", "hospital-b"):
        users.add_user(f"{tenant}-edu", tenant, Role.EDUCATOR, PASSWORD)
    a = bearer(password_grant(secured, "default-edu", PASSWORD))
    b = bearer(password_grant(secured, "hospital-b-edu", PASSWORD))
    ds = make_instance(patient_name="ONLY^IN^A")
    body, content_type = multipart_body([to_bytes(ds)])
    stow = {"Content-Type": content_type, "Accept": "application/dicom+json"}
    first = secured.post("/dicomweb/studies", content=body, headers={**a, **stow})
    assert first.status_code == 200
    # The same instance sent by B is new to B: no "already stored" to betray A's copy.
    second = secured.post("/dicomweb/studies", content=body, headers={**b, **stow})
    assert second.status_code == 200 and "00081196" not in second.json()
    secured.delete(f"/dicomweb/studies/{ds.StudyInstanceUID}", headers=b)
    assert secured.get("/dicomweb/studies", headers=b).status_code in (200, 204)
    found_b = secured.get("/dicomweb/studies", headers={**b, "Accept": "application/dicom+json"})
    assert "ONLY^IN^A" not in found_b.text
    meta = secured.get(f"/dicomweb/studies/{ds.StudyInstanceUID}/metadata", headers=a)
    assert meta.status_code == 200 and "ONLY^IN^A" in meta.text
    gone = secured.get(f"/dicomweb/studies/{ds.StudyInstanceUID}/metadata", headers=b)
    unknown = secured.get("/dicomweb/studies/1.2.3.4.5/metadata", headers=b)
    assert gone.status_code == unknown.status_code == 404
    assert gone.text.replace(ds.StudyInstanceUID, "X") == unknown.text.replace("1.2.3.4.5", "X")


@pytest.mark.e2e
def test_a_logout_in_one_process_is_seen_by_another_at_once(
    production_env: dict[str, str],
) -> None:
    env = {
        **production_env,
        "RADCASE_AUTH": "on",
        "RADCASE_ADMIN_PASSWORD": PASSWORD,
        "RADCASE_PASSWORD_HASH_ROUNDS": "4",
        "RADCASE_ACCESS_TOKEN_SECONDS": "30",
    }
    with (
        serve(env) as one,
        serve(env) as two,
        httpx.Client(base_url=one) as first,
        httpx.Client(base_url=two) as second,
    ):
        tokens = password_grant(first, "admin", PASSWORD).json()
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        assert second.get("/api/me", headers=headers).status_code == 200
        refreshed = grant(second, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
        assert refreshed.status_code == 200 and refreshed.json()["expires_in"] == 30
        assert first.post("/api/auth/logout", headers=headers).status_code == 204
        assert second.get("/api/me", headers=headers).status_code == 401
        later = {"Authorization": f"Bearer {refreshed.json()['access_token']}"}
        assert second.get("/api/me", headers=later).status_code == 401
        again = password_grant(second, "admin", PASSWORD).json()
        fresh = {"Authorization": f"Bearer {again['access_token']}"}
        changed = first.patch(
            "/api/users/admin", json={"password": "another long password"}, headers=fresh
        )
        assert changed.status_code == 200
        assert second.get("/api/me", headers=fresh).status_code == 401


def test_changes_through_the_api_are_audited_before_they_are_made(secured: TestClient) -> None:
    users = secured.app.state.auth.users  # type: ignore[attr-defined]
    users.add_user("ed", "default", Role.EDUCATOR, PASSWORD)
    admin = bearer(password_grant(secured, "admin", PASSWORD))
    educator = bearer(password_grant(secured, "ed", PASSWORD))
    created = secured.post(
        "/api/users",
        json={"username": "lea", "password": PASSWORD, "role": "learner"},
        headers=admin,
    )
    assert created.status_code == 201
    refused = secured.post(
        "/api/cases", json={"study_instance_uid": "1.2.3", "title": "t"}, headers=educator
    )
    assert refused.status_code == 422
    audit = secured.app.state.audit  # type: ignore[attr-defined]
    _, entries = audit.search(None, limit=20)
    seen = {(e.action, e.actor, e.route) for e in entries}
    assert ("user.create", "admin", "POST /api/users") in seen
    assert ("case.create", "ed", "POST /api/cases") in seen
    assert ("auth.login", "ed", "POST /api/auth/token") in seen

    def unwritable(entry: object) -> None:
        raise BackendFailure("audit database unavailable")

    audit.record = unwritable  # the log can no longer be written: nothing may change
    blocked = secured.patch("/api/users/lea", json={"disabled": True}, headers=admin)
    assert blocked.status_code == 503
    assert users.user("lea").disabled is False
