"""Edit and delete over the WebSocket, live to the message's audience, in HTTP history and on
resume, with real sockets (on the store the run uses: ``--store``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
import trio_websocket
from api_helpers import Api, api, make_group, next_of_type, quick_user, recv, send, stored_rows

from trionet.testing import TestServer, TestUser


@pytest.fixture
async def http(server: TestServer) -> AsyncIterator[Api]:
    async with api(server) as client:
        yield client


async def answer(ws: trio_websocket.WebSocketConnection, frame: dict[str, Any],
                 cid: str) -> dict[str, Any]:
    """Send ``frame`` under ``cid``; its ack or error (other frames may come first)."""
    await send(ws, {**frame, "client_id": cid})
    while True:
        got = await recv(ws)
        if got["type"] in ("ack", "error") and got.get("client_id") == cid:
            return got
        assert got["type"] in ("private", "group", "edited", "deleted", "read"), got


async def quiet(ws: trio_websocket.WebSocketConnection, seconds: float = 0.3) -> None:
    with trio.move_on_after(seconds):
        frame = await recv(ws, seconds + 1)
        raise AssertionError(f"unexpected frame {frame}")


async def history(http: Api, user: TestUser, peer: TestUser) -> list[dict[str, Any]]:
    r = await http.get(user, "/api/messages/private", user=peer.id)
    assert r.status_code == 200, r.text
    messages: list[dict[str, Any]] = r.json()["messages"]
    return messages


async def test_an_edit_reaches_both_sides_and_shows_in_history(
    server: TestServer, http: Api
) -> None:
    alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
    with trio.fail_after(15):
        async with server.connect(alice) as wa, server.connect(alice) as wa2, \
                server.connect(bob) as wb:
            sent = await answer(wa, {"type": "private", "to": bob.id, "content": "helo"}, "m")
            mid = sent["id"]
            await next_of_type(wb, "private")
            await next_of_type(wa2, "private")
            ack = await answer(wa, {"type": "edit", "id": mid, "content": "hello"}, "e1")
            assert ack == {"type": "ack", "client_id": "e1", "id": mid,
                           "timestamp": ack["timestamp"], "persisted": True}
            edited = {"type": "edited", "from": alice.id, "id": mid, "to": bob.id,
                      "content": "hello", "edited_at": ack["timestamp"]}
            assert await next_of_type(wb, "edited") == edited
            assert await next_of_type(wa2, "edited") == edited  # her other tab
            await quiet(wa)  # not the connection that edited
            # a resend (the same content) is acked again and delivered once
            again = await answer(wa, {"type": "edit", "id": mid, "content": "hello"}, "e1")
            assert again["type"] == "ack" and again["timestamp"] == ack["timestamp"]
            await quiet(wb)
        (item,) = await history(http, bob, alice)
        assert item["content"] == "hello" and item["edited_at"] == ack["timestamp"]
        assert item["timestamp"] == sent["timestamp"]  # the original time stays


async def test_only_the_sender_edits_and_refusals_change_nothing(
    server: TestServer, http: Api
) -> None:
    alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
    carol = await quick_user(server, "carol")
    with trio.fail_after(15):
        async with server.connect(alice) as wa, server.connect(bob) as wb, \
                server.connect(carol) as wc:
            mid = (await answer(wa, {"type": "private", "to": bob.id, "content": "x"}, "m"))["id"]
            for ws, frame, code in (
                (wb, {"type": "edit", "id": mid, "content": "bob's words"}, "forbidden"),
                (wc, {"type": "edit", "id": mid, "content": "carol's"}, "not_found"),
                (wa, {"type": "edit", "id": 2**50, "content": "?"}, "not_found"),
                (wa, {"type": "edit", "id": mid, "content": ""}, "invalid_message"),
                (wa, {"type": "edit", "id": mid}, "invalid_message"),
                (wa, {"type": "edit", "id": mid, "content": "y" * 20_000}, "too_large"),
                (wa, {"type": "edit", "id": "1", "content": "y"}, "invalid_message"),
                (wb, {"type": "delete", "id": mid}, "forbidden"),
                (wc, {"type": "delete", "id": mid}, "not_found"),
                (wa, {"type": "delete", "id": 2**50}, "not_found"),
            ):
                err = await answer(ws, frame, f"e-{code}")
                assert (err["type"], err["code"]) == ("error", code), (frame, err)
        (item,) = await history(http, alice, bob)
        assert item["content"] == "x" and "edited_at" not in item


async def test_a_delete_erases_the_content_everywhere_and_is_told_once(
    server: TestServer, http: Api
) -> None:
    alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
    with trio.fail_after(15):
        async with server.connect(alice) as wa, server.connect(bob) as wb:
            keep = await answer(wa, {"type": "private", "to": bob.id, "content": "keep"}, "k")
            gone = await answer(wa, {"type": "private", "to": bob.id, "content": "secret"}, "g")
            for _ in range(2):
                await next_of_type(wb, "private")
            ack = await answer(wa, {"type": "delete", "id": gone["id"]}, "d1")
            assert ack["type"] == "ack" and ack["id"] == gone["id"]
            assert await next_of_type(wb, "deleted") == {
                "type": "deleted", "to": bob.id, "id": gone["id"], "timestamp": ack["timestamp"]}
            # deleted: no more edits, a second delete is acked and told to no one
            err = await answer(wa, {"type": "edit", "id": gone["id"], "content": "back"}, "e")
            assert err["code"] == "not_found"
            assert (await answer(wa, {"type": "delete", "id": gone["id"]}, "d2"))["type"] == "ack"
            await quiet(wb)
            r = await http.get(bob, "/api/conversations")
            (conv,) = r.json()["conversations"]
            assert conv["unread_count"] == 1  # the deleted one is not unread any more
        items = await history(http, bob, alice)
        assert items[0] == {"type": "private", "id": gone["id"], "from": alice.id, "to": bob.id,
                            "deleted": True, "timestamp": gone["timestamp"]}
        assert items[1]["content"] == "keep" and items[1]["id"] == keep["id"]
        # the content is erased from the store, not only hidden
        rows = await stored_rows(server, f"SELECT content FROM messages WHERE id = {gone['id']}")
        assert rows == [("",)]


async def test_group_changes_reach_every_member_but_the_asking_connection(
    server: TestServer, http: Api
) -> None:
    alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
    carol = await quick_user(server, "carol")
    admin = await quick_user(server, "root", admin=True)
    with trio.fail_after(15):
        gid = await make_group(http, alice, bob, carol, name="Team")
        async with server.connect(alice) as wa, server.connect(bob) as wb, \
                server.connect(bob) as wb2, server.connect(carol) as wc, \
                server.connect(admin) as wroot:
            first = await answer(wb, {"type": "group", "group_id": gid, "content": "v1"}, "g1")
            second = await answer(wb, {"type": "group", "group_id": gid, "content": "v2"}, "g2")
            third = await answer(wc, {"type": "group", "group_id": gid, "content": "v3"}, "g3")
            # (answer() skipped what came before its ack: carol has read her two already)
            for ws, n in ((wa, 3), (wb2, 3), (wb, 1)):
                for _ in range(n):
                    await next_of_type(ws, "group")
            ack = await answer(wb, {"type": "edit", "id": first["id"], "content": "v1!"}, "e")
            for ws in (wa, wb2, wc):
                frame = await next_of_type(ws, "edited")
                assert frame == {"type": "edited", "from": bob.id, "id": first["id"],
                                 "group_id": gid, "content": "v1!",
                                 "edited_at": ack["timestamp"]}
            await quiet(wb, 0.1)
            # the group's owner deletes a member's message; an admin anyone's
            ack = await answer(wa, {"type": "delete", "id": second["id"]}, "d1")
            assert ack["type"] == "ack"
            for ws in (wb, wb2, wc):
                assert (await next_of_type(ws, "deleted"))["id"] == second["id"]
            await quiet(wa, 0.1)
            await quiet(wroot, 0.1)  # not a member: not told
            # a member who is neither sender nor owner may not
            err = await answer(wb, {"type": "delete", "id": third["id"]}, "d2")
            assert err["code"] == "forbidden"
            ack = await answer(wroot, {"type": "delete", "id": third["id"]}, "d3")
            assert ack["type"] == "ack"
            for ws in (wa, wb, wb2, wc):
                assert (await next_of_type(ws, "deleted"))["id"] == third["id"]
        r = await http.get(carol, "/api/messages/group", group=gid)
        items = r.json()["messages"]
        assert [m.get("deleted", False) for m in items] == [True, True, False]
        assert items[2]["content"] == "v1!" and items[2]["edited_at"]


async def test_a_resume_brings_the_changes_it_missed(server: TestServer) -> None:
    alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
    with trio.fail_after(15):
        async with server.connect(alice) as wa:
            one = await answer(wa, {"type": "private", "to": bob.id, "content": "one"}, "1")
            two = await answer(wa, {"type": "private", "to": bob.id, "content": "two"}, "2")
            cursor = two["id"]  # bob saw both, then went away
            await answer(wa, {"type": "edit", "id": one["id"], "content": "one, edited"}, "e1")
            await answer(wa, {"type": "edit", "id": two["id"], "content": "two, edited"}, "e2")
            await answer(wa, {"type": "delete", "id": two["id"]}, "d2")
        async with server.connect(bob, query=f"since={cursor}") as wb:
            frames = []
            while (frame := await recv(wb))["type"] != "synced":
                frames.append(frame)
        changes = [f for f in frames if f["type"] in ("edited", "deleted")]
        # each message once, in its newest state, in the order of their last changes
        assert [(f["type"], f["id"]) for f in changes] == [("edited", one["id"]),
                                                           ("deleted", two["id"])]
        assert changes[0]["content"] == "one, edited"
        assert "content" not in changes[1]


async def test_more_changes_than_a_replay_carries_bring_a_sync_gap() -> None:
    from trionet.settings import Settings
    from trionet.testing import running_server

    async with running_server(Settings(rate_limit=0, replay_limit=3)) as server:
        alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
        with trio.fail_after(15):
            async with server.connect(alice) as wa:
                ids = [(await answer(wa, {"type": "private", "to": bob.id, "content": f"m{i}"},
                                     f"m{i}"))["id"] for i in range(5)]
                for i, mid in enumerate(ids):
                    await answer(wa, {"type": "edit", "id": mid, "content": f"e{i}"}, f"e{i}")
            async with server.connect(bob, query=f"since={ids[-1]}") as wb:
                frames = []
                while (frame := await recv(wb))["type"] != "synced":
                    frames.append(frame)
        assert {"type": "sync_gap", "from_id": ids[-1]} in frames
        edited = [f for f in frames if f["type"] == "edited"]
        assert [f["id"] for f in edited] == ids[2:]  # the newest three changes


async def test_a_block_refuses_edits_too(server: TestServer, http: Api) -> None:
    alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
    with trio.fail_after(15):
        async with server.connect(alice) as wa, server.connect(bob) as wb:
            mid = (await answer(wa, {"type": "private", "to": bob.id, "content": "hi"}, "m"))["id"]
            await next_of_type(wb, "private")
            assert (await http.post(bob, f"/api/users/{alice.id}/block")).status_code == 201
            err = await answer(wa, {"type": "edit", "id": mid, "content": "abuse"}, "e")
            assert err["code"] == "blocked"
            await quiet(wb)
