"""Users, API keys and sessions on SQLite and PostgreSQL stores; login throttling with the
memory and Redis caches, and in the process while Redis is down."""

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
from storage.cache.redis import RedisCache
from storage.urls import open_cache, open_database
from tests.backends import REDIS_URL, PrivateRedis

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


def sessions_over(users: UserStore, **kw: int) -> Sessions:
    return Sessions(users, lambda: users.signing_key(None), **kw)


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


def test_an_access_token_works_until_logout(users: UserStore) -> None:
    user = users.add_user("erin", "hospital-a", Role.EDUCATOR, "password1")
    sessions = sessions_over(users)
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


def test_an_expired_or_forged_access_token_is_refused(users: UserStore) -> None:
    user = users.add_user("frank", "default", Role.LEARNER, "password1")
    sessions = sessions_over(users)
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
    users: UserStore,
) -> None:
    user = users.add_user("gina", "default", Role.LEARNER, "password1")
    sessions = sessions_over(users)
    first = sessions.login(user)
    second = sessions.refresh(first.refresh_token)
    assert second is not None and second.refresh_token != first.refresh_token
    assert sessions.verify(second.access_token) is not None
    assert sessions.refresh(first.refresh_token) is None  # replayed: the session ends
    assert sessions.verify(second.access_token) is None
    assert sessions.refresh(second.refresh_token) is None


def test_revoking_a_user_ends_all_their_sessions(users: UserStore) -> None:
    user = users.add_user("hank", "default", Role.LEARNER, "password1")
    other = users.add_user("ivy", "default", Role.LEARNER, "password1")
    sessions = sessions_over(users)
    mine = [sessions.login(user) for _ in range(3)]
    theirs = sessions.login(other)
    assert sessions.revoke_user("hank") == 3
    assert all(sessions.verify(t.access_token) is None for t in mine)
    assert sessions.verify(theirs.access_token) is not None


def test_a_disabled_user_cannot_refresh(users: UserStore) -> None:
    user = users.add_user("jack", "default", Role.LEARNER, "password1")
    sessions = sessions_over(users)
    tokens = sessions.login(user)
    users.set_disabled("jack", True)
    assert sessions.refresh(tokens.refresh_token) is None


def test_the_registry_decides_in_every_process(users: UserStore) -> None:
    """Another process (the CLI, another worker) ends a session by deleting its row; no cache
    stands between that and the next request here."""
    user = users.add_user("kim", "default", Role.LEARNER, "password1")
    sessions = sessions_over(users)
    tokens = sessions.login(user)
    cookie = sessions.open_browser_session(user)
    assert sessions.verify(tokens.access_token) is not None
    assert sessions.verify_cookie(cookie) is not None
    users.forget_sessions(users.session_ids("kim"))
    assert sessions.verify(tokens.access_token) is None
    assert sessions.verify_cookie(cookie) is None


def test_a_browser_cookie_needs_its_secret(users: UserStore) -> None:
    user = users.add_user("lou", "hospital-a", Role.EDUCATOR, "password1")
    sessions = sessions_over(users)
    cookie = sessions.open_browser_session(user)
    principal = sessions.verify_cookie(cookie)
    assert principal is not None and (principal.user, principal.tenant) == ("lou", "hospital-a")
    sid, _, secret = cookie.partition(".")
    assert sessions.verify_cookie(f"{sid}.{secret[:-2]}xx") is None
    assert sessions.verify_cookie(sid) is None
    token_sid = sessions.login(user).refresh_token.partition(".")[0]
    assert sessions.verify_cookie(f"{token_sid}.{secret}") is None  # a token's session


def test_a_disabled_user_is_refused_before_any_revocation(users: UserStore) -> None:
    user = users.add_user("mo", "default", Role.LEARNER, "password1")
    sessions = sessions_over(users)
    tokens = sessions.login(user)
    users.set_disabled("mo", True)
    assert sessions.verify(tokens.access_token) is None
    users.set_disabled("mo", False)
    assert sessions.verify(tokens.access_token) is not None


def test_of_two_refreshes_with_one_token_only_one_wins(users: UserStore) -> None:
    user = users.add_user("nan", "default", Role.LEARNER, "password1")
    sessions = sessions_over(users)
    for _ in range(5):
        tokens = sessions.login(user)
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(sessions.refresh, [tokens.refresh_token] * 2))
        winners = [r for r in results if r is not None]
        assert len(winners) == 1
        # The other one is a replay, whether it came a moment late or at the same instant: the
        # session ends, the winner's new tokens with it.
        assert sessions.verify(winners[0].access_token) is None


def test_failed_logins_are_counted_in_the_process_while_redis_is_down(
    private_redis: PrivateRedis,
) -> None:
    cache = RedisCache(f"redis://127.0.0.1:{private_redis.port}/0", prefix="t:", retry_after=0.2)
    cache.open()
    throttle = LoginThrottle(cache, max_failures=4, window=60)
    for _ in range(2):
        throttle.failed("olga", "10.0.0.1")
    private_redis.kill()
    for _ in range(4):
        assert not throttle.blocked("pat", "10.0.0.2")
        throttle.failed("pat", "10.0.0.2")
    assert throttle.blocked("pat", "10.0.0.2"), "counted while Redis is down"
    for _ in range(2):
        throttle.failed("olga", "10.0.0.1")
    assert not throttle.blocked("olga", "10.0.0.1")  # the two from before are out of reach
    private_redis.start()  # empty: this Redis keeps nothing across a kill
    time.sleep(0.3)  # the cache leaves Redis alone for retry_after after a failure
    assert throttle.blocked("pat", "10.0.0.2"), "the outage's counts last their window"
    throttle.failed("olga", "10.0.0.1")
    assert not throttle.blocked("olga", "10.0.0.1")
    throttle.failed("olga", "10.0.0.1")
    assert throttle.blocked("olga", "10.0.0.1"), "two in Redis again, two from the outage"
    cache.close()


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
