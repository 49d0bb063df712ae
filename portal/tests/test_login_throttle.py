"""Log-in throttling an attacker cannot turn against the team (portal/services.py): per
(username, IP) and per username, growing lockouts, atomic counters, a bounded audit log."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient

from portal import services
from portal.models import AuditEntry, User
from portal.ratelimit import counter_add
from portal.testing import PASSWORD

pytestmark = pytest.mark.django_db

OFFICE = "198.51.100.7"  # the team's NAT
HOME = "203.0.113.20"
WINDOW = 15 * 60


@pytest.fixture(autouse=True)
def _limits(settings: Any) -> None:
    settings.LOGIN_FAILURE_LIMIT = 3
    settings.LOGIN_FAILURE_LIMIT_PER_USERNAME = 6
    settings.LOGIN_AUDIT_ROWS_PER_IP = 10


class Clock:
    """time.time() for the services and the local-memory cache alike."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(time, "time", fake)
    return fake


def page_login(username: str, password: str, ip: str) -> Any:
    return Client().post(
        "/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=ip
    )


def token_login(username: str, password: str, ip: str) -> Any:
    return APIClient().post(
        "/api/v1/auth/token/",
        {"username": username, "password": password},
        format="json",
        REMOTE_ADDR=ip,
    )


def fail(username: str, ip: str, times: int) -> None:
    for _ in range(times):
        response = page_login(username, "wrong", ip)
        assert response.status_code == 200, response.status_code
        assert b"Wrong username or password." in response.content


@pytest.fixture
def alice(make_user: Callable[..., User]) -> User:
    return make_user("researcher", username="alice")


@pytest.fixture
def bob(make_user: Callable[..., User]) -> User:
    return make_user("researcher", username="bob")


def test_failures_of_one_user_do_not_lock_a_colleague_behind_the_same_nat(
    alice: User, bob: User
) -> None:
    # given someone failing as alice from the office address until alice is locked there
    fail("alice", OFFICE, 3)
    assert page_login("alice", PASSWORD, OFFICE).status_code == 429
    # then bob, behind the same address, logs in on the page and gets an API token
    assert page_login("bob", PASSWORD, OFFICE).status_code == 302
    assert token_login("bob", PASSWORD, OFFICE).status_code == 200


def test_failures_for_unknown_usernames_lock_nobody_else(alice: User) -> None:
    for n in range(20):
        page_login(f"nobody{n}", "guess", OFFICE)
    assert page_login("alice", PASSWORD, OFFICE).status_code == 302


def test_a_locked_pair_says_so_with_retry_after_on_the_page_and_the_api(alice: User) -> None:
    fail("alice", OFFICE, 3)
    page = page_login("alice", PASSWORD, OFFICE)
    assert page.status_code == 429
    assert b"Too many failed log-ins. Try again in about 15 minute(s)." in page.content
    assert 890 <= int(page["Retry-After"]) <= WINDOW
    api = token_login("alice", PASSWORD, OFFICE)
    assert api.status_code == 429
    assert 890 <= int(api["Retry-After"]) <= WINDOW
    assert api.json()["message"].startswith("Too many failed log-ins.")
    assert api.json()["extra"]["retry_after_seconds"] == int(api["Retry-After"])


def test_alice_from_another_ip_gets_in_until_the_per_username_limit(alice: User) -> None:
    # given alice's pair locked at the office
    fail("alice", OFFICE, 3)
    assert page_login("alice", PASSWORD, OFFICE).status_code == 429
    # then alice from home still gets in
    assert page_login("alice", PASSWORD, HOME).status_code == 302


def test_spraying_one_username_from_many_ips_locks_it_but_not_where_its_owner_logs_in(
    alice: User,
) -> None:
    # given alice logged in from home once
    assert page_login("alice", PASSWORD, HOME).status_code == 302
    # when an attacker fails as alice from two addresses (3 each: 6, the per-username limit)
    fail("alice", "192.0.2.1", 3)
    fail("alice", "192.0.2.2", 3)
    # then alice is locked from any new address, the attacker's third one included
    assert page_login("alice", PASSWORD, "192.0.2.3").status_code == 429
    assert token_login("alice", PASSWORD, "192.0.2.3").status_code == 429
    # but not from home, where she logged in before
    assert page_login("alice", PASSWORD, HOME).status_code == 302


