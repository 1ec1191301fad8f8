"""History and conversations over HTTP: pages, paging edges, authorization, frame fields."""

from __future__ import annotations

import importlib.util
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
import trio
import trio_websocket
from api_helpers import (
    Api,
    api,
    error_of,
    make_group,
    quick_user,
    recv,
    send,
    stored_rows,
)

from trionet.testing import TestServer, TestUser


@pytest.fixture
async def http(server: TestServer) -> AsyncIterator[Api]:
    async with api(server) as client:
        yield client


async def send_acked(ws: trio_websocket.WebSocketConnection, frame: dict[str, Any]) -> int:
    """Send a frame with a client_id and return the message id from its ack."""
    cid = f"c{id(frame)}-{frame['content']}"
    await send(ws, {**frame, "client_id": cid})
    while True:
        got = await recv(ws)
        if got["type"] == "ack" and got["client_id"] == cid:
            assert got["persisted"] is True
            message_id: int = got["id"]
            return message_id
        assert got["type"] in ("private", "group", "presence"), got


async def say(server: TestServer, sender: TestUser, to: TestUser, *contents: str) -> list[int]:
    async with server.connect(sender) as ws:
        return [await send_acked(ws, {"type": "private", "to": to.id, "content": c})
                for c in contents]




async def test_private_history_items_equal_the_live_frames(server: TestServer, http: Api) -> None:
    alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
    with trio.fail_after(10):
        async with server.connect(bob) as wb, server.connect(alice) as wa:
            await send(wa, {"type": "private", "to": bob.id, "content": "hi bob"})
            first = await recv(wb)
            await send(wb, {"type": "private", "to": alice.id, "content": "hi alice"})
            second = await recv(wa)
        r = await http.get(alice, "/api/messages/private", user=bob.id)
        assert r.status_code == 200
        assert r.json() == {"messages": [second, first], "has_more": False}  # newest first
        # the other side sees the same pair
        r = await http.get(bob, "/api/messages/private", user=alice.id)
        assert r.json()["messages"] == [second, first]


async def test_private_history_paging_by_offset_and_before_id(
    server: TestServer, http: Api
) -> None:
    alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
    with trio.fail_after(15):
        ids = await say(server, alice, bob, "m1", "m2", "m3", "m4", "m5")
        newest_first = ids[::-1]

        async def page(**params: Any) -> tuple[list[int], bool]:
            r = await http.get(alice, "/api/messages/private", user=bob.id, **params)
            assert r.status_code == 200, r.text
            body = r.json()
            return [m["id"] for m in body["messages"]], body["has_more"]

        assert await page() == (newest_first, False)
        assert await page(limit=2) == (newest_first[:2], True)
        assert await page(limit=2, offset=2) == (newest_first[2:4], True)
        assert await page(limit=2, offset=4) == (newest_first[4:], False)
        assert await page(limit=5) == (newest_first, False)
        assert await page(offset=5) == ([], False)  # exactly past the end
        assert await page(offset=500) == ([], False)
        # keyset paging: everything older than an id, unaffected by newer messages
        assert await page(before_id=newest_first[1], limit=2) == (newest_first[2:4], True)
        await say(server, bob, alice, "newer")
        assert await page(before_id=newest_first[1], limit=2) == (newest_first[2:4], True)
        assert await page(before_id=newest_first[-1]) == ([], False)
        assert await page(before_id=newest_first[3], offset=1) == (newest_first[5:], False)
        assert await page(limit=1, offset=1) == (newest_first[:1], True)


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"limit": -1}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": "x"}, "offset"),
        ({"offset": 10**12}, "offset"),
        ({"before_id": 0}, "before_id"),
        ({"before_id": "abc"}, "before_id"),
        ({"before_id": 2**63}, "before_id"),
    ],
)
async def test_bad_paging_parameters_are_400_naming_them(
    server: TestServer, http: Api, params: dict[str, Any], named: str
) -> None:
    alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
    with trio.fail_after(10):
        for path, extra in (("/api/messages/private", {"user": bob.id}),
                            ("/api/conversations", {}), ("/api/notifications", {})):
            r = await http.get(alice, path, **extra, **params)
            assert r.status_code == 400, (path, r.text)
            error = error_of(r)
            assert error["code"] == "bad_request" and f"'{named}'" in error["message"]


async def test_limit_bounds_are_accepted(server: TestServer, http: Api) -> None:
    alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
    with trio.fail_after(10):
        for limit in (1, 200):
            r = await http.get(alice, "/api/messages/private", user=bob.id, limit=limit)
            assert r.status_code == 200 and r.json() == {"messages": [], "has_more": False}


async def test_private_history_needs_a_valid_existing_peer(server: TestServer, http: Api) -> None:
    alice = await quick_user(server, "alice")
    with trio.fail_after(10):
        for params in ({}, {"user": ""}, {"user": "bob"}, {"user": 0}, {"user": 2**53}):
            r = await http.get(alice, "/api/messages/private", **params)
            assert r.status_code == 400 and "'user'" in r.json()["error"]["message"], params
        r = await http.get(alice, "/api/messages/private", user=999_999)
        assert r.status_code == 404
        r = await http.get(None, "/api/messages/private", user=alice.id)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"


async def test_nobody_reads_another_pairs_private_history(server: TestServer, http: Api) -> None:
    alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
    mallory = await quick_user(server, "mallory")
    with trio.fail_after(10):
        await say(server, alice, bob, "secret")
        # mallory can only ever ask for her own conversation with someone
        for peer in (alice, bob):
            r = await http.get(mallory, "/api/messages/private", user=peer.id)
            assert r.json() == {"messages": [], "has_more": False}
        r = await http.get(mallory, "/api/conversations")
        assert r.json() == {"conversations": [], "has_more": False}


