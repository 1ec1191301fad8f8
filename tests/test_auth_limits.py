"""Abuse limits on the unauthenticated password endpoints, over real sockets.

Registration: a taken name costs no hash, registrations are limited per client address
(``TRIONET_REGISTER_RATE``), hashes run ``TRIONET_PASSWORD_HASHERS`` at a time with a bounded
queue (503 past it). Login: failures count per (username, address), with higher ceilings per
username and per address, so a stranger cannot lock a user out from one address.

The argon2 hasher is swapped for a cheap, instrumented one: it counts hashes and checks, and
records how many ran at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import trio
from argon2 import PasswordHasher

import trionet.auth
from trionet.auth import (
    HASH_QUEUE_LIMIT,
    LOGIN_FAILURES_PER_ADDRESS,
    LOGIN_FAILURES_PER_USER,
    LOGIN_FAILURES_PER_USER_AND_ADDRESS,
    LOGIN_WINDOW,
    LoginThrottle,
)
from trionet.settings import Settings
from trionet.testing import running_server

PASSWORD = "correct horse battery"
A, B = "203.0.113.7", "198.51.100.2"


class CountingHasher(PasswordHasher):
    """A cheap argon2id that counts its calls and the most that ran at once.

    ``delay`` seconds inside each call widen the window in which calls could overlap; while
    ``gate`` is clear, hashes (not checks) wait for it.
    """

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.delay = delay
        self.hashes = 0
        self.verifies = 0
        self.active = 0
        self.peak = 0
        self.gate = threading.Event()
        self.gate.set()
        self._lock = threading.Lock()

    def _enter(self) -> None:
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)

    def _leave(self) -> None:
        with self._lock:
            self.active -= 1

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        self._enter()
        try:
            with self._lock:
                self.hashes += 1
            self.gate.wait(timeout=30)
            time.sleep(self.delay)
            return super().hash(password, salt=salt)
        finally:
            self._leave()

    def verify(self, hash: str | bytes, password: str | bytes) -> Any:
        self._enter()
        try:
            with self._lock:
                self.verifies += 1
            time.sleep(self.delay)
            return super().verify(hash, password)
        finally:
            self._leave()


@pytest.fixture
def hasher(monkeypatch: pytest.MonkeyPatch) -> Iterator[CountingHasher]:
    counting = CountingHasher()
    monkeypatch.setattr(trionet.auth, "_hasher", counting)
    # unknown usernames are checked against this: make it as cheap as the rest
    monkeypatch.setattr(trionet.auth, "_DUMMY_HASH", counting.hash("dummy-password"))
    counting.hashes = 0
    try:
        yield counting
    finally:
        counting.gate.set()  # never leave a worker thread waiting


def _error(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, dict[str, Any]] = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    return body["error"]


async def register(client: httpx.AsyncClient, name: str, address: str | None = None,
                   ) -> httpx.Response:
    headers = {} if address is None else {"X-Forwarded-For": address}
    return await client.post("/api/auth/register", headers=headers,
                             json={"username": name, "password": PASSWORD})


async def login(client: httpx.AsyncClient, name: str, password: str,
                address: str | None = None) -> httpx.Response:
    headers = {} if address is None else {"X-Forwarded-For": address}
    return await client.post("/api/auth/login", headers=headers,
                             json={"username": name, "password": password})


async def users(server: Any) -> list[str]:
    return [u.username for u in await server.services.store.list_users()]


# registration


async def test_the_eleventh_registration_from_an_address_within_a_minute_is_429(
    hasher: CountingHasher,
) -> None:
    with trio.fail_after(30):
        async with running_server(Settings(proxy_hops=1, rate_limit=0)) as server:
            assert server.settings.register_rate == 10
            async with server.http() as client:
                statuses = [(await register(client, f"user{i}", A)).status_code
                            for i in range(10)]
                hashes = hasher.hashes
                refused = await register(client, "user10", A)
                other = await register(client, "user11", B)
            names = await users(server)
    assert statuses == [201] * 10
    assert refused.status_code == 429
    assert _error(refused)["code"] == "too_many_requests"
    assert 1 <= int(refused.headers["Retry-After"]) <= 6  # 10 a minute: one every 6 s
    assert hashes == 10 and hasher.hashes == 11  # the 429 cost no hash, B's did
    assert other.status_code == 201
    assert "user10" not in names and "user11" in names


async def test_taken_names_count_against_the_registration_limit(hasher: CountingHasher) -> None:
    with trio.fail_after(30):
        async with running_server(Settings(proxy_hops=1, rate_limit=0,
                                           register_rate=3)) as server:
            async with server.http() as client:
                first = await register(client, "alice", A)
                again = [(await register(client, "alice", A)).status_code for _ in range(2)]
                refused = await register(client, "bob", A)
    assert first.status_code == 201 and again == [409, 409]
    assert refused.status_code == 429 and "Retry-After" in refused.headers


async def test_a_taken_name_is_409_without_hashing(hasher: CountingHasher) -> None:
    with trio.fail_after(30):
        async with running_server(Settings(rate_limit=0, register_rate=0)) as server:
            async with server.http() as client:
                assert (await register(client, "alice")).status_code == 201
                assert hasher.hashes == 1
                same = await register(client, "alice")
                other_case = await register(client, "ALICE")
    assert same.status_code == other_case.status_code == 409
    assert _error(same)["code"] == "conflict"
    assert hasher.hashes == 1


async def test_register_rate_zero_turns_the_limit_off(hasher: CountingHasher) -> None:
    with trio.fail_after(30):
        async with running_server(Settings(rate_limit=0, register_rate=0)) as server:
            async with server.http() as client:
                statuses = [(await register(client, f"user{i}")).status_code for i in range(15)]
    assert statuses == [201] * 15


@pytest.mark.parametrize("hashers", [1, 3])
async def test_hashes_and_checks_run_password_hashers_at_a_time(
    hasher: CountingHasher, hashers: int
) -> None:
    """With 1 hasher no two hashes or checks ever overlap; with 3 they do (the gauge works)."""
    hasher.delay = 0.05
    settings = Settings(rate_limit=0, register_rate=0, password_hashers=hashers)
    statuses: list[int] = []
    with trio.fail_after(30):
        async with running_server(settings) as server:
            await server.create_user("alice", password=PASSWORD)
            async with server.http() as client:

                async def one(i: int) -> None:
                    if i % 2:
                        statuses.append((await login(client, "alice", PASSWORD)).status_code)
                    else:
                        statuses.append((await register(client, f"user{i}")).status_code)

                async with trio.open_nursery() as nursery:
                    for i in range(12):
                        nursery.start_soon(one, i)
    assert sorted(statuses) == [200] * 6 + [201] * 6
    assert hasher.peak == hashers


async def test_a_full_hasher_queue_is_503_at_once_and_the_login_is_not_counted(
    hasher: CountingHasher,
) -> None:
    settings = Settings(rate_limit=0, register_rate=0, password_hashers=1)
    statuses: list[int] = []
    with trio.fail_after(60):
        async with running_server(settings) as server:
            await server.create_user("alice", password=PASSWORD)
            hashers = server.services.hashers
            limits = httpx.Limits(max_connections=HASH_QUEUE_LIMIT + 10)
            async with httpx.AsyncClient(base_url=server.url, timeout=30,
                                         limits=limits) as client:
                hasher.gate.clear()  # the one hasher is held by the first registration

                async def one(i: int) -> None:
                    statuses.append((await register(client, f"queued{i}")).status_code)

                async with trio.open_nursery() as nursery:
                    for i in range(HASH_QUEUE_LIMIT + 1):
                        nursery.start_soon(one, i)
                    while hashers.statistics().tasks_waiting < HASH_QUEUE_LIMIT:
                        await trio.sleep(0.01)
                    assert hashers.statistics().borrowed_tokens == 1
                    busy_register = await register(client, "one-too-many")
                    busy_login = await login(client, "alice", PASSWORD)
                    hasher.gate.set()
                # had the refused login counted, the 10th of these would be a 429
                after = [(await login(client, "alice", f"wrong-{i}")).status_code
                         for i in range(LOGIN_FAILURES_PER_USER_AND_ADDRESS)]
            names = await users(server)
    for busy in (busy_register, busy_login):
        assert busy.status_code == 503
        assert _error(busy)["code"] == "unavailable"
        assert busy.headers["Retry-After"] == "1"
    assert statuses == [201] * (HASH_QUEUE_LIMIT + 1)
    assert "one-too-many" not in names
    assert after == [401] * LOGIN_FAILURES_PER_USER_AND_ADDRESS


# login


async def test_a_stranger_cannot_lock_a_user_out_from_another_address(
    hasher: CountingHasher,
) -> None:
    with trio.fail_after(30):
        async with running_server(Settings(proxy_hops=1, rate_limit=0)) as server:
            await server.create_user("alice", password=PASSWORD)
            await server.create_user("bob", password=PASSWORD)
            async with server.http() as client:
                guesses = [(await login(client, "alice", f"wrong-{i}", A)).status_code
                           for i in range(10)]
                alice_a = await login(client, "alice", PASSWORD, A)
                alice_b = await login(client, "alice", PASSWORD, B)
                bob_a = await login(client, "bob", PASSWORD, A)
    assert guesses == [401] * 10
    assert alice_a.status_code == 429 and _error(alice_a)["code"] == "too_many_requests"
    assert 0 < int(alice_a.headers["Retry-After"]) <= 600
    assert alice_b.status_code == 200 and alice_b.json()["username"] == "alice"
    assert bob_a.status_code == 200


async def test_guesses_spread_over_many_addresses_reach_the_username_ceiling(
    hasher: CountingHasher,
) -> None:
    with trio.fail_after(60):
        async with running_server(Settings(proxy_hops=1, rate_limit=0)) as server:
            await server.create_user("alice", password=PASSWORD)
            await server.create_user("bob", password=PASSWORD)
            async with server.http() as client:
                guesses = [(await login(client, "alice", "wrong-password",
                                        f"10.0.{i // 250}.{i % 250}")).status_code
                           for i in range(LOGIN_FAILURES_PER_USER)]
                alice_new = await login(client, "alice", PASSWORD, B)
                bob_new = await login(client, "bob", PASSWORD, B)
    assert guesses == [401] * LOGIN_FAILURES_PER_USER
    assert alice_new.status_code == 429 and "Retry-After" in alice_new.headers
    assert bob_new.status_code == 200


async def test_password_spraying_from_one_address_reaches_the_address_ceiling(
    hasher: CountingHasher,
) -> None:
    with trio.fail_after(60):
        async with running_server(Settings(proxy_hops=1, rate_limit=0)) as server:
            await server.create_user("carol", password=PASSWORD)
            async with server.http() as client:
                sprayed = [(await login(client, f"victim{i}", "Summer2024!", A)).status_code
                           for i in range(LOGIN_FAILURES_PER_ADDRESS - 1)]
                carol_before = await login(client, "carol", PASSWORD, A)  # forgiven
                last = await login(client, "victim-last", "Summer2024!", A)
                carol_a = await login(client, "carol", PASSWORD, A)
                carol_b = await login(client, "carol", PASSWORD, B)
    assert sprayed == [401] * (LOGIN_FAILURES_PER_ADDRESS - 1)
    assert carol_before.status_code == 200 and last.status_code == 401
    assert carol_a.status_code == 429 and "Retry-After" in carol_a.headers
    assert carol_b.status_code == 200


async def test_a_concurrent_burst_over_many_addresses_is_bounded_by_the_username_ceiling(
    hasher: CountingHasher,
) -> None:
    burst = LOGIN_FAILURES_PER_USER + 20
    statuses: list[int] = []
    with trio.fail_after(60):
        async with running_server(Settings(proxy_hops=1, rate_limit=0)) as server:
            await server.create_user("alice", password=PASSWORD)
            # at most 50 in flight: the hasher queue never fills, so no 503 muddles the count
            async with httpx.AsyncClient(base_url=server.url, timeout=30,
                                         limits=httpx.Limits(max_connections=50)) as client:

                async def guess(i: int) -> None:
                    address = f"10.1.{i // 250}.{i % 250}"
                    statuses.append((await login(client, "alice", f"guess-{i}",
                                                 address)).status_code)

                async with trio.open_nursery() as nursery:
                    for i in range(burst):
                        nursery.start_soon(guess, i)
                correct = await login(client, "alice", PASSWORD, B)
    assert statuses.count(401) == LOGIN_FAILURES_PER_USER
    assert statuses.count(429) == burst - LOGIN_FAILURES_PER_USER
    assert correct.status_code == 429


# the login policy itself


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_login_policy_limits_each_kind_of_key() -> None:
    clock = FakeClock()
    throttle = LoginThrottle.for_logins(clock=clock)
    for i in range(LOGIN_FAILURES_PER_ADDRESS):
        keys = LoginThrottle.login_keys(f"user{i}", "a")
        assert throttle.retry_after(keys) is None
        throttle.failed(keys)
    assert throttle.retry_after(LoginThrottle.login_keys("carol", "a")) == LOGIN_WINDOW + 1
    assert throttle.retry_after(LoginThrottle.login_keys("carol", "b")) is None
    for i in range(LOGIN_FAILURES_PER_USER - 1):
        throttle.failed(LoginThrottle.login_keys("dave", f"addr{i}"))
    assert throttle.retry_after(LoginThrottle.login_keys("dave", "new")) is None
    throttle.failed(LoginThrottle.login_keys("Dave", "addr-last"))  # names ignore case
    assert throttle.retry_after(LoginThrottle.login_keys("dave", "new")) is not None
    clock.now += LOGIN_WINDOW
    assert throttle.retry_after(LoginThrottle.login_keys("dave", "new")) is None
    assert throttle.retry_after(LoginThrottle.login_keys("carol", "a")) is None


def test_login_keys_of_different_attempts_never_collide() -> None:
    assert LoginThrottle.login_keys("b", "a:") != LoginThrottle.login_keys(":b", "a")
    assert LoginThrottle.login_keys("x", "1.2.3.4")[0] != LoginThrottle.login_keys(
        "1.2.3.4:x", "")[0]
    assert LoginThrottle.login_keys("Alice", "a") == LoginThrottle.login_keys("alice", "a")
