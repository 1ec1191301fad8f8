"""One identity source per user: the backend's ids (JWT ``sub``, the server API) never adopt or
rename an account that has a password, and JWT auth refuses to run beside self-registration."""

from __future__ import annotations

import time

import jwt
import pytest
import trio
import trio_websocket

from trionet.settings import Settings, SettingsError
from trionet.testing import running_server

KEY = "a-server-api-key-for-tests"
SECRET = "a-jwt-secret-of-at-least-32-chars!"
PASSWORD = "correct horse battery"


async def test_the_server_api_cannot_rename_a_self_registered_account() -> None:
    """The attack: the backend mirrors users 1 and 2, mallory registers and gets id 3, the
    backend's PUT /api/server/users/3 renamed her account to "dave" (password kept)."""
    key = {"Authorization": f"Bearer {KEY}"}
    async with running_server(Settings(api_key=KEY, rate_limit=0)) as server:
        with trio.fail_after(20):
            async with server.http() as client:
                for uid, name in ((1, "alice"), (2, "bob")):
                    mirrored = await client.put(f"/api/server/users/{uid}", headers=key,
                                                json={"username": name})
                    assert mirrored.status_code == 201
                registered = await client.post("/api/auth/register",
                                               json={"username": "mallory", "password": PASSWORD})
                assert registered.status_code == 201 and registered.json()["id"] == 3
                rename = await client.put("/api/server/users/3", headers=key,
                                          json={"username": "dave"})
                login = await client.post("/api/auth/login",
                                          json={"username": "mallory", "password": PASSWORD})
                mallory = login.json()
                dave = await client.get("/api/users", params={"username": "dave"},
                                        headers={"Authorization": f"Bearer {mallory['token']}"})
                # backend users without a password stay the backend's to rename
                renamed = await client.put("/api/server/users/2", headers=key,
                                           json={"username": "robert"})
    assert rename.status_code == 409
    assert rename.json()["error"]["code"] == "conflict"
    assert "password" in rename.json()["error"]["message"]
    assert login.status_code == 200 and mallory["username"] == "mallory" and mallory["id"] == 3
    assert dave.status_code == 404
    assert renamed.status_code == 200


async def test_a_jwt_cannot_adopt_an_account_with_a_password() -> None:
    """An admin made with a password (the CLI's way) must not be reachable by a JWT whose
    ``sub`` happens to be its id: not over HTTP, not on the WebSocket handshake."""
    async with running_server(Settings(jwt_secret=SECRET, rate_limit=0)) as server:
        admin = await server.create_user("root", admin=True)
        token = jwt.encode({"sub": str(admin.id), "exp": int(time.time()) + 600}, SECRET,
                           "HS256")
        bearer = {"Authorization": f"Bearer {token}"}
        with trio.fail_after(20):
            async with server.http() as client:
                me = await client.get("/api/me", headers=bearer)
                # a backend id nobody holds still works
                other = await client.get(
                    "/api/me", headers={"Authorization": f"Bearer {server.jwt_for(admin.id + 1)}"})
            with pytest.raises(trio_websocket.HandshakeError) as refused:
                async with server.connect(headers=bearer):
                    pass
    assert me.status_code == 401
    assert other.status_code == 200 and other.json()["id"] == admin.id + 1
    assert isinstance(refused.value, trio_websocket.ConnectionRejected)
    assert refused.value.status_code == 401


@pytest.mark.parametrize("sub", ["\u00b2", "\u0663", "7" * 5000, "1_0"])
async def test_a_signed_jwt_with_a_malformed_sub_is_401_on_the_handshake(sub: str) -> None:
    async with running_server(Settings(jwt_secret=SECRET, rate_limit=0)) as server:
        token = jwt.encode({"sub": sub, "exp": int(time.time()) + 600}, SECRET, "HS256")
        with trio.fail_after(10), pytest.raises(trio_websocket.ConnectionRejected) as refused:
            async with server.connect(headers={"Authorization": f"Bearer {token}"}):
                pass
    assert refused.value.status_code == 401


async def test_jwt_auth_closes_self_registration() -> None:
    async with running_server(Settings(jwt_secret=SECRET, rate_limit=0)) as server:
        with trio.fail_after(10):
            async with server.http() as client:
                response = await client.post("/api/auth/register",
                                             json={"username": "mallory", "password": PASSWORD})
    assert response.status_code == 403


def test_jwt_auth_beside_open_registration_is_refused() -> None:
    with pytest.raises(SettingsError, match="TRIONET_OPEN_REGISTRATION"):
        Settings(jwt_secret=SECRET, open_registration=True)
