"""``radcase-pacs user ...`` from the shell: the users it makes log in over HTTP, and
``passwd``/``disable`` end the sessions of a running server."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from radcase_pacs.cli import main
from radcase_pacs.settings import Settings
from tests.apps import served


def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str, stdin: str = "") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    monkeypatch.setenv("RADCASE_PASSWORD_HASH_ROUNDS", "4")
    return main(["--data-dir", str(tmp_path / "data"), "user", *args])


def token(client: TestClient, username: str, password: str) -> int:
    return client.post(
        "/api/auth/token",
        data={"grant_type": "password", "username": username, "password": password},
    ).status_code


def test_users_made_from_the_shell_log_in_and_lose_their_sessions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    add = ("add", "nina", "--role", "educator", "--password-stdin")
    assert cli(tmp_path, monkeypatch, *add, stdin="first password\n") == 0
    assert cli(tmp_path, monkeypatch, *add, stdin="first password\n") == 1  # taken
    assert cli(tmp_path, monkeypatch, "list") == 0
    assert "nina\teducator\tdefault\tenabled" in capsys.readouterr().out
    settings = Settings(data_dir=tmp_path / "data", auth="on", password_hash_rounds=4)
    with served(settings) as client:
        answer = client.post(
            "/api/auth/token",
            data={"grant_type": "password", "username": "nina", "password": "first password"},
        )
        headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}
        assert client.get("/api/me", headers=headers).json()["role"] == "educator"
        new = "second password\n"
        assert cli(tmp_path, monkeypatch, "passwd", "nina", "--password-stdin", stdin=new) == 0
        assert client.get("/api/me", headers=headers).status_code == 401
        assert token(client, "nina", "first password") == 400
        assert token(client, "nina", "second password") == 200
        assert cli(tmp_path, monkeypatch, "disable", "nina") == 0
        assert token(client, "nina", "second password") == 400
        assert cli(tmp_path, monkeypatch, "enable", "nina") == 0
        assert token(client, "nina", "second password") == 200
    assert cli(tmp_path, monkeypatch, "passwd", "nobody", "--password-stdin", stdin="x" * 9) == 1
    assert cli(tmp_path, monkeypatch, "add", "oz", "--password-stdin", stdin="short\n") == 1