def test_one_ip_cannot_lock_a_username_alone(alice: User) -> None:
    # a locked pair is refused without counting: one address never reaches the username limit
    for _ in range(20):
        page_login("alice", "wrong", "192.0.2.1")
    assert page_login("alice", PASSWORD, HOME).status_code == 302


def test_each_further_lockout_lasts_twice_as_long(alice: User, clock: Clock) -> None:
    waits = []
    for _ in range(4):
        fail("alice", OFFICE, 3)
        locked = page_login("alice", PASSWORD, OFFICE)
        assert locked.status_code == 429
        wait = int(locked["Retry-After"])
        waits.append(wait)
        clock.advance(wait + 1)
    assert waits == [WINDOW, 2 * WINDOW, 4 * WINDOW, 8 * WINDOW]
    # and a success forgets the pair's record
    assert page_login("alice", PASSWORD, OFFICE).status_code == 302
    fail("alice", OFFICE, 3)
    assert int(page_login("alice", PASSWORD, OFFICE)["Retry-After"]) == WINDOW


def test_lockouts_stop_growing_at_the_cap(alice: User, clock: Clock, settings: Any) -> None:
    from datetime import timedelta

    settings.LOGIN_LOCKOUT_MAX = timedelta(hours=1)
    waits = []
    for _ in range(5):
        fail("alice", OFFICE, 3)
        wait = int(page_login("alice", PASSWORD, OFFICE)["Retry-After"])
        waits.append(wait)
        clock.advance(wait + 1)
    assert waits == [WINDOW, 2 * WINDOW, 3600, 3600, 3600]


def test_a_lockout_ends_and_alice_gets_in(alice: User, clock: Clock) -> None:
    fail("alice", OFFICE, 3)
    clock.advance(WINDOW + 1)
    assert page_login("alice", PASSWORD, OFFICE).status_code == 302


def test_audit_rows_stay_bounded_under_100_anonymous_failures(alice: User) -> None:
    # when 100 log-ins fail from one address with 100 different usernames
    for n in range(100):
        page_login(f"user{n}", "guess", OFFICE)
    # then the audit log holds the first 10 and one row saying the rest were counted
    rows = AuditEntry.objects.filter(action__startswith="login.")
    assert rows.count() == 11
    assert rows.filter(action="login.failed.suppressed").count() == 1
    # and 100 tries for one username from one address leave the first failure and the lockout
    before = AuditEntry.objects.count()
    for _ in range(100):
        page_login("alice", "wrong", HOME)
    assert AuditEntry.objects.count() - before == 2
    locked = AuditEntry.objects.get(action="login.locked", source_ip=HOME)
    assert locked.object_repr == "alice"
    assert locked.changes["failures"]["after"] == 3
    assert locked.changes["locked_seconds"]["after"] == WINDOW


def test_counters_are_atomic_under_concurrent_failures() -> None:
    # when 8 threads count 50 failures each on one key at once
    seen: list[int] = []
    lock = threading.Lock()

    def hammer() -> None:
        for _ in range(50):
            value = counter_add("login-fail:test", timeout=60)
            with lock:
                seen.append(value)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # then none is lost and each value was seen once: exactly one failure starts each lockout
    assert cache.get("login-fail:test") == 400
    assert sorted(seen) == list(range(1, 401))


def test_concurrent_failures_start_exactly_one_lockout_per_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lockouts: list[dict[str, Any]] = []
    monkeypatch.setattr(
        services, "_login_failure_audit", lambda **kw: lockouts.extend(kw["lockouts"])
    )
    threads = [
        threading.Thread(
            target=services.login_failure_record, kwargs={"username": "x", "ip": OFFICE}
        )
        for _ in range(9)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 9 failures, limit 3: three pair lockouts (the username limit, 6, once)
    assert sorted(lock["scope"] for lock in lockouts) == ["pair", "pair", "pair", "username"]
    assert services.login_locked_for(username="x", ip=OFFICE) > 0


def test_cache_keys_hold_no_username(alice: User) -> None:
    fail("alice", OFFICE, 3)
    keys = list(cache._cache)  # type: ignore[attr-defined]  # local memory in tests
    assert keys
    assert not any("alice" in key for key in keys)


def test_api_tokens_of_others_keep_working_while_a_pair_is_locked(alice: User, bob: User) -> None:
    token = token_login("bob", PASSWORD, OFFICE).json()["token"]
    fail("alice", OFFICE, 3)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/v1/auth/me/", REMOTE_ADDR=OFFICE).status_code == 200
