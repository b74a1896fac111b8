"""Authentication while a store is down, on PostgreSQL and a Redis of the test's own.

Sessions live in the database's registry, not in the cache: a SIGKILL of Redis (or a freeze)
logs nobody out, whether by bearer token or browser cookie; sign-in and refresh go on; failed
sign-ins are still counted (in the process); a session revoked during the outage (logout,
password change, disabled user, browser sign-out) is refused at once and stays refused once
Redis is back, whether it comes back empty or with what it held before. With the database cut
off, requests that need a principal get 503 and a Retry-After, never 401, and work again,
with the same tokens, once it answers."""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from starlette.testclient import TestClient

from radcase_pacs.auth.browser import COOKIE
from radcase_pacs.settings import Settings
from storage.cache.redis import RedisCache
from tests.apps import served
from tests.backends import PrivateRedis
from tests.factories import free_port

PASSWORD = "a long password"
NEW_PASSWORD = "another long password"
SITE = "http://testserver"
ORIGIN = "http://viewer.example"


@dataclass(frozen=True)
class Login:
    access: str
    refresh: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}


def password_grant(client: TestClient, username: str, password: str = PASSWORD) -> httpx.Response:
    form = {"grant_type": "password", "username": username, "password": password}
    return client.post("/api/auth/token", data=form)


def token_login(client: TestClient, username: str) -> Login:
    answer = password_grant(client, username)
    assert answer.status_code == 200, answer.text
    return Login(answer.json()["access_token"], answer.json()["refresh_token"])


def refreshed(client: TestClient, login: Login) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": login.refresh}
    return client.post("/api/auth/token", data=form)


def browser_login(client: TestClient, username: str) -> dict[str, str]:
    """The Cookie header of a browser session (the client's own jar stays empty, so that
    several people's sessions can be used side by side)."""
    answer = client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "next": "/", "csrf": ""},
        headers={"Origin": SITE},
    )
    assert answer.status_code == 303, answer.text
    found = re.search(rf"{COOKIE}=([^;]+)", answer.headers["set-cookie"])
    assert found is not None
    client.cookies.clear()
    return {"Cookie": f"{COOKIE}={found.group(1)}"}


def browser_logout(client: TestClient, cookie: dict[str, str]) -> None:
    page = client.get("/", headers=cookie)
    token = re.search(r'<meta name="csrf-token" content="([0-9a-f]*)"', page.text)
    assert page.status_code == 200 and token is not None
    answer = client.post(
        "/logout", data={"csrf": token.group(1)}, headers={**cookie, "Origin": SITE}
    )
    assert answer.status_code == 303
    client.cookies.clear()


def me(client: TestClient, headers: dict[str, str]) -> int:
    return client.get("/api/me", headers=headers).status_code


def wait_until(condition: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.fixture
def settings(tmp_path: Path, postgres_url: str, private_redis: PrivateRedis) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        index_url=postgres_url,
        cache_url=f"redis://127.0.0.1:{private_redis.port}/0?prefix=outage:",
        auth="on",
        admin_password=PASSWORD,
        password_hash_rounds=4,
        login_max_failures=3,
    )


