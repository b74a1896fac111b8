"""Users, API keys, sessions and login throttling on SQLite and PostgreSQL stores, with the
memory and Redis caches."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jwt
import pytest

from radcase_pacs.auth.passwords import WeakPassword
from radcase_pacs.auth.principal import Role
from radcase_pacs.auth.sessions import ALGORITHM, LoginThrottle, Sessions
from radcase_pacs.auth.users import Taken, UserStore
from storage.cache.memory import MemoryCache
from storage.urls import open_cache, open_database
from tests.backends import REDIS_URL

FAST_ROUNDS = 4


@pytest.fixture(params=["sqlite", "postgres"])
def users(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[UserStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'index.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
    store = UserStore(open_database(url), rounds=FAST_ROUNDS)
    store.open()
    yield store
    store.close()


@pytest.fixture(params=["memory", "redis"])
def cache(request: pytest.FixtureRequest) -> Iterator[object]:
    if request.param == "memory":
        store: object = MemoryCache()
    else:
        prefix = request.getfixturevalue("redis_key_prefix")
        store = open_cache(f"{REDIS_URL}?prefix={prefix}")
    store.open()  # type: ignore[attr-defined]
    yield store
    store.close()  # type: ignore[attr-defined]


def sessions_over(cache: object, users: UserStore, **kw: object) -> Sessions:
    return Sessions(cache, users, lambda: users.signing_key(None), **kw)  # type: ignore[arg-type]


def test_passwords_are_stored_as_bcrypt_hashes(users: UserStore) -> None:
    users.add_user("alice", "hospital-a", Role.EDUCATOR, "correct horse")
    with users.db.read() as cur:
        (stored,) = cur.execute("SELECT password_hash FROM users").fetchone()
    assert stored.startswith("$2b$") and "correct horse" not in stored
    assert users.authenticate("alice", "correct horse") is not None
    assert users.authenticate("alice", "wrong horse") is None
    assert users.authenticate("nobody", "correct horse") is None


def test_disabled_users_cannot_log_in(users: UserStore) -> None:
    users.add_user("bob", "default", Role.LEARNER, "password1")
    users.set_disabled("bob", True)
    assert users.authenticate("bob", "password1") is None
    users.set_disabled("bob", False)
    assert users.authenticate("bob", "password1") is not None


def test_usernames_are_unique_across_institutions(users: UserStore) -> None:
    users.add_user("carol", "hospital-a", Role.LEARNER, "password1")
    with pytest.raises(Taken):
        users.add_user("carol", "hospital-b", Role.LEARNER, "password2")
    assert users.user("carol", "hospital-b") is None
    assert [u.username for u in users.users("hospital-b")] == []


@pytest.mark.parametrize("password", ["short", "x" * 73])
def test_weak_or_overlong_passwords_are_refused(users: UserStore, password: str) -> None:
    with pytest.raises(WeakPassword):
        users.add_user("dave", "default", Role.LEARNER, password)


def test_only_one_first_admin_is_created_by_processes_starting_together(
    users: UserStore,
) -> None:
    with ThreadPoolExecutor(6) as pool:
        created = list(
            pool.map(lambda i: users.add_first_admin("admin", "default", f"pw-{i}xxxx"), range(6))
        )
    assert created.count(True) == 1
    winner = created.index(True)
    assert users.authenticate("admin", f"pw-{winner}xxxx") is not None


def test_api_keys_authenticate_until_disabled(users: UserStore) -> None:
    key, token = users.add_api_key("hospital-a", "pacs-bridge")
    assert token.startswith("rk_")
    found = users.api_key(token)
    assert found is not None and (found.tenant, found.name) == ("hospital-a", "pacs-bridge")
    assert users.api_key(token[:-2] + "xx") is None
    assert users.api_key("rk_nothing_here") is None
    assert not users.disable_api_key("hospital-b", key.key_id)
    assert users.disable_api_key("hospital-a", key.key_id)
    assert users.api_key(token) is None


def test_an_access_token_works_until_logout(users: UserStore, cache: object) -> None:
    user = users.add_user("erin", "hospital-a", Role.EDUCATOR, "password1")
    sessions = sessions_over(cache, users)
    tokens = sessions.login(user)
    principal = sessions.verify(tokens.access_token)
    assert principal is not None
    assert (principal.user, principal.tenant, principal.role) == (
        "erin",
        "hospital-a",
        Role.EDUCATOR,
    )
    assert principal.session is not None
    sessions.logout(principal.session)
    assert sessions.verify(tokens.access_token) is None
    assert sessions.refresh(tokens.refresh_token) is None


def test_an_expired_or_forged_access_token_is_refused(users: UserStore, cache: object) -> None:
    user = users.add_user("frank", "default", Role.LEARNER, "password1")
    sessions = sessions_over(cache, users)
    tokens = sessions.login(user)
    claims = jwt.decode(tokens.access_token, sessions.signing_key, algorithms=[ALGORITHM])
    expired = jwt.encode({**claims, "exp": int(time.time()) - 5}, sessions.signing_key, ALGORITHM)
    assert sessions.verify(expired) is None
    forged = jwt.encode({**claims, "role": "admin"}, "not-the-key" * 4, ALGORITHM)
    assert sessions.verify(forged) is None
    unsigned = jwt.encode(claims, None, algorithm="none")
    assert sessions.verify(unsigned) is None
    assert sessions.verify(tokens.access_token) is not None


def test_a_refresh_token_is_single_use_and_its_reuse_ends_the_session(
    users: UserStore, cache: object
) -> None:
    user = users.add_user("gina", "default", Role.LEARNER, "password1")
    sessions = sessions_over(cache, users)
    first = sessions.login(user)
    second = sessions.refresh(first.refresh_token)
    assert second is not None and second.refresh_token != first.refresh_token
    assert sessions.verify(second.access_token) is not None
    assert sessions.refresh(first.refresh_token) is None  # replayed: the session ends
    assert sessions.verify(second.access_token) is None
    assert sessions.refresh(second.refresh_token) is None


def test_revoking_a_user_ends_all_their_sessions(users: UserStore, cache: object) -> None:
    user = users.add_user("hank", "default", Role.LEARNER, "password1")
    other = users.add_user("ivy", "default", Role.LEARNER, "password1")
    sessions = sessions_over(cache, users)
    mine = [sessions.login(user) for _ in range(3)]
    theirs = sessions.login(other)
    assert sessions.revoke_user("hank") == 3
    assert all(sessions.verify(t.access_token) is None for t in mine)
    assert sessions.verify(theirs.access_token) is not None


def test_a_disabled_user_cannot_refresh(users: UserStore, cache: object) -> None:
    user = users.add_user("jack", "default", Role.LEARNER, "password1")
    sessions = sessions_over(cache, users)
    tokens = sessions.login(user)
    users.set_disabled("jack", True)
    assert sessions.refresh(tokens.refresh_token) is None


def test_with_a_private_cache_the_registry_decides(users: UserStore) -> None:
    """Another process (the CLI) ends a session by deleting its row; a server whose cache it
    cannot reach must see that."""
    user = users.add_user("kim", "default", Role.LEARNER, "password1")
    sessions = sessions_over(MemoryCache(), users, check_registry=True)
    tokens = sessions.login(user)
    assert sessions.verify(tokens.access_token) is not None
    users.forget_sessions(users.session_ids("kim"))
    assert sessions.verify(tokens.access_token) is None


def test_failed_logins_are_throttled_per_user_and_per_address(cache: object) -> None:
    throttle = LoginThrottle(cache, max_failures=3, window=60)  # type: ignore[arg-type]
    for _ in range(3):
        assert not throttle.blocked("lee", "10.0.0.1")
        throttle.failed("lee", "10.0.0.1")
    assert throttle.blocked("lee", "10.0.0.1")
    assert throttle.blocked("LEE", "10.0.0.9")  # the same account from elsewhere
    assert not throttle.blocked("max", "10.0.0.1")
    for index in range(15):  # five times the per-user limit
        throttle.failed(f"user{index}", "10.0.0.2")
    assert throttle.blocked("someone-new", "10.0.0.2")
