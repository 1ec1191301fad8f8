"""Helpers shared by the HTTP API tests (tests/api/, test_presence.py)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import trio
import trio_websocket

from trionet.auth import hash_token, new_token
from trionet.store import sqlite_path, store_kind
from trionet.testing import TestServer, TestUser

__all__ = ["Api", "api", "error_of", "make_group", "next_of_type", "quick_user", "recv", "send",
           "stored_rows"]

send = TestServer.send_json


async def recv(ws: trio_websocket.WebSocketConnection, seconds: float = 5) -> dict[str, Any]:
    """The next frame that is not a presence event, decoded; fails after ``seconds``.

    (Presence events arrive whenever a user sharing a group or a conversation connects.)
    """
    with trio.fail_after(seconds):
        while True:
            frame: dict[str, Any] = json.loads(await ws.get_message())
            if frame.get("type") != "presence":
                return frame


async def quick_user(server: TestServer, username: str, *, admin: bool = False) -> TestUser:
    """``server.create_user`` without the argon2 hash (~0.15 s each): for users that never
    log in with a password, only use their session."""
    svc = server.services
    user = await svc.store.create_user(username, None, is_admin=admin)
    token = new_token()
    await svc.store.create_session(hash_token(token), user.id,
                                   time.time() + server.settings.session_ttl)
    return TestUser(id=user.id, username=username, token=token, is_admin=admin)


class Api:
    """One HTTP client for a whole test, calling as any user (each client costs ~30 ms)."""

    def __init__(self, server: TestServer, client: httpx.AsyncClient) -> None:
        self.server = server
        self.client = client

    async def request(self, user: TestUser | None, method: str, path: str,
                      **kw: Any) -> httpx.Response:
        headers = {**self.server.headers_for(user), **kw.pop("headers", {})}
        return await self.client.request(method, path, headers=headers, **kw)

    async def get(self, user: TestUser | None, path: str, /, **params: Any) -> httpx.Response:
        return await self.request(user, "GET", path, params=params)

    async def post(self, user: TestUser | None, path: str, **kw: Any) -> httpx.Response:
        return await self.request(user, "POST", path, **kw)

    async def patch(self, user: TestUser | None, path: str, **kw: Any) -> httpx.Response:
        return await self.request(user, "PATCH", path, **kw)

    async def put(self, user: TestUser | None, path: str, **kw: Any) -> httpx.Response:
        return await self.request(user, "PUT", path, **kw)

    async def delete(self, user: TestUser | None, path: str, **kw: Any) -> httpx.Response:
        return await self.request(user, "DELETE", path, **kw)


@asynccontextmanager
async def api(server: TestServer) -> AsyncIterator[Api]:
    """An :class:`Api` for ``server``."""
    async with server.http() as client:
        yield Api(server, client)


async def make_group(http: Api, owner: TestUser, *members: TestUser,
                     name: str = "Developers") -> int:
    """A group owned by ``owner`` whose ``members`` were invited and accepted."""
    r = await http.post(owner, "/api/groups", json={"name": name})
    assert r.status_code == 201, r.text
    group_id: int = r.json()["id"]
    for m in members:
        r = await http.post(owner, "/api/groups/invite",
                            json={"group_id": group_id, "user_id": m.id})
        assert r.status_code == 201, r.text
        r = await http.post(m, f"/api/groups/{group_id}/accept")
        assert r.status_code == 200, r.text
    return group_id


async def next_of_type(ws: trio_websocket.WebSocketConnection, kind: str,
                       skip: tuple[str, ...] = ("ack", "presence", "notification"),
                       ) -> dict[str, Any]:
    """The next frame of type ``kind``; frames of the ``skip`` types may come first."""
    while True:
        frame = await recv(ws)
        if frame["type"] == kind:
            return frame
        assert frame["type"] in skip, frame


def error_of(response: Any) -> dict[str, str]:
    """The ``error`` object of an error response (asserting the one error shape)."""
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    error: dict[str, str] = body["error"]
    return error


async def stored_rows(server: TestServer, query: str) -> list[tuple[Any, ...]]:
    """The rows of one SQL query on the server's own database, SQLite or PostgreSQL (the
    tables and columns are the same on both), read the way an operator would."""
    url = server.settings.database

    def run() -> list[tuple[Any, ...]]:
        if store_kind(url) == "postgresql":
            import psycopg

            with psycopg.connect(url, connect_timeout=5) as pg:
                return [tuple(r) for r in pg.execute(query).fetchall()]  # type: ignore[arg-type]
        lite = sqlite3.connect(sqlite_path(url))
        try:
            return [tuple(r) for r in lite.execute(query).fetchall()]
        finally:
            lite.close()

    return await trio.to_thread.run_sync(run)
