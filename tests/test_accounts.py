"""Accounts and sessions over real HTTP: register, login, me, logout, look-ups, JWTs, Origin."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
import trio

from trionet.auth import LoginThrottle
from trionet.settings import Settings
from trionet.testing import TestServer, running_server

SECRET = "a-jwt-secret-of-at-least-32-chars!"
PASSWORD = "correct horse battery"


async def _register(client: httpx.AsyncClient, username: str, password: str = PASSWORD,
                    ) -> httpx.Response:
    return await client.post("/api/auth/register",
                             json={"username": username, "password": password})


async def _login(client: httpx.AsyncClient, username: str, password: str = PASSWORD,
                 ) -> httpx.Response:
    return await client.post("/api/auth/login", json={"username": username, "password": password})


def _error(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, dict[str, Any]] = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    return body["error"]


def _set_cookie(response: httpx.Response) -> dict[str, str]:
    """The session cookie's attributes, lower-cased names; the value under ``value``."""
    (header,) = response.headers.get_list("set-cookie")
    first, *attributes = (part.strip() for part in header.split(";"))
    name, _, value = first.partition("=")
    parsed = {"name": name, "value": value}
    for attribute in attributes:
        key, _, val = attribute.partition("=")
        parsed[key.lower()] = val
    return parsed


async def _sessions(server: TestServer) -> list[sqlite3.Row]:
    return await server.services.store.db.read(
        lambda c: list(c.execute("SELECT token_hash, user_id, expires_at FROM sessions"))
    )


@pytest.fixture
async def jwt_server() -> AsyncIterator[TestServer]:
    async with running_server(Settings(jwt_secret=SECRET, rate_limit=0)) as srv:
        yield srv


# register


async def test_register_creates_a_user_and_answers_201_with_id_and_username(
    server: TestServer,
) -> None:
    with trio.fail_after(10):
        async with server.http() as client:
            response = await _register(client, "alice")
    assert response.status_code == 201
    body = response.json()
    assert body == {"id": body["id"], "username": "alice"}
    assert isinstance(body["id"], int)


async def test_password_is_stored_as_an_argon2_hash(server: TestServer) -> None:
    with trio.fail_after(10):
        async with server.http() as client:
            await _register(client, "alice")
        (user,) = await server.services.store.list_users()
        stored = user.password_hash
    assert stored is not None
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


async def test_duplicate_username_is_409_whatever_its_case(server: TestServer) -> None:
    with trio.fail_after(10):
        async with server.http() as client:
            assert (await _register(client, "alice")).status_code == 201
            same = await _register(client, "alice")
            other_case = await _register(client, "ALICE")
    assert same.status_code == 409 and _error(same)["code"] == "conflict"
    assert other_case.status_code == 409


@pytest.mark.parametrize(
    "body",
    [
        {"username": "alice"},
        {"username": "alice", "password": "short"},
        {"username": "", "password": PASSWORD},
        {"username": "has space", "password": PASSWORD},
        {"username": "alice\n", "password": PASSWORD},
        {"username": "x" * 33, "password": PASSWORD},
        {"username": 5, "password": PASSWORD},
        {"username": "alice", "password": PASSWORD, "admin": True},
        [],
    ],
)
async def test_register_with_an_invalid_body_is_400(server: TestServer, body: Any) -> None:
    with trio.fail_after(10):
        async with server.http() as client:
            response = await client.post("/api/auth/register", json=body)
    assert response.status_code == 400
    assert _error(response)["code"] == "bad_request"


