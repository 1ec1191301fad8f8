"""Blocking: the endpoints, and what a block refuses and hides, over real sockets (on the
store the run uses: ``--store``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
import trio_websocket
from api_helpers import Api, api, error_of, make_group, next_of_type, quick_user, send

from trionet.testing import TestServer, TestUser


@pytest.fixture
async def http(server: TestServer) -> AsyncIterator[Api]:
    async with api(server) as client:
        yield client


async def answer(ws: trio_websocket.WebSocketConnection, frame: dict[str, Any],
                 cid: str) -> dict[str, Any]:
    """Send ``frame`` under ``cid``; its ack or error (presence and messages may come first)."""
    await send(ws, {**frame, "client_id": cid})
    while True:
        got = await TestServer.receive_json(ws, ignore=("presence", "private", "group"))
        if got.get("client_id") == cid:
            return got


async def presence_reaches(ws: trio_websocket.WebSocketConnection, user: TestUser,
                           online: bool) -> None:
    """Wait (at most 5 s) for a presence frame on ``ws`` saying ``user`` is ``online``.

    Earlier presence frames about ``user`` are passed over: a user's own "online" may reach a
    peer who connected just after them (the presence pump looks the peers up once the change is
    queued), which is true, only late.
    """
    with trio.fail_after(5):
        while True:
            frame = await TestServer.receive_json(ws, ignore=())
            if frame["type"] == "presence" and frame["user_id"] == user.id:
                if frame["online"] is online:
                    return


async def online(http: Api, viewer: TestUser, *users: TestUser) -> dict[str, bool]:
    r = await http.get(viewer, "/api/users/online", ids=",".join(str(u.id) for u in users))
    assert r.status_code == 200, r.text
    return dict(r.json()["online"])


async def test_block_list_and_unblock(server: TestServer, http: Api) -> None:
    alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
    with trio.fail_after(10):
        r = await http.post(alice, f"/api/users/{bob.id}/block")
        assert r.status_code == 201 and r.json() == {"user_id": bob.id, "blocked": True}
        assert (await http.post(alice, f"/api/users/{bob.id}/block")).status_code == 200
        assert (await http.get(alice, "/api/blocks")).json() == {"blocked": [bob.id]}
        assert (await http.get(bob, "/api/blocks")).json() == {"blocked": []}
        # only the blocker lifts it
        assert (await http.delete(bob, f"/api/users/{alice.id}/block")).status_code == 204
        assert (await http.get(alice, "/api/blocks")).json() == {"blocked": [bob.id]}
        assert (await http.delete(alice, f"/api/users/{bob.id}/block")).status_code == 204
        assert (await http.get(alice, "/api/blocks")).json() == {"blocked": []}
        r = await http.post(alice, f"/api/users/{alice.id}/block")
        assert r.status_code == 400 and error_of(r)["code"] == "bad_request"
        r = await http.post(alice, "/api/users/987654/block")
        assert r.status_code == 404
        assert (await http.post(None, f"/api/users/{bob.id}/block")).status_code == 401
        assert (await http.get(None, "/api/blocks")).status_code == 401


async def test_a_block_refuses_private_messages_typing_and_invites_both_ways(
    server: TestServer, http: Api
) -> None:
    alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
    carol = await quick_user(server, "carol")
    with trio.fail_after(15):
        gid = await make_group(http, alice, carol, name="Alice's")
        bgid = await make_group(http, bob, carol, name="Bob's")
        shared = await make_group(http, carol, alice, bob, name="Shared")
        async with server.connect(alice) as wa, server.connect(bob) as wb:
            before = await answer(wb, {"type": "private", "to": alice.id, "content": "hi"}, "0")
            assert before["type"] == "ack"
            await next_of_type(wa, "private")
            assert (await http.post(alice, f"/api/users/{bob.id}/block")).status_code == 201
            for ws, to in ((wb, alice), (wa, bob)):
                for frame in ({"type": "private", "to": to.id, "content": "x"},
                              {"type": "typing", "to": to.id}):
                    err = await answer(ws, frame, f"{frame['type']}-{to.id}")
                    assert (err["type"], err["code"]) == ("error", "blocked"), frame
            for inviter, group, invitee in ((bob, bgid, alice), (alice, gid, bob)):
                r = await http.post(inviter, "/api/groups/invite",
                                    json={"group_id": group, "user_id": invitee.id})
                assert r.status_code == 403 and error_of(r)["code"] == "blocked"
            # a group they share works for both
            ack = await answer(wb, {"type": "group", "group_id": shared, "content": "g"}, "g")
            assert ack["type"] == "ack"
            assert (await next_of_type(wa, "group"))["content"] == "g"
            # nothing bob sent before is removed
            r = await http.get(alice, "/api/messages/private", user=bob.id)
            assert [m["content"] for m in r.json()["messages"]] == ["hi"]
            assert (await http.delete(alice, f"/api/users/{bob.id}/block")).status_code == 204
            ack = await answer(wb, {"type": "private", "to": alice.id, "content": "again"}, "1")
            assert ack["type"] == "ack"
            assert (await next_of_type(wa, "private"))["content"] == "again"


async def test_a_block_hides_presence_both_ways(server: TestServer, http: Api) -> None:
    alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
    carol = await quick_user(server, "carol")
    with trio.fail_after(15):
        await make_group(http, carol, alice, bob, name="Shared")
        async with server.connect(alice) as wa:
            async with server.connect(bob) as wb:
                await presence_reaches(wa, bob, True)
                assert await online(http, alice, bob, carol) == {str(bob.id): True,
                                                                  str(carol.id): False}
                assert (await http.post(bob, f"/api/users/{alice.id}/block")).status_code == 201
                # each is told the other went offline, and sees them so
                await presence_reaches(wa, bob, False)
                await presence_reaches(wb, alice, False)
                assert await online(http, alice, bob) == {str(bob.id): False}
                assert await online(http, bob, alice) == {str(alice.id): False}
                async with server.connect(carol) as wc:
                    await presence_reaches(wa, carol, True)  # others: as before
                    await presence_reaches(wb, carol, True)
                    await wc.aclose()
            # bob's last tab closes: alice is not told
            with trio.move_on_after(0.5):
                while True:
                    frame = await TestServer.receive_json(wa, ignore=())
                    assert not (frame["type"] == "presence" and frame["user_id"] == bob.id), frame
            async with server.connect(bob):
                with trio.move_on_after(0.5):
                    while True:
                        frame = await TestServer.receive_json(wa, ignore=())
                        assert not (frame["type"] == "presence"
                                    and frame["user_id"] == bob.id), frame
                assert (await http.delete(bob, f"/api/users/{alice.id}/block")).status_code == 204
                await presence_reaches(wa, bob, True)
                assert await online(http, alice, bob) == {str(bob.id): True}


async def test_read_receipts_do_not_cross_a_block(server: TestServer, http: Api) -> None:
    alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
    with trio.fail_after(15):
        async with server.connect(alice) as wa, server.connect(bob) as wb, \
                server.connect(bob) as wb2:
            mid = (await answer(wa, {"type": "private", "to": bob.id, "content": "hi"}, "m"))["id"]
            await next_of_type(wb2, "private")
            assert (await http.post(bob, f"/api/users/{alice.id}/block")).status_code == 201
            ack = await answer(wb, {"type": "read", "to": alice.id, "up_to": mid}, "r")
            assert ack["type"] == "ack"
            assert (await next_of_type(wb2, "read"))["up_to"] == mid  # his own other tab
            with trio.move_on_after(0.3):
                frame = await TestServer.receive_json(wa, ignore=("presence",))
                raise AssertionError(f"alice heard of bob's read: {frame}")
