"""Presence: the bulk online endpoint, and presence events over real WebSockets."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
import trio_websocket
from api_helpers import Api, api, error_of, make_group, quick_user, send

from trionet.settings import Settings
from trionet.testing import TestServer, TestUser, running_server

WS = trio_websocket.WebSocketConnection


async def recv(ws: WS) -> dict[str, Any]:
    """The next frame, presence frames included."""
    with trio.fail_after(5):
        frame: dict[str, Any] = json.loads(await ws.get_message())
    return frame


@pytest.fixture
async def http(server: TestServer) -> AsyncIterator[Api]:
    async with api(server) as client:
        yield client


async def settle(ws: WS) -> None:
    """Return once the server runs this connection (it answered a ping)."""
    await send(ws, {"type": "ping", "client_id": "settle"})
    while (await recv(ws))["type"] != "pong":
        pass


async def first_frame_of(sockets: dict[str, WS]) -> tuple[str, dict[str, Any]]:
    """(name, frame) of whichever socket receives a frame first."""
    found: list[tuple[str, dict[str, Any]]] = []
    async with trio.open_nursery() as nursery:
        async def watch(name: str, ws: WS) -> None:
            found.append((name, await recv(ws)))
            nursery.cancel_scope.cancel()

        for name, ws in sockets.items():
            nursery.start_soon(watch, name, ws)
    return found[0]


async def assert_next_is_marker(server: TestServer, sender: TestUser, ws: WS,
                                user: TestUser) -> None:
    """``user`` got nothing before a private message sent now (so no presence frame)."""
    async with server.connect(sender) as wx:
        await send(wx, {"type": "private", "to": user.id, "content": "marker"})
    frame = await recv(ws)
    assert frame["type"] == "private" and frame["content"] == "marker", frame


def presence(frame: dict[str, Any], user: TestUser, online: bool) -> None:
    assert set(frame) == {"type", "user_id", "online", "timestamp"}, frame
    assert frame["type"] == "presence" and frame["user_id"] == user.id
    assert frame["online"] is online and frame["timestamp"].endswith("Z")


async def test_bulk_online_status(server: TestServer, http: Api) -> None:
    alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
    with trio.fail_after(10):
        r = await http.get(alice, "/api/users/online", ids=f"{alice.id},{bob.id},999")
        assert r.json() == {"online": {str(alice.id): False, str(bob.id): False,
                                       "999": False}}
        async with server.connect(bob) as wb, server.connect(bob) as wb2:
            await settle(wb)
            await settle(wb2)
            r = await http.get(alice, "/api/users/online", ids=f"{alice.id}, {bob.id}")
            assert r.status_code == 200
            assert r.json() == {"online": {str(alice.id): False, str(bob.id): True}}
            await wb2.aclose()  # one tab closed: still online
            await settle(wb)
            r = await http.get(alice, "/api/users/online", ids=str(bob.id))
            assert r.json() == {"online": {str(bob.id): True}}
        # the last tab closed: offline once the server has seen the close
        with trio.fail_after(5):
            while (await http.get(alice, "/api/users/online", ids=str(bob.id))
                   ).json()["online"][str(bob.id)]:
                await trio.sleep(0.01)
        ok = ",".join(str(i) for i in range(1, 501))
        assert (await http.get(alice, "/api/users/online", ids=ok)).status_code == 200
        for ids in ("", "x", "1,x", "0", "-1", str(2**53), ok + ",501"):
            r = await http.get(alice, "/api/users/online", ids=ids)
            assert r.status_code == 400 and "'ids'" in error_of(r)["message"], ids
        assert (await http.get(alice, "/api/users/online")).status_code == 400
        assert (await http.get(None, "/api/users/online", ids="1")).status_code == 401


async def test_group_member_hears_first_open_and_last_close_only(
    server: TestServer, http: Api
) -> None:
    alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
    with trio.fail_after(10):
        await make_group(http, alice, bob)
        async with server.connect(bob) as wb:
            await settle(wb)
            async with server.connect(alice) as wa1:
                presence(await recv(wb), alice, True)
                async with server.connect(alice) as wa2:  # a second tab: nothing
                    await settle(wa2)
                await settle(wa1)
            # had the second tab sent anything, it would come before this
            presence(await recv(wb), alice, False)


async def test_private_conversation_partner_hears_presence(server: TestServer) -> None:
    alice, dave = await quick_user(server, "alice"), await quick_user(server, "dave")
    with trio.fail_after(10):
        async with server.connect(dave) as wd:
            await settle(wd)
            async with server.connect(alice) as wa:
                await send(wa, {"type": "private", "to": dave.id, "content": "hi",
                                "client_id": "c1"})
                assert (await recv(wd))["content"] == "hi"
                assert (await recv(wa))["type"] == "ack"
            # alice's "online" may arrive late: her presence look-up can already see the
            # conversation her first message started
            frame = await recv(wd)
            if frame["online"]:
                presence(frame, alice, True)
                frame = await recv(wd)
            presence(frame, alice, False)
            async with server.connect(alice):
                presence(await recv(wd), alice, True)


async def test_unrelated_and_invited_users_hear_nothing(server: TestServer, http: Api) -> None:
    alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
    carol, erin = await quick_user(server, "carol"), await quick_user(server, "erin")
    with trio.fail_after(10):
        group_id = await make_group(http, bob, alice)
        r = await http.post(bob, "/api/groups/invite", json={"group_id": group_id,
                                                            "user_id": carol.id})
        assert r.status_code == 201  # carol is invited, not a member
        async with server.connect(bob) as wb, server.connect(carol) as wc, \
                server.connect(erin) as we:
            for ws in (wb, wc, we):
                await settle(ws)
            async with server.connect(alice):
                presence(await recv(wb), alice, True)  # the one dispatch has happened
            await assert_next_is_marker(server, bob, wc, carol)
            await assert_next_is_marker(server, bob, we, erin)


async def test_recipients_are_capped_by_presence_limit() -> None:
    async with running_server(Settings(rate_limit=0, presence_limit=1)) as server, \
            api(server) as http:
        alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
        carol = await quick_user(server, "carol")
        with trio.fail_after(10):
            await make_group(http, alice, bob, carol)
            async with server.connect(bob) as wb:
                await settle(wb)
                async with server.connect(carol) as wc:
                    presence(await recv(wb), carol, True)  # bob is carol's only online peer
                    await settle(wc)
                    async with server.connect(alice):
                        name, frame = await first_frame_of({"bob": wb, "carol": wc})
                        presence(frame, alice, True)
                        other, other_ws = (carol, wc) if name == "bob" else (bob, wb)
                        await assert_next_is_marker(server, alice, other_ws, other)


async def test_presence_limit_zero_turns_presence_off() -> None:
    async with running_server(Settings(rate_limit=0, presence_limit=0)) as server, \
            api(server) as http:
        alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
        with trio.fail_after(10):
            await make_group(http, alice, bob)
            async with server.connect(bob) as wb:
                await settle(wb)
                async with server.connect(alice) as wa:
                    await settle(wa)
                await assert_next_is_marker(server, alice, wb, bob)