async def test_register_with_malformed_json_is_400(server: TestServer) -> None:
    with trio.fail_after(10):
        async with server.http() as client:
            response = await client.post("/api/auth/register", content=b"{not json",
                                         headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and _error(response)["code"] == "bad_request"


async def test_register_with_a_non_json_content_type_is_415(server: TestServer) -> None:
    with trio.fail_after(10):
        async with server.http() as client:
            form = await client.post("/api/auth/register",
                                     data={"username": "alice", "password": PASSWORD})
            text = await client.post(
                "/api/auth/register", content=b'{"username":"alice","password":"0123456789"}',
                headers={"Content-Type": "text/plain"},
            )
    assert form.status_code == 415 and _error(form)["code"] == "unsupported_media_type"
    assert text.status_code == 415


async def test_register_is_403_when_open_registration_is_off() -> None:
    with trio.fail_after(10):
        async with running_server(Settings(open_registration=False, rate_limit=0)) as server:
            async with server.http() as client:
                response = await _register(client, "alice")
            users = len(await server.services.store.list_users())
    assert response.status_code == 403 and _error(response)["code"] == "forbidden"
    assert users == 0


# login, me, logout


async def test_login_sets_an_httponly_lax_session_cookie(server: TestServer) -> None:
    with trio.fail_after(10):
        async with server.http() as client:
            await _register(client, "alice")
            response = await _login(client, "alice")
    assert response.status_code == 200
    assert response.json()["username"] == "alice"
    cookie = _set_cookie(response)
    assert cookie["name"] == server.settings.cookie_name
    assert len(cookie["value"]) >= 43  # 32 random bytes, URL-safe base64
    assert "httponly" in cookie
    assert cookie["samesite"].lower() == "lax"
    assert cookie["path"] == "/"
    assert cookie["max-age"] == str(server.settings.session_ttl)
    assert "secure" not in cookie


async def test_login_cookie_is_secure_when_cookie_secure_is_set() -> None:
    with trio.fail_after(10):
        async with running_server(Settings(cookie_secure=True, rate_limit=0)) as server:
            async with server.http() as client:
                await _register(client, "alice")
                response = await _login(client, "alice")
    assert response.status_code == 200
    assert "secure" in _set_cookie(response)


@pytest.mark.sqlite_only
async def test_session_token_is_stored_only_as_its_sha256(server: TestServer) -> None:
    with trio.fail_after(10):
        async with server.http() as client:
            registered = (await _register(client, "alice")).json()
            token = _set_cookie(await _login(client, "alice"))["value"]
        rows = await _sessions(server)
        dump = await server.services.store.db.read(lambda c: "\n".join(c.iterdump()))
    assert [(r["token_hash"], r["user_id"]) for r in rows] == [
        (hashlib.sha256(token.encode()).hexdigest(), registered["id"])
    ]
    assert token not in dump
    expires_in = rows[0]["expires_at"] - time.time()
    assert server.settings.session_ttl - 60 < expires_in <= server.settings.session_ttl


async def test_me_answers_the_logged_in_user_from_the_real_cookie(server: TestServer) -> None:
    with trio.fail_after(10):
        async with server.http() as client:
            registered = (await _register(client, "alice")).json()
            await _login(client, "alice")
            assert client.cookies.get(server.settings.cookie_name)  # the jar kept it
            response = await client.get("/api/me")
    assert response.status_code == 200
    assert response.json() == {"id": registered["id"], "username": "alice", "is_admin": False}


async def test_the_login_token_also_works_as_a_bearer_token(server: TestServer) -> None:
    with trio.fail_after(10):
        async with server.http() as client:
            await _register(client, "alice")
            token = (await _login(client, "alice")).json()["token"]
        async with server.http() as bare:
            response = await bare.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200 and response.json()["username"] == "alice"


async def test_me_without_credentials_is_401(server: TestServer) -> None:
    with trio.fail_after(10):
        async with server.http() as client:
            response = await client.get("/api/me")
            forged = await client.get(
                "/api/me", headers={"Cookie": f"{server.settings.cookie_name}={'x' * 43}"}
            )
    assert response.status_code == 401 and _error(response)["code"] == "unauthorized"
    assert forged.status_code == 401


async def test_session_is_200_with_a_null_user_when_signed_out(server: TestServer) -> None:
    cookie = server.settings.cookie_name
    with trio.fail_after(10):
        async with server.http() as client:
            anonymous = await client.get("/api/session")
            forged = await client.get("/api/session", headers={"Cookie": f"{cookie}={'x' * 43}"})
            bad_bearer = await client.get("/api/session",
                                          headers={"Authorization": "Bearer nonsense"})
    for response in (anonymous, forged, bad_bearer):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        assert response.json() == {"user": None}


async def test_session_names_the_signed_in_user_like_me_until_logout(server: TestServer) -> None:
    with trio.fail_after(10):
        async with server.http() as client:
            registered = (await _register(client, "alice")).json()
            token = (await _login(client, "alice")).json()["token"]
            signed_in = await client.get("/api/session")
            me = await client.get("/api/me")
            async with server.http() as bare:
                bearer = await bare.get("/api/session",
                                        headers={"Authorization": f"Bearer {token}"})
            await client.post("/api/auth/logout")
            after = await client.get("/api/session")
    assert signed_in.status_code == bearer.status_code == 200
    user = {"id": registered["id"], "username": "alice", "is_admin": False}
    assert signed_in.json() == bearer.json() == {"user": user}
    assert me.json() == user
    assert after.status_code == 200 and after.json() == {"user": None}


@pytest.mark.sqlite_only
async def test_session_is_null_once_the_session_expired(server: TestServer) -> None:
    alice = await server.create_user("alice")
    with trio.fail_after(10):
        async with server.http(alice) as client:
            before = (await client.get("/api/session")).json()
            await server.services.store.db.write(
                lambda c: c.execute("UPDATE sessions SET expires_at = ?", (time.time() - 1,))
            )
            after = await client.get("/api/session")
    assert before["user"]["id"] == alice.id
    assert after.status_code == 200 and after.json() == {"user": None}


@pytest.mark.sqlite_only
async def test_logout_ends_the_session_on_the_server(server: TestServer) -> None:
    with trio.fail_after(10):
        async with server.http() as client:
            await _register(client, "alice")
            token = _set_cookie(await _login(client, "alice"))["value"]
            response = await client.post("/api/auth/logout")
            assert response.status_code == 200
            cleared = _set_cookie(response)
            after = await client.get("/api/me")
        async with server.http() as replay:  # the old token, presented again
            replayed = await replay.get(
                "/api/me", headers={"Cookie": f"{server.settings.cookie_name}={token}"}
            )
        rows = await _sessions(server)
    assert cleared["name"] == server.settings.cookie_name and cleared["value"] in ("", '""')
    assert after.status_code == 401
    assert replayed.status_code == 401
    assert rows == []


async def test_wrong_password_and_unknown_user_get_the_same_401(server: TestServer) -> None:
    with trio.fail_after(10):
        async with server.http() as client:
            await _register(client, "alice")
            wrong = await _login(client, "alice", "not the password")
            unknown = await _login(client, "nobody", PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.content == unknown.content
    assert _error(wrong)["code"] == "unauthorized"
    assert "set-cookie" not in wrong.headers and "set-cookie" not in unknown.headers


@pytest.mark.sqlite_only
async def test_an_expired_session_is_401(server: TestServer) -> None:
    alice = await server.create_user("alice")
    with trio.fail_after(10):
        async with server.http(alice) as client:
            assert (await client.get("/api/me")).status_code == 200
            await server.services.store.db.write(
                lambda c: c.execute("UPDATE sessions SET expires_at = ?", (time.time() - 1,))
            )
            response = await client.get("/api/me")
    assert response.status_code == 401 and _error(response)["code"] == "unauthorized"


async def test_ten_failed_logins_then_429_with_retry_after(server: TestServer) -> None:
    with trio.fail_after(30):
        async with server.http() as client:
            await _register(client, "alice")
            statuses = [(await _login(client, "alice", f"wrong-{i}")).status_code
                        for i in range(10)]
            blocked = await _login(client, "alice")  # even the right password waits
    assert statuses == [401] * 10
    assert blocked.status_code == 429
    assert _error(blocked)["code"] == "too_many_requests"
    assert 0 < int(blocked.headers["Retry-After"]) <= 600


async def test_failed_logins_for_other_usernames_do_not_lock_out_a_user_at_the_address(
    server: TestServer,
) -> None:
    with trio.fail_after(30):
        async with server.http() as client:
            await _register(client, "alice")
            for i in range(10):
                assert (await _login(client, f"guess{i}", "wrong-password")).status_code == 401
            alice = await _login(client, "alice")
    assert alice.status_code == 200  # the address's own ceiling is 100 failures


# user look-up


async def test_users_lookup_by_ids_answers_id_and_username_only(server: TestServer) -> None:
    alice = await server.create_user("alice")
    bob = await server.create_user("bob", admin=True)
    with trio.fail_after(10):
        async with server.http(alice) as client:
            response = await client.get("/api/users", params={"ids": f"{bob.id},{alice.id},999"})
    assert response.status_code == 200
    assert response.json() == {"users": [{"id": alice.id, "username": "alice"},
                                         {"id": bob.id, "username": "bob"}]}


async def test_users_lookup_by_username(server: TestServer) -> None:
    alice = await server.create_user("alice")
    with trio.fail_after(10):
        async with server.http(alice) as client:
            found = await client.get("/api/users", params={"username": "alice"})
            missing = await client.get("/api/users", params={"username": "nobody"})
    assert found.status_code == 200
    assert found.json() == {"users": [{"id": alice.id, "username": "alice"}]}
    assert "password_hash" not in found.text
    assert missing.status_code == 404 and _error(missing)["code"] == "not_found"


@pytest.mark.parametrize("ids", ["", "a,b", "1,x", "0", "-1", "1.5", ",", "9" * 30,
                                 ",".join(["1"] * 501)])
async def test_users_lookup_with_bad_ids_is_400(server: TestServer, ids: str) -> None:
    alice = await server.create_user("alice")
    with trio.fail_after(10):
        async with server.http(alice) as client:
            response = await client.get("/api/users", params={"ids": ids})
    assert response.status_code == 400 and _error(response)["code"] == "bad_request"


async def test_users_lookup_without_a_parameter_is_400(server: TestServer) -> None:
    alice = await server.create_user("alice")
    with trio.fail_after(10):
        async with server.http(alice) as client:
            response = await client.get("/api/users")
    assert response.status_code == 400


async def test_users_lookup_unauthenticated_is_401(server: TestServer) -> None:
    await server.create_user("alice")
    with trio.fail_after(10):
        async with server.http() as client:
            by_ids = await client.get("/api/users", params={"ids": "1"})
            by_name = await client.get("/api/users", params={"username": "alice"})
    assert by_ids.status_code == by_name.status_code == 401


# JWT


async def test_a_valid_jwt_authenticates_and_creates_the_user(jwt_server: TestServer) -> None:
    token = jwt_server.jwt_for(4242)
    with trio.fail_after(10):
        async with jwt_server.http() as client:
            headers = {"Authorization": f"Bearer {token}"}
            me = await client.get("/api/me", headers=headers)
            again = await client.get("/api/me", headers=headers)
            lookup = await client.get("/api/users", params={"ids": "4242"}, headers=headers)
    assert me.status_code == 200
    assert me.json() == {"id": 4242, "username": "user4242", "is_admin": False}
    assert again.json() == me.json()
    assert lookup.json() == {"users": [{"id": 4242, "username": "user4242"}]}


async def test_session_resolves_a_jwt_like_me(jwt_server: TestServer) -> None:
    expired = _token({"sub": "4243", "exp": int(time.time()) - 10})
    with trio.fail_after(10):
        async with jwt_server.http() as client:
            valid = await client.get(
                "/api/session", headers={"Authorization": f"Bearer {jwt_server.jwt_for(4243)}"})
            refused = await client.get("/api/session",
                                       headers={"Authorization": f"Bearer {expired}"})
    assert valid.json() == {"user": {"id": 4243, "username": "user4243", "is_admin": False}}
    assert refused.status_code == 200 and refused.json() == {"user": None}


async def test_a_jwt_user_whose_default_name_is_taken_still_gets_a_row(
    jwt_server: TestServer,
) -> None:
    squatter = await jwt_server.create_user("user77")
    assert squatter.id != 77
    with trio.fail_after(10):
        async with jwt_server.http() as client:
            me = await client.get("/api/me",
                                  headers={"Authorization": f"Bearer {jwt_server.jwt_for(77)}"})
    assert me.status_code == 200
    assert me.json()["id"] == 77 and me.json()["username"] != "user77"


def _token(claims: dict[str, Any], secret: str = SECRET) -> str:
    return jwt.encode(claims, secret, "HS256")


@pytest.mark.parametrize(
    ("case", "token"),
    [
        ("expired", _token({"sub": "5", "exp": int(time.time()) - 10})),
        ("bad signature", _token({"sub": "5", "exp": int(time.time()) + 600},
                                 "another-secret-of-32-characters!!")),
        ("non-numeric sub", _token({"sub": "alice", "exp": int(time.time()) + 600})),
        ("integer sub", _token({"sub": 5, "exp": int(time.time()) + 600})),
        ("huge sub", _token({"sub": "9" * 30, "exp": int(time.time()) + 600})),
        ("zero sub", _token({"sub": "0", "exp": int(time.time()) + 600})),
        ("superscript digit sub", _token({"sub": "\u00b2", "exp": int(time.time()) + 600})),
        ("arabic digit sub", _token({"sub": "\u0663", "exp": int(time.time()) + 600})),
        ("5,000 digit sub", _token({"sub": "7" * 5000, "exp": int(time.time()) + 600})),
        ("signed sub", _token({"sub": "+3", "exp": int(time.time()) + 600})),
        ("padded sub", _token({"sub": " 3", "exp": int(time.time()) + 600})),
        ("leading zero sub", _token({"sub": "03", "exp": int(time.time()) + 600})),
        ("no exp", _token({"sub": "5"})),
        ("no sub", _token({"exp": int(time.time()) + 600})),
        ("alg none", jwt.encode({"sub": "5", "exp": int(time.time()) + 600}, None,
                                algorithm="none")),
        ("garbage", "not-a-token"),
    ],
)
async def test_an_invalid_jwt_is_401(jwt_server: TestServer, case: str, token: str) -> None:
    with trio.fail_after(10):
        async with jwt_server.http() as client:
            response = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        users = len(await jwt_server.services.store.list_users())
    assert response.status_code == 401, case
    assert _error(response)["code"] == "unauthorized"
    assert users == 0


async def test_a_missing_jwt_is_401(jwt_server: TestServer) -> None:
    with trio.fail_after(10):
        async with jwt_server.http() as client:
            missing = await client.get("/api/me")
            empty = await client.get("/api/me", headers={"Authorization": "Bearer"})
            basic = await client.get("/api/me", headers={"Authorization": "Basic dTpw"})
    assert missing.status_code == empty.status_code == basic.status_code == 401


async def test_jwts_are_ignored_when_no_secret_is_set(server: TestServer) -> None:
    token = _token({"sub": "5", "exp": int(time.time()) + 600})
    with trio.fail_after(10):
        async with server.http() as client:
            response = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


# Origin


async def test_a_post_from_a_foreign_origin_is_403(server: TestServer) -> None:
    alice = await server.create_user("alice")
    with trio.fail_after(10):
        async with server.http(alice) as client:
            register = await client.post(
                "/api/auth/register", json={"username": "bob", "password": PASSWORD},
                headers={"Origin": "https://evil.example"},
            )
            logout = await client.post("/api/auth/logout",
                                       headers={"Origin": "https://evil.example"})
            still_in = await client.get("/api/me")
    assert register.status_code == 403 and _error(register)["code"] == "forbidden"
    assert logout.status_code == 403
    assert still_in.status_code == 200


async def test_a_post_from_the_servers_own_origin_is_accepted(server: TestServer) -> None:
    with trio.fail_after(10):
        async with server.http() as client:
            response = await client.post(
                "/api/auth/register", json={"username": "bob", "password": PASSWORD},
                headers={"Origin": server.url},
            )
    assert response.status_code == 201


async def test_a_post_from_a_configured_origin_is_accepted() -> None:
    settings = Settings(allowed_origins=("https://app.example.com",), rate_limit=0)
    with trio.fail_after(10):
        async with running_server(settings) as server, server.http() as client:
            allowed = await client.post(
                "/api/auth/register", json={"username": "bob", "password": PASSWORD},
                headers={"Origin": "https://APP.example.com"},
            )
            own = await client.post(
                "/api/auth/register", json={"username": "carol", "password": PASSWORD},
                headers={"Origin": server.url},
            )
    assert allowed.status_code == 201
    assert own.status_code == 403  # an explicit list replaces the own-origin default


# the login throttle itself


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_throttle_blocks_after_the_limit_and_forgives_after_the_window() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(limit=3, window=60, clock=clock)
    for _ in range(3):
        assert throttle.retry_after(["user:a"]) is None
        throttle.failed(["user:a"])
        clock.now += 1
    assert throttle.retry_after(["user:a"]) == 58  # the first failure expires in 57 s
    assert throttle.retry_after(["user:b"]) is None
    clock.now += 58
    assert throttle.retry_after(["user:a"]) is None


def test_throttle_success_clears_the_username() -> None:
    throttle = LoginThrottle(limit=2, window=60, clock=FakeClock())
    throttle.failed(["user:a", "addr:x"])
    throttle.succeeded(["user:a"])
    throttle.failed(["user:a", "addr:x"])
    assert throttle.retry_after(["user:a"]) is None
    assert throttle.retry_after(["addr:x"]) is not None


def test_throttle_memory_stays_bounded_under_a_spray_of_usernames() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(limit=10, window=60, clock=clock)
    for i in range(50_000):
        throttle.retry_after([f"user:{i}", "addr:x"])
        throttle.failed([f"user:{i}"])
        clock.now += 0.01  # 100 failures a second: 6,000 live in any 60 s window
    assert len(throttle._failures) < 3 * 6_000


async def test_a_burst_of_concurrent_guesses_is_throttled_like_a_sequence(
    server: TestServer,
) -> None:
    await server.create_user("alice", password="s3cret-pass-42")
    statuses: list[int] = []
    with trio.fail_after(60):
        async with server.http() as client:

            async def guess(i: int) -> None:
                response = await _login(client, "alice", f"guess-{i:04d}")
                statuses.append(response.status_code)

            async with trio.open_nursery() as nursery:
                for i in range(40):
                    nursery.start_soon(guess, i)
            correct = await _login(client, "alice", "s3cret-pass-42")
    assert statuses.count(401) <= 10 and statuses.count(429) >= 30
    assert correct.status_code == 429
