"""Signing in from a browser: the form, the session cookie and what it may do, CSRF, signing
out, and the cookie ending everywhere when the session ends (in another process too)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from radcase_pacs.auth.browser import COOKIE
from radcase_pacs.settings import Settings
from tests.apps import served
from tests.radcase_pacs.test_production import production_env
from tests.serving import ROOT, serve

__all__ = ["production_env"]

PASSWORD = "a long password"
SITE = "http://testserver"


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path / "data",
        auth="on",
        admin_password=PASSWORD,
        password_hash_rounds=4,
        login_max_failures=3,
    )
    with served(settings, follow_redirects=False) as client:
        yield client


def csrf_of(page: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([0-9a-f]*)"', page)
    assert found is not None, page
    return found.group(1)


def sign_in(client: TestClient | httpx.Client, username: str = "admin") -> httpx.Response:
    return client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "next": "/", "csrf": ""},
        headers={"Origin": str(client.base_url).rstrip("/")},
    )


def test_a_page_without_a_session_sends_the_browser_to_the_sign_in_form(
    secured: TestClient,
) -> None:
    answer = secured.get("/progress?by=week")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Fprogress%3Fby%3Dweek"
    form = secured.get("/login")
    assert form.status_code == 200 and 'name="password"' in form.text
    assert "default-src 'self'" in form.headers["content-security-policy"]
    assert form.headers["cache-control"] == "no-store"


def test_signing_in_sets_a_cookie_only_the_server_can_read(secured: TestClient) -> None:
    answer = sign_in(secured)
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    for attribute in ("HttpOnly", "SameSite=Lax", "Path=/"):
        assert attribute in cookie
    assert "Secure" not in cookie  # plain http on loopback
    today = secured.get("/")
    assert today.status_code == 200 and "<h1>Today</h1>" in today.text
    assert secured.get("/api/me").json()["username"] == "admin"


def test_a_wrong_password_is_said_plainly_and_throttled(secured: TestClient) -> None:
    wrong = {"username": "admin", "password": "not it", "next": "/", "csrf": ""}
    for _ in range(3):
        answer = secured.post("/login", data=wrong)
        assert answer.status_code == 400
        assert "do not match an active account" in answer.text
        assert 'value="admin"' in answer.text and "not it" not in answer.text
    blocked = sign_in(secured)
    assert blocked.status_code == 429 and "Retry-After" in blocked.headers
    assert COOKIE not in blocked.headers.get("set-cookie", "")


def test_next_never_leaves_the_site(secured: TestClient) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        secured.cookies.clear()
        answer = secured.post(
            "/login",
            data={"username": "admin", "password": PASSWORD, "next": target, "csrf": ""},
        )
        assert answer.headers["location"] == "/"


def test_the_cookie_never_grants_more_than_the_role(secured: TestClient) -> None:
    sign_in(secured)
    token = csrf_of(secured.get("/").text)
    added = secured.post(
        "/api/users",
        json={"username": "resident", "password": "resident password", "role": "learner"},
        headers={"X-CSRF-Token": token},
    )
    assert added.status_code == 201, added.text
    secured.cookies.clear()
    learner = secured.post(
        "/login",
        data={"username": "resident", "password": "resident password", "next": "/", "csrf": ""},
    )
    assert learner.status_code == 303
    assert secured.get("/api/me").json()["role"] == "learner"
    assert secured.get("/dicomweb/studies").status_code == 403
    assert secured.get("/api/users").status_code == 403
    assert secured.get("/api/progress").status_code == 200


def test_a_state_change_without_the_csrf_token_is_refused(secured: TestClient) -> None:
    sign_in(secured)
    body = {"username": "x1", "password": "a long password", "role": "learner"}
    assert secured.post("/api/users", json=body).status_code == 403
    wrong = secured.post("/api/users", json=body, headers={"X-CSRF-Token": "0" * 64})
    assert wrong.status_code == 403
    form = secured.post("/review", data={"source": "due", "csrf": "nope"})
    assert form.status_code == 403 and "did not come from this site" in form.text
    assert secured.post("/logout", data={}).status_code == 403
    assert secured.get("/api/me").status_code == 200  # still signed in


def test_a_cross_site_form_post_is_refused(secured: TestClient) -> None:
    sign_in(secured)
    token = csrf_of(secured.get("/").text)
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        answer = secured.post("/review", data={"source": "due", "csrf": token}, headers=headers)
        assert answer.status_code == 403, headers
        api = secured.post(
            "/api/groups",
            json={"name": "g", "members": []},
            headers={**headers, "X-CSRF-Token": token},
        )
        assert api.status_code == 403
    login = secured.post(
        "/login",
        data={"username": "admin", "password": PASSWORD, "next": "/", "csrf": ""},
        headers={"Origin": "https://evil.example"},
    )
    assert login.status_code == 403


def test_bearer_tokens_need_no_csrf_token(secured: TestClient) -> None:
    tokens = secured.post(
        "/api/auth/token",
        data={"grant_type": "password", "username": "admin", "password": PASSWORD},
    ).json()
    answer = secured.post(
        "/api/users",
        json={"username": "resident", "password": "resident password", "role": "learner"},
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    assert answer.status_code == 201


def test_cookie_answers_are_private_to_that_cookie(secured: TestClient) -> None:
    sign_in(secured)
    answer = secured.get("/teaching/dicomweb/studies")
    assert answer.status_code in (200, 204)
    assert "Cookie" in answer.headers["vary"]
    assert "public" not in answer.headers.get("cache-control", "")


def test_signing_out_ends_the_session_and_clears_the_browser(secured: TestClient) -> None:
    sign_in(secured)
    cookie = secured.cookies[COOKIE]
    token = csrf_of(secured.get("/").text)
    out = secured.post("/logout", data={"csrf": token})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert out.headers["clear-site-data"] == '"cache", "cookies", "storage"'
    assert "Max-Age=0" in out.headers["set-cookie"]
    secured.cookies.set(COOKIE, cookie)  # a copy of the cookie kept from before
    assert secured.get("/api/me").status_code == 401
    assert secured.get("/").status_code == 303


def test_with_authentication_off_the_pages_need_no_sign_in(tmp_path: Path) -> None:
    with served(Settings(data_dir=tmp_path / "d", auth="off"), follow_redirects=False) as client:
        today = client.get("/")
        assert today.status_code == 200 and "Sign out" not in today.text
        assert client.get("/login").status_code == 303
        started = client.post("/review", data={"source": "due", "csrf": ""})
        assert started.status_code == 303 and started.headers["location"] == "/?notice=empty"


def test_static_files_are_versioned_and_nothing_else_is_served(secured: TestClient) -> None:
    page = secured.get("/login").text
    href = re.search(r'href="(/static/app\.css\?v=[0-9a-f]+)"', page)
    assert href is not None
    css = secured.get(href.group(1))
    assert css.status_code == 200 and "immutable" in css.headers["cache-control"]
    assert css.headers["content-type"].startswith("text/css")
    assert "no-cache" in secured.get("/static/app.css").headers["cache-control"]
    for probe in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/templates/base.html"):
        answer = secured.get(probe)
        assert answer.status_code in (401, 404) and "import" not in answer.text


@pytest.mark.e2e
def test_the_cookie_stops_at_a_logout_or_password_change_in_another_process(
    production_env: dict[str, str],
) -> None:
    env = {
        **production_env,
        "RADCASE_AUTH": "on",
        "RADCASE_ADMIN_PASSWORD": PASSWORD,
        "RADCASE_PASSWORD_HASH_ROUNDS": "4",
    }
    with (
        serve(env) as one,
        serve(env) as two,
        httpx.Client(base_url=one) as first,
        httpx.Client(base_url=two) as second,
    ):
        assert sign_in(first).status_code == 303
        second.cookies.set(COOKIE, first.cookies[COOKIE])
        assert second.get("/api/me").status_code == 200
        token = csrf_of(first.get("/").text)
        assert first.post("/logout", data={"csrf": token}).status_code == 303
        assert second.get("/api/me").status_code == 401

        first.cookies.clear()
        assert sign_in(first).status_code == 303
        second.cookies.set(COOKIE, first.cookies[COOKIE])
        assert second.get("/").status_code == 200
        changed = subprocess.run(
            [sys.executable, "-m", "radcase_pacs", "user", "passwd", "admin", "--password-stdin"],
            input="another long password\n",
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert changed.returncode == 0, changed.stderr
        assert second.get("/api/me").status_code == 401
        assert first.get("/").status_code == 303


def test_over_https_the_cookie_is_secure(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "d", auth="on", admin_password=PASSWORD, password_hash_rounds=4
    )
    with served(settings, base_url="https://pacs.test", follow_redirects=False) as client:
        answer = sign_in(client)
        assert answer.status_code == 303
        assert "; Secure" in answer.headers["set-cookie"]


@pytest.mark.e2e
def test_a_password_changed_from_the_shell_ends_the_cookie_of_a_multi_worker_server(
    tmp_path: Path,
) -> None:
    """The embedded default with two HTTP workers (what ``make run`` starts on a multi-core
    machine): the workers share a cache file the shell does not use, and the session registry
    in the database still carries the shell's password change to every worker."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RADCASE_")},
        "RADCASE_DATA_DIR": str(tmp_path / "data"),
        "RADCASE_DIMSE_PORT": "0",
        "RADCASE_ADMIN_PASSWORD": PASSWORD,
        "RADCASE_PASSWORD_HASH_ROUNDS": "4",
    }
    with serve(env, "--workers", "2") as base, httpx.Client(base_url=base) as client:
        assert sign_in(client).status_code == 303
        for _ in range(6):  # through both workers
            assert client.get("/api/me").status_code == 200
        changed = subprocess.run(
            [sys.executable, "-m", "radcase_pacs", "user", "passwd", "admin", "--password-stdin"],
            input="another long password\n",
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert changed.returncode == 0, changed.stderr
        for _ in range(6):
            assert client.get("/api/me").status_code == 401
