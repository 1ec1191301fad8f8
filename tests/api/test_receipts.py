"""Read markers, unread counts and read receipts: over HTTP and the WebSocket, live and on
resume, with real sockets (on the store the run uses: ``--store``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
import trio_websocket
from api_helpers import Api, api, error_of, make_group, next_of_type, quick_user, recv, send

from trionet.testing import TestServer, TestUser


@pytest.fixture
async def http(server: TestServer) -> AsyncIterator[Api]:
    async with api(server) as client:
        yield client


async def acked(ws: trio_websocket.WebSocketConnection, frame: dict[str, Any],
                cid: str) -> dict[str, Any]:
    """Send ``frame`` under ``cid`` and return its ack (other frames may come first)."""
    await send(ws, {**frame, "client_id": cid})
    while True:
        got = await recv(ws)
        if got["type"] in ("ack", "error") and got.get("client_id") == cid:
            return got
        assert got["type"] in ("private", "group", "read", "notification"), got


async def say(ws: trio_websocket.WebSocketConnection, to: TestUser, *contents: str) -> list[int]:
    ids = []
    for i, content in enumerate(contents):
        ack = await acked(ws, {"type": "private", "to": to.id, "content": content},
                          f"p{to.id}-{i}-{content}")
        assert ack["type"] == "ack", ack
        ids.append(ack["id"])
    return ids


async def conversation_with(http: Api, user: TestUser, peer: TestUser) -> dict[str, Any]:
    r = await http.get(user, "/api/conversations")
    assert r.status_code == 200, r.text
    (item,) = [c for c in r.json()["conversations"] if c["user"]["id"] == peer.id]
    return dict(item)


async def read(http: Api, reader: TestUser | None, **body: Any) -> Any:
    return await http.post(reader, "/api/conversations/read", json=body)


async def no_frame(ws: trio_websocket.WebSocketConnection, seconds: float = 0.3) -> None:
    """Nothing but presence arrives on ``ws`` for ``seconds``."""
    with trio.move_on_after(seconds):
        frame = await recv(ws, seconds + 1)
        raise AssertionError(f"unexpected frame {frame}")


async def test_private_unread_counts_markers_and_the_receipt_over_http(
    server: TestServer, http: Api
) -> None:
    alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
    with trio.fail_after(15):
        async with server.connect(alice) as wa, server.connect(bob) as wb, \
                server.connect(bob) as wb2:
            ids = await say(wa, bob, "one", "two", "three")
            for _ in ids:
                assert (await next_of_type(wb, "private"))["from"] == alice.id
                await next_of_type(wb2, "private")
            mine = await say(wb, alice, "from bob")  # bob's own: never unread for bob
            await next_of_type(wa, "private")
            await next_of_type(wb2, "private")
            item = await conversation_with(http, bob, alice)
            assert item["unread_count"] == 3
            assert item["last_read_id"] is None and item["peer_read_id"] is None
            assert (await conversation_with(http, alice, bob))["unread_count"] == 1

            r = await read(http, bob, user=alice.id, up_to=ids[1])
            assert r.status_code == 200, r.text
            assert r.json() == {"last_read_id": ids[1], "unread_count": 1}
            # the receipt reaches alice, and bob's own connections (an HTTP read has no
            # connection of its own to leave out)
            receipt = await next_of_type(wa, "read")
            assert receipt == {"type": "read", "from": bob.id, "to": alice.id,
                               "up_to": ids[1], "timestamp": receipt["timestamp"]}
            assert await next_of_type(wb, "read") == receipt
            assert await next_of_type(wb2, "read") == receipt

            bob_view = await conversation_with(http, bob, alice)
            assert (bob_view["unread_count"], bob_view["last_read_id"]) == (1, ids[1])
            alice_view = await conversation_with(http, alice, bob)
            assert alice_view["peer_read_id"] == ids[1]
            assert alice_view["last_read_id"] is None and alice_view["unread_count"] == 1

            # markers only move forward: an older message changes nothing and tells no one
            r = await read(http, bob, user=alice.id, up_to=ids[0])
            assert r.json() == {"last_read_id": ids[1], "unread_count": 1}
            # reading one's own message is reading up to it
            r = await read(http, bob, user=alice.id, up_to=mine[0])
            assert r.json() == {"last_read_id": mine[0], "unread_count": 0}
            assert (await next_of_type(wa, "read"))["up_to"] == mine[0]
            await no_frame(wa)


async def test_read_refusals_over_http(server: TestServer, http: Api) -> None:
    alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
    carol = await quick_user(server, "carol")
    with trio.fail_after(15):
        async with server.connect(alice) as wa:
            (mid,) = await say(wa, bob, "for bob")
            gid = await make_group(http, alice, bob, name="Pair")
            group_ack = await acked(wa, {"type": "group", "group_id": gid, "content": "g"}, "g1")
        # a message of another conversation is not in this one
        r = await read(http, carol, user=alice.id, up_to=mid)
        assert r.status_code == 404 and error_of(r)["code"] == "not_found"
        r = await read(http, bob, user=alice.id, up_to=group_ack["id"])
        assert r.status_code == 404 and error_of(r)["code"] == "not_found"
        r = await read(http, bob, user=alice.id, up_to=2**40)
        assert r.status_code == 404
        r = await read(http, bob, user=987654, up_to=mid)
        assert r.status_code == 404 and error_of(r)["code"] == "unknown_user"
        r = await read(http, carol, group=gid, up_to=group_ack["id"])
        assert r.status_code == 403 and error_of(r)["code"] == "not_member"
        r = await read(http, bob, group=gid, up_to=mid)
        assert r.status_code == 404
        for body in ({"up_to": mid}, {"user": alice.id, "group": gid, "up_to": mid},
                     {"user": alice.id}, {"user": alice.id, "up_to": 0},
                     {"user": alice.id, "up_to": mid, "extra": 1}):
            r = await read(http, bob, **body)
            assert r.status_code == 400 and error_of(r)["code"] == "bad_request", body
        r = await read(http, None, user=alice.id, up_to=mid)
        assert r.status_code == 401
        # nothing of it moved a marker
        assert (await conversation_with(http, bob, alice))["last_read_id"] is None


async def test_group_unread_counts_and_reads_reach_the_readers_other_connections_only(
    server: TestServer, http: Api
) -> None:
    alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
    carol = await quick_user(server, "carol")
    with trio.fail_after(15):
        gid = await make_group(http, alice, bob, carol, name="Team")
        async with server.connect(alice) as wa, server.connect(bob) as wb, \
                server.connect(bob) as wb2, server.connect(carol) as wc:
            ids = []
            for i in range(3):
                ack = await acked(wa, {"type": "group", "group_id": gid, "content": f"m{i}"},
                                  f"g{i}")
                ids.append(ack["id"])
            for ws in (wb, wb2, wc):
                for _ in ids:
                    await next_of_type(ws, "group")

            async def group_state(user: TestUser) -> tuple[Any, Any]:
                r = await http.get(user, "/api/groups")
                (g,) = [g for g in r.json()["groups"] if g["id"] == gid]
                return g["last_read_id"], g["unread_count"]

            assert await group_state(bob) == (None, 3)
            assert await group_state(alice) == (None, 0)  # her own messages
            ack = await acked(wb, {"type": "read", "group_id": gid, "up_to": ids[0]}, "r1")
            assert ack["type"] == "ack" and ack["persisted"] is True and ack["id"] is None
            assert (ack["last_read_id"], ack["unread_count"]) == (ids[0], 2)
            frame = await next_of_type(wb2, "read")
            assert frame == {"type": "read", "from": bob.id, "group_id": gid, "up_to": ids[0],
                             "timestamp": ack["timestamp"]}
            assert await group_state(bob) == (ids[0], 2)
            assert await group_state(carol) == (None, 3)
            # the sending connection, the other members: nothing
            await no_frame(wb)
            await no_frame(wa, 0.05)
            await no_frame(wc, 0.05)
            # group ids as strings of digits, as group frames take them
            ack = await acked(wb, {"type": "read", "group_id": str(gid), "up_to": ids[2]}, "r2")
            assert (ack["last_read_id"], ack["unread_count"]) == (ids[2], 0)
            assert (await next_of_type(wb2, "read"))["up_to"] == ids[2]


async def test_read_over_the_websocket_acks_and_sends_the_receipt(server: TestServer) -> None:
    alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
    carol = await quick_user(server, "carol")
    with trio.fail_after(15):
        async with server.connect(alice) as wa, server.connect(bob) as wb, \
                server.connect(bob) as wb2:
            ids = await say(wa, bob, "a", "b")
            for _ in ids:
                await next_of_type(wb, "private")
                await next_of_type(wb2, "private")
            ack = await acked(wb, {"type": "read", "to": alice.id, "up_to": ids[0]}, "r1")
            assert ack == {"type": "ack", "client_id": "r1", "id": None,
                           "timestamp": ack["timestamp"], "persisted": True,
                           "last_read_id": ids[0], "unread_count": 1}
            expected = {"type": "read", "from": bob.id, "to": alice.id, "up_to": ids[0],
                        "timestamp": ack["timestamp"]}
            assert await next_of_type(wa, "read") == expected
            assert await next_of_type(wb2, "read") == expected
            await no_frame(wb)
            # a resend moves nothing, tells no one and gets the same state
            again = await acked(wb, {"type": "read", "to": alice.id, "up_to": ids[0]}, "r1")
            assert (again["last_read_id"], again["unread_count"]) == (ids[0], 1)
            await no_frame(wa)
            # without a client_id: no ack, the receipt all the same
            await send(wb, {"type": "read", "to": alice.id, "up_to": ids[1]})
            assert (await next_of_type(wa, "read"))["up_to"] == ids[1]
            # refusals: error frames, the connection stays open
            for frame, code in (
                ({"type": "read", "to": carol.id, "up_to": ids[0]}, "not_found"),
                ({"type": "read", "to": 987654, "up_to": ids[0]}, "unknown_user"),
                ({"type": "read", "group_id": 987654, "up_to": ids[0]}, "not_member"),
                ({"type": "read", "up_to": ids[0]}, "invalid_message"),
                ({"type": "read", "to": alice.id, "group_id": 1, "up_to": ids[0]},
                 "invalid_message"),
                ({"type": "read", "to": alice.id}, "invalid_message"),
                ({"type": "read", "to": alice.id, "up_to": "x"}, "invalid_message"),
                ({"type": "read", "group_id": "99999999999999999", "up_to": ids[0]},
                 "invalid_message"),
            ):
                err = await acked(wb, frame, f"e-{code}")
                assert err["type"] == "error" and err["code"] == code, (frame, err)
            await send(wb, {"type": "ping", "client_id": "still-open"})
            assert await recv(wb) == {"type": "pong", "client_id": "still-open"}


async def test_a_resume_replays_the_markers_that_moved_after_its_cursor(
    server: TestServer, http: Api
) -> None:
    alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
    with trio.fail_after(15):
        async with server.connect(alice) as wa:
            ids = await say(wa, bob, "a", "b", "c")
            gid = await make_group(http, alice, bob, name="Both")
            g = await acked(wa, {"type": "group", "group_id": gid, "content": "g"}, "g")
        r = await read(http, bob, user=alice.id, up_to=ids[0])
        assert r.status_code == 200
        cursor = ids[-1]  # alice saw everything, then went away
        # while alice is away: bob reads further (a receipt for alice) and alice, on another
        # device, reads the group (her own marker, for her other devices)
        assert (await read(http, bob, user=alice.id, up_to=ids[2])).status_code == 200
        assert (await read(http, alice, group=gid, up_to=g["id"])).status_code == 200
        async with server.connect(alice, query=f"since={cursor}") as wa:
            frames = []
            while True:
                frame = await recv(wa)
                if frame["type"] == "synced":
                    break
                frames.append(frame)
        # one frame per marker, its newest state, in the order they moved (bob's first read
        # is the same marker as his second)
        reads = [f for f in frames if f["type"] == "read"]
        assert reads == [
            {"type": "read", "from": bob.id, "to": alice.id, "up_to": ids[2],
             "timestamp": reads[0]["timestamp"]},
            {"type": "read", "from": alice.id, "group_id": gid, "up_to": g["id"],
             "timestamp": reads[1]["timestamp"]},
        ]
        # a resume from after the last move replays no marker
        async with server.connect(alice, query=f"since={2**52}") as wa:
            while (frame := await recv(wa))["type"] != "synced":
                assert frame["type"] != "read", frame


async def test_include_groups_merges_both_kinds_by_latest_message(
    server: TestServer, http: Api
) -> None:
    alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
    carol = await quick_user(server, "carol")
    with trio.fail_after(15):
        quiet_group = await make_group(http, alice, bob, name="Quiet")  # no message: not listed
        team = await make_group(http, alice, bob, name="Team")
        async with server.connect(alice) as wa, server.connect(carol) as wc:
            (to_bob,) = await say(wa, bob, "to bob")
            g = await acked(wa, {"type": "group", "group_id": team, "content": "team"}, "g")
            (from_carol,) = await say(wc, bob, "from carol")
        r = await http.get(bob, "/api/conversations", include="groups")
        assert r.status_code == 200, r.text
        items = r.json()["conversations"]
        assert [item.get("user", item.get("group"))["id"] for item in items] == [
            carol.id, team, alice.id]
        assert [item["last_message"]["id"] for item in items] == [from_carol, g["id"], to_bob]
        group_item = items[1]
        assert group_item["group"] == {"id": team, "name": "Team"}
        assert (group_item["unread_count"], group_item["last_read_id"]) == (1, None)
        assert "peer_read_id" not in group_item
        assert quiet_group not in [i.get("group", {}).get("id") for i in items]
        # paged like the private list, across both kinds
        r = await http.get(bob, "/api/conversations", include="groups", limit=1, offset=1)
        assert [i["last_message"]["id"] for i in r.json()["conversations"]] == [g["id"]]
        assert r.json()["has_more"] is True
        r = await http.get(bob, "/api/conversations", include="groups", before_id=g["id"])
        assert [i["last_message"]["id"] for i in r.json()["conversations"]] == [to_bob]
        # without it: private conversations only, as before
        r = await http.get(bob, "/api/conversations")
        assert [i["user"]["id"] for i in r.json()["conversations"]] == [carol.id, alice.id]
        r = await http.get(bob, "/api/conversations", include="everything")
        assert r.status_code == 400
