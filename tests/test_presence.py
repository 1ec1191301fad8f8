"""Presence: the bulk online endpoint, and presence events over real WebSockets."""

from __future__ import annotations

import importlib.util
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sqlite_utils
import trio
import trio_websocket
from api_helpers import Api, api, error_of, make_group, next_of_type, quick_user, send

from trionet.settings import Settings
from trionet.store.sqlite.conversations import related_users
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


def _load_migration(name: str) -> ModuleType:
    path = Path(__file__).resolve().parent.parent / "migrations" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"test_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    """Once both sides of a private conversation have written, each hears the other."""
    alice, dave = await quick_user(server, "alice"), await quick_user(server, "dave")
    with trio.fail_after(10):
        async with server.connect(dave) as wd:
            await settle(wd)
            async with server.connect(alice) as wa:
                await send(wa, {"type": "private", "to": dave.id, "content": "hi",
                                "client_id": "c1"})
                assert (await recv(wd))["content"] == "hi"
                await send(wd, {"type": "private", "to": alice.id, "content": "hello",
                                "client_id": "c2"})
                assert (await next_of_type(wa, "private"))["content"] == "hello"
                assert (await recv(wd))["type"] == "ack"
            # alice's "online" may arrive late: her presence look-up can already see the
            # conversation both of them have written to by then
            frame = await recv(wd)
            if frame["online"]:
                presence(frame, alice, True)
                frame = await recv(wd)
            presence(frame, alice, False)
            async with server.connect(alice):
                presence(await recv(wd), alice, True)


async def test_stranger_who_wrote_once_hears_nothing_until_answered(
    server: TestServer, http: Api
) -> None:
    victim, friend = await quick_user(server, "victim"), await quick_user(server, "friend")
    stranger, carol = await quick_user(server, "stranger"), await quick_user(server, "carol")
    with trio.fail_after(15):
        await make_group(http, friend, victim)
        async with server.connect(friend) as wf, server.connect(stranger) as ws:
            await settle(wf)
            await settle(ws)
            # one unsolicited message, stored while the victim is offline
            await send(ws, {"type": "private", "to": victim.id, "content": "visit evil.example",
                            "client_id": "s1"})
            assert (await recv(ws))["type"] == "ack"
            async with server.connect(victim) as wv:
                # the friend's frame shows the one dispatch of this change has happened
                presence(await recv(wf), victim, True)
                await assert_next_is_marker(server, carol, ws, stranger)
            presence(await recv(wf), victim, False)
            await assert_next_is_marker(server, carol, ws, stranger)
            # the victim answers: now both have written, and the stranger is a relation
            async with server.connect(victim) as wv:
                presence(await recv(wf), victim, True)
                await send(wv, {"type": "private", "to": stranger.id, "content": "who?",
                                "client_id": "v1"})
                assert (await recv(ws))["content"] == "who?"
                assert (await next_of_type(wv, "ack"))["client_id"] == "v1"
            presence(await recv(wf), victim, False)
            presence(await recv(ws), victim, False)
            async with server.connect(victim):
                presence(await recv(ws), victim, True)
                presence(await recv(wf), victim, True)


async def test_m0004_backfills_who_wrote_and_the_trigger_keeps_it(tmp_path: Path) -> None:
    """``conversations.wrote`` from existing messages, then from new ones; related_users
    counts a conversation only when both sides wrote."""

    def check() -> None:
        conn = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
        db = sqlite_utils.Database(conn)
        for name in ("m0001_initial", "m0002_groups_conversations", "m0003_message_subtype"):
            _load_migration(name).migrate(db)
        insert = ("INSERT INTO messages (id, kind, sender_id, recipient_id, peer_lo, peer_hi,"
                  " content, created_at) VALUES (?, 'private', ?, ?, ?, ?, 'x', 't')")
        # 1 and 2 wrote to each other; 3 wrote to 1 only; 4 wrote to themself
        conn.executemany(insert, [(10, 1, 2, 1, 2), (12, 2, 1, 1, 2), (11, 3, 1, 1, 3),
                                  (13, 4, 4, 4, 4)])
        _load_migration("m0004_conversation_wrote").migrate(db)
        rows = "SELECT user_id, peer_id, last_message_id, wrote FROM conversations ORDER BY 1, 2"
        assert conn.execute(rows).fetchall() == [
            (1, 2, 12, 1), (1, 3, 11, 0), (2, 1, 12, 1), (3, 1, 11, 1), (4, 4, 13, 1)]

        def related(uid: int) -> list[int]:
            return sorted(related_users(conn, uid, wanted=lambda _: True, limit=10))

        assert related(1) == [2] and related(2) == [1] and related(3) == []
        assert related(4) == []  # writing to oneself relates one to nobody
        # 1 answers 3 with an older id (a retried batch): wrote is set, the latest id kept
        conn.execute(insert, (9, 1, 3, 1, 3))
        conn.execute(insert, (14, 5, 1, 1, 5))
        assert conn.execute(rows).fetchall() == [
            (1, 2, 12, 1), (1, 3, 11, 1), (1, 5, 14, 0), (2, 1, 12, 1), (3, 1, 11, 1),
            (4, 4, 13, 1), (5, 1, 14, 1)]
        assert related(1) == [2, 3] and related(3) == [1] and related(5) == []
        conn.close()

    with trio.fail_after(10):
        await trio.to_thread.run_sync(check, abandon_on_cancel=True)


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