@contextmanager
def frozen(redis: PrivateRedis) -> Iterator[None]:
    """Redis stopped (SIGSTOP) with everything it holds, and thawed (SIGCONT) on exit."""
    assert redis.process is not None
    os.kill(redis.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(redis.process.pid, signal.SIGCONT)


def test_signed_in_people_ride_out_a_redis_outage_and_its_revocations_hold(
    settings: Settings, private_redis: PrivateRedis
) -> None:
    with served(settings, follow_redirects=False) as client:
        admin = token_login(client, "admin")
        for name in ("ana", "ben", "cy", "dee", "eve", "fay", "gus"):
            answer = client.post(
                "/api/users",
                json={"username": name, "password": PASSWORD, "role": "learner"},
                headers=admin.headers,
            )
            assert answer.status_code == 201, answer.text
        ana, ben, cy, dee = (token_login(client, n) for n in ("ana", "ben", "cy", "dee"))
        eve, fay, gus = (browser_login(client, n) for n in ("eve", "fay", "gus"))
        everyone = [admin.headers, ana.headers, ben.headers, cy.headers, dee.headers]
        everyone += [eve, fay, gus]
        auth_cache = client.app.state.deployment.auth.cache  # type: ignore[attr-defined]
        assert isinstance(auth_cache, RedisCache)

        private_redis.kill()  # SIGKILL

        # Nobody is told "unauthenticated": every signed-in request goes on.
        statuses = [me(client, h) for _ in range(5) for h in everyone]
        assert statuses == [200] * len(statuses)
        # Sign-in and refresh need only the database.
        late = token_login(client, "gus")
        assert not auth_cache.available, "the sign-in met the outage (its throttle check)"
        assert me(client, late.headers) == 200
        again = refreshed(client, dee)
        assert again.status_code == 200, again.text
        dee = Login(again.json()["access_token"], again.json()["refresh_token"])
        assert me(client, dee.headers) == 200
        assert me(client, browser_login(client, "gus")) == 200
        # Failed sign-ins are still counted: over the limit even the right password is refused.
        for _ in range(3):
            assert password_grant(client, "ana", "wrong password").status_code == 400
        assert password_grant(client, "ana").status_code == 429
        # Revocations made during the outage take effect at once.
        assert client.post("/api/auth/logout", headers=ana.headers).status_code == 204
        for name, change in (("ben", {"password": NEW_PASSWORD}), ("cy", {"disabled": True})):
            answer = client.patch(f"/api/users/{name}", json=change, headers=admin.headers)
            assert answer.status_code == 200, answer.text
        browser_logout(client, fay)
        revoked = [ana.headers, ben.headers, cy.headers, fay]
        assert [me(client, h) for h in revoked] == [401] * 4
        assert refreshed(client, ben).status_code == 400

        private_redis.start()  # empty: it kept nothing across the kill

        def back() -> bool:
            auth_cache.get("probe")  # once Redis answers a call, the cache is back in use
            return auth_cache.available

        wait_until(back)
        assert [me(client, h) for h in revoked] == [401] * 4
        assert [me(client, h) for h in (dee.headers, late.headers, eve, gus)] == [200] * 4
        assert password_grant(client, "ben").status_code == 400  # the old password
        assert password_grant(client, "ben", NEW_PASSWORD).status_code == 200

        # Frozen, Redis keeps what it held; what is revoked meanwhile stays revoked after.
        with frozen(private_redis):
            assert me(client, dee.headers) == 200
            assert client.post("/api/auth/logout", headers=dee.headers).status_code == 204
            browser_logout(client, eve)
            assert [me(client, h) for h in (dee.headers, eve)] == [401, 401]
        wait_until(back)
        assert [me(client, h) for h in (dee.headers, eve)] == [401, 401]
        assert refreshed(client, dee).status_code == 400
        assert [me(client, h) for h in (late.headers, gus, admin.headers)] == [200] * 3


class Severable:
    """A TCP relay to PostgreSQL that the test can cut (every connection closed, new ones
    refused) and restore: the database unreachable, as after a crash or a partition."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def restore(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port))
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            for sock in self._open:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    client.close()
                    server.close()
                    return
                self._open.update((client, server))
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        with suppress(OSError):
            target.shutdown(socket.SHUT_WR)


@pytest.fixture
def severable_database(postgres_url: str) -> Iterator[tuple[Severable, str]]:
    parts = urlsplit(postgres_url)
    relay = Severable((parts.hostname or "127.0.0.1", parts.port or 5432))
    relay.restore()
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@127.0.0.1:{relay.port}" if credentials else f"127.0.0.1:{relay.port}"
    yield relay, urlunsplit(parts._replace(netloc=netloc))
    relay.cut()


def test_with_the_database_cut_off_credentials_get_503_never_401(
    tmp_path: Path, severable_database: tuple[Severable, str]
) -> None:
    relay, url = severable_database
    settings = Settings(
        data_dir=tmp_path / "data",
        index_url=url,
        auth="on",
        admin_password=PASSWORD,
        password_hash_rounds=4,
    )
    with served(settings, follow_redirects=False) as client:
        login = token_login(client, "admin")
        cookie = browser_login(client, "admin")
        relay.cut()
        try:
            # Each waits for the pool's timeout (5 s) to give up on the database: side by side.
            requests: list[Callable[[], httpx.Response]] = [
                lambda: client.get("/api/me", headers={**login.headers, "Origin": ORIGIN}),
                lambda: client.get("/", headers=cookie),
                lambda: client.get("/static/app.css", headers=cookie),  # needs no principal
                lambda: client.post(
                    "/login",
                    data={"username": "admin", "password": PASSWORD, "next": "/", "csrf": ""},
                    headers={"Origin": SITE},
                ),
            ]
            with ThreadPoolExecutor(len(requests)) as pool:
                api, page, static, sign_in = pool.map(lambda request: request(), requests)
        finally:
            relay.restore()
        assert api.status_code == 503, api.text
        assert int(api.headers["retry-after"]) > 0
        assert api.headers["access-control-allow-origin"] == ORIGIN
        assert "www-authenticate" not in api.headers
        assert page.status_code == 503 and "still signed in" in page.text
        assert static.status_code == 200
        assert sign_in.status_code == 503 and "Try again shortly" in sign_in.text
        assert "set-cookie" not in sign_in.headers
        wait_until(lambda: me(client, login.headers) == 200, timeout=30)
        assert me(client, cookie) == 200
