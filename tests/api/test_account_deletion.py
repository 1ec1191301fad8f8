"""Deleting an account through the server API (an erasure request), over real sockets (on
the store the run uses: ``--store``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
import trio_websocket
from api_helpers import Api, api, make_group, next_of_type, quick_user, recv, send, stored_rows

from trionet.settings import Settings
from trionet.testing import TestServer, running_server

KEY = "test-server-api-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
async def keyed() -> AsyncIterator[TestServer]:
    async with running_server(Settings(api_key=KEY, rate_limit=0)) as srv:
        yield srv


@pytest.fixture
async def http(keyed: TestServer) -> AsyncIterator[Api]:
    async with api(keyed) as client:
        yield client


async def acked(ws: trio_websocket.WebSocketConnection, frame: dict[str, Any],
                cid: str) -> dict[str, Any]:
    await send(ws, {**frame, "client_id": cid})
    while True:
        got = await recv(ws)
        if got.get("client_id") == cid:
            return got


async def closed_with(ws: trio_websocket.WebSocketConnection) -> int | None:
    with trio.fail_after(5):
        try:
            while True:
                await ws.get_message()
        except trio_websocket.ConnectionClosed as exc:
            return exc.reason.code if exc.reason is not None else None


async def test_deleting_an_account_erases_it_and_keeps_the_others_whole(
    keyed: TestServer, http: Api
) -> None:
    alice, bob = await quick_user(keyed, "alice"), await quick_user(keyed, "bob")
    carol = await quick_user(keyed, "carol")
    with trio.fail_after(20):
        owned = await make_group(http, alice, bob, name="Alice's")
        r = await http.post(carol, "/api/groups", json={"name": "Carol's"})
        pending = r.json()["id"]
        r = await http.post(carol, "/api/groups/invite",
                            json={"group_id": pending, "user_id": alice.id})
        assert r.status_code == 201
        assert (await http.post(alice, f"/api/users/{carol.id}/block")).status_code == 201
        await keyed.services.manager.notify(alice.id, "test", "for alice")  # (declining the
        # invite deletes its notification)
        async with keyed.connect(alice) as wa, keyed.connect(alice) as wa2, \
                keyed.connect(bob) as wb:
            secret = await acked(wa, {"type": "private", "to": bob.id, "content": "secret"}, "1")
            said = await acked(wa, {"type": "group", "group_id": owned, "content": "g"}, "2")
            await next_of_type(wb, "private")
            await next_of_type(wb, "group")
            reply = await acked(wb, {"type": "private", "to": alice.id, "content": "reply"}, "3")
            assert (await http.post(bob, "/api/conversations/read",
                                    json={"user": alice.id, "up_to": secret["id"]})
                    ).status_code == 200

            r = await http.delete(None, f"/api/server/users/{alice.id}", headers=AUTH)
            assert r.status_code == 200, r.text
            assert r.json() == {"user_id": alice.id, "deleted": True, "connections_closed": 2,
                                "groups_left": 1, "invites_declined": 1, "messages_erased": 2,
                                "notifications_deleted": 1, "read_markers_deleted": 1,
                                "blocks_deleted": 1, "conversations_deleted": 1}
            assert await closed_with(wa) == 4001
            assert await closed_with(wa2) == 4001
            # bob can no longer write to her; his own messages stay
            err = await acked(wb, {"type": "private", "to": alice.id, "content": "?"}, "4")
            assert err["code"] == "unknown_user"
        r = await http.get(bob, "/api/messages/private", user=alice.id)
        assert r.status_code == 404  # no such user
        rows = await stored_rows(keyed, "SELECT id, content, deleted_at IS NOT NULL"
                                        " FROM messages ORDER BY id")
        assert rows == [(secret["id"], "", True), (said["id"], "", True),
                        (reply["id"], "reply", False)]
        r = await http.get(bob, "/api/messages/group", group=owned)
        assert [m.get("deleted", False) for m in r.json()["messages"]] == [True]
        group = (await http.get(bob, f"/api/groups/{owned}")).json()
        assert group["owner_id"] == bob.id  # ownership passed on
        assert (await http.get(alice, "/api/me")).status_code == 401  # her session is gone
        r = await http.get(bob, "/api/users", ids=str(alice.id))
        assert r.json()["users"] == []
        for table, column in (("sessions", "user_id"), ("notifications", "user_id"),
                              ("read_markers", "user_id"), ("blocks", "blocker_id"),
                              ("conversations", "user_id"), ("group_members", "user_id"),
                              ("users", "id")):
            assert await stored_rows(
                keyed, f"SELECT 1 FROM {table} WHERE {column} = {alice.id}") == [], table
        r = await http.delete(None, f"/api/server/users/{alice.id}", headers=AUTH)
        assert r.status_code == 404
        assert (await http.delete(None, f"/api/server/users/{bob.id}")).status_code == 401