async def test_group_history_for_accepted_members_only(server: TestServer, http: Api) -> None:
    alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
    carol, dave = await quick_user(server, "carol"), await quick_user(server, "dave")
    with trio.fail_after(15):
        group_id = await make_group(http, alice, bob)
        async with server.http(alice) as client:  # carol is invited, not accepted
            await client.post("/api/groups/invite", json={"group_id": group_id,
                                                          "user_id": carol.id})
        async with server.connect(bob) as wb, server.connect(alice) as wa:
            await send(wa, {"type": "group", "group_id": group_id, "content": "one"})
            one = await recv(wb)
            await send(wa, {"type": "group", "group_id": str(group_id), "content": "two"})
            two = await recv(wb)
        r = await http.get(bob, "/api/messages/group", group=group_id)
        assert r.status_code == 200
        assert r.json() == {"messages": [two, one], "has_more": False}
        assert set(one) == {"type", "id", "from", "group_id", "content", "timestamp"}
        r = await http.get(bob, "/api/messages/group", group=group_id, limit=1)
        assert r.json() == {"messages": [two], "has_more": True}
        r = await http.get(bob, "/api/messages/group", group=group_id, before_id=two["id"])
        assert r.json() == {"messages": [one], "has_more": False}
        r = await http.get(bob, "/api/messages/group", group=group_id, offset=2)
        assert r.json() == {"messages": [], "has_more": False}
        for outsider in (carol, dave):
            r = await http.get(outsider, "/api/messages/group", group=group_id)
            assert r.status_code == 403 and r.json()["error"]["code"] == "not_member"
        r = await http.get(bob, "/api/messages/group", group=999_999)
        assert r.status_code == 404
        for params in ({}, {"group": "x"}, {"group": 0}, {"group": group_id, "limit": 0}):
            r = await http.get(bob, "/api/messages/group", **params)
            assert r.status_code == 400, params
        assert (await http.get(None, "/api/messages/group", group=group_id)
                ).status_code == 401


async def test_conversations_most_recent_first_with_the_last_message(
    server: TestServer, http: Api
) -> None:
    alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
    carol, dave = await quick_user(server, "carol"), await quick_user(server, "dave")
    with trio.fail_after(15):
        await say(server, alice, bob, "to bob 1", "to bob 2")
        await say(server, carol, alice, "from carol")
        (last_to_dave,) = await say(server, alice, dave, "to dave")
        await say(server, bob, alice, "bob again")
        r = await http.get(alice, "/api/conversations")
        assert r.status_code == 200
        body = r.json()
        assert body["has_more"] is False
        assert [(c["user"]["id"], c["user"]["username"], c["last_message"]["content"])
                for c in body["conversations"]] == [
            (bob.id, "bob", "bob again"), (dave.id, "dave", "to dave"),
            (carol.id, "carol", "from carol"),
        ]
        last = body["conversations"][1]["last_message"]
        assert last["id"] == last_to_dave and last["type"] == "private"
        assert last["from"] == alice.id and last["to"] == dave.id
        # paged like history
        r = await http.get(alice, "/api/conversations", limit=1, offset=1)
        assert [c["user"]["id"] for c in r.json()["conversations"]] == [dave.id]
        assert r.json()["has_more"] is True
        r = await http.get(alice, "/api/conversations", before_id=last_to_dave)
        assert [c["user"]["id"] for c in r.json()["conversations"]] == [carol.id]
        r = await http.get(alice, "/api/conversations", offset=3)
        assert r.json() == {"conversations": [], "has_more": False}
        # each side has its own list
        r = await http.get(dave, "/api/conversations")
        assert [c["user"]["id"] for c in r.json()["conversations"]] == [alice.id]
        assert (await http.get(None, "/api/conversations")).status_code == 401


async def test_conversations_table_follows_every_private_message(
    server: TestServer, http: Api
) -> None:
    alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
    with trio.fail_after(10):
        (first,) = await say(server, alice, bob, "hello")
        (second,) = await say(server, bob, alice, "hi")
        rows = await stored_rows(server, "SELECT user_id, peer_id, last_message_id"
                                         " FROM conversations ORDER BY user_id")
        assert first < second
        assert rows == [(alice.id, bob.id, second), (bob.id, alice.id, second)]


def _load_migration(name: str) -> Any:
    path = Path(__file__).resolve().parents[2] / "migrations" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"test_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_m0002_backfills_conversations_from_existing_messages(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
    db = sqlite_utils.Database(conn)
    _load_migration("m0001_initial").migrate(db)
    conn.executemany(
        "INSERT INTO messages (id, kind, sender_id, recipient_id, peer_lo, peer_hi, content,"
        " created_at) VALUES (?, 'private', ?, ?, ?, ?, 'x', 't')",
        [(10, 1, 2, 1, 2), (12, 2, 1, 1, 2), (11, 3, 1, 1, 3), (13, 4, 4, 4, 4)],
    )
    conn.execute("INSERT INTO users (id, username, created_at) VALUES (1, 'a', 't')")
    conn.execute("INSERT INTO groups (id, name, owner_id, created_at) VALUES (1, 'g', 1, 't')")
    conn.execute("INSERT INTO group_members (group_id, user_id, status, created_at)"
                 " VALUES (1, 1, 'accepted', 'joined')")
    _load_migration("m0002_groups_conversations").migrate(db)
    assert conn.execute(
        "SELECT user_id, peer_id, last_message_id FROM conversations ORDER BY 1, 2"
    ).fetchall() == [(1, 2, 12), (1, 3, 11), (2, 1, 12), (3, 1, 11), (4, 4, 13)]
    assert conn.execute("SELECT accepted_at FROM group_members").fetchall() == [("joined",)]
