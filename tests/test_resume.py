"""Gap-free resume after reconnect, and idempotent resend."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import trio
import trio_websocket
from api_helpers import stored_rows

from trionet.core.resume import frame_id
from trionet.settings import Settings
from trionet.testing import TestServer, TestUser, running_server

recv = TestServer.receive_json
send = TestServer.send_json


async def frames_until_synced(ws: trio_websocket.WebSocketConnection) -> list[dict]:
    out = []
    while True:
        frame = await recv(ws)
        out.append(frame)
        if frame["type"] == "synced":
            return out


async def send_private(server: TestServer, sender: TestUser, to: TestUser, n: int,
                       prefix: str = "m") -> list[int]:
    ids = []
    async with server.connect(sender) as ws:
        for i in range(n):
            await send(ws, {"type": "private", "to": to.id, "content": f"{prefix}{i}",
                            "client_id": f"{prefix}{i}"})
            ack = await recv(ws)
            assert ack["type"] == "ack" and ack["persisted"]
            ids.append(ack["id"])
    return ids


async def test_reconnect_with_since_replays_missed_messages_and_notifications_in_order(
    server: TestServer,
) -> None:
    a, b, c = [await server.create_user(n) for n in ("a", "b", "c")]
    gid = await server.create_group("g", a, [b, c])
    with trio.fail_after(15):
        async with server.connect(b) as wb:
            await send_private(server, a, b, 1, "seen")
            seen = await recv(wb)
        since = seen["id"]
        note_before = await server.services.manager.notify(b.id, "hello", "before")
        # b is offline now: a private, a group message and a notification arrive
        await send_private(server, a, b, 2, "missed")
        async with server.connect(c) as wc:
            await send(wc, {"type": "group", "group_id": gid, "content": "group missed",
                            "client_id": "g"})
            assert (await recv(wc))["type"] == "ack"
        note = await server.services.manager.notify(b.id, "friend_request", "hi", user_id=a.id)
        async with server.connect(
            b, query=f"since={since}&since_notification={note_before['id']}"
        ) as wb:
            frames = await frames_until_synced(wb)
            replayed, synced = frames[:-1], frames[-1]
            assert [f["type"] for f in replayed] == ["private", "private", "group",
                                                      "notification"]
            assert [f.get("content") for f in replayed[:3]] == ["missed0", "missed1",
                                                                "group missed"]
            assert replayed[3] == note
            ids = [f["id"] for f in replayed]
            assert ids == sorted(ids) and all(i > since for i in ids)
            assert synced == {"type": "synced", "last_id": replayed[2]["id"],
                              "last_notification_id": note["id"]}
            # then live traffic
            await send_private(server, a, b, 1, "live")
            assert (await recv(wb))["content"] == "live0"


async def test_without_since_there_is_no_replay_and_no_synced(server: TestServer) -> None:
    a, b = await server.create_user("a"), await server.create_user("b")
    await send_private(server, a, b, 2)
    with trio.fail_after(10):
        async with server.connect(b) as wb:
            await send_private(server, a, b, 1, "live")
            assert (await recv(wb))["content"] == "live0"


async def test_replay_of_a_group_left_is_not_sent(server: TestServer) -> None:
    a, b = await server.create_user("a"), await server.create_user("b")
    gid = await server.create_group("g", a, [b])
    async with server.connect(a) as wa:
        await send(wa, {"type": "group", "group_id": gid, "content": "x", "client_id": "1"})
        await recv(wa)

    await server.services.store.leave(gid, b.id)
    server.services.manager.membership_changed(gid)
    with trio.fail_after(10):
        async with server.connect(b, query="since=0") as wb:
            assert await frames_until_synced(wb) == [{"type": "synced", "last_id": 0}]


async def test_replay_past_the_limit_sends_sync_gap_and_the_newest() -> None:
    async with running_server(Settings(replay_limit=5, rate_limit=0)) as server:
        a, b = await server.create_user("a"), await server.create_user("b")
        ids = await send_private(server, a, b, 8)
        with trio.fail_after(10):
            async with server.connect(b, query="since=0") as wb:
                frames = await frames_until_synced(wb)
        assert frames[0] == {"type": "sync_gap", "from_id": ids[3]}
        assert [f["id"] for f in frames[1:-1]] == ids[3:]
        assert frames[-1]["last_id"] == ids[-1]


async def test_resume_during_live_traffic_has_no_gap_and_no_duplicate(
    server: TestServer,
) -> None:
    a, b = await server.create_user("a"), await server.create_user("b")
    total = 300
    sent_ids: list[int] = []
    got: list[int] = []
    with trio.fail_after(30):
        async with server.connect(a) as wa, trio.open_nursery() as nursery:

            async def sender() -> None:
                for i in range(total):
                    await send(wa, {"type": "private", "to": b.id, "content": str(i),
                                    "client_id": str(i)})
                    if i % 10 == 0:
                        await trio.sleep(0.005)

            async def acks() -> None:
                while len(sent_ids) < total:
                    frame = await recv(wa)
                    if frame["type"] == "ack":
                        sent_ids.append(frame["id"])

            nursery.start_soon(sender)
            nursery.start_soon(acks)
            # b connects, reads a little, drops, and resumes from the last id it saw, twice
            last = 0
            for _ in range(2):
                async with server.connect(b, query=f"since={last}") as wb:
                    for _ in range(40):
                        frame = await recv(wb)
                        if frame["type"] in ("private",):
                            got.append(frame["id"])
                            last = frame["id"]
            async with server.connect(b, query=f"since={last}") as wb:
                while len(set(got)) < total:
                    frame = await recv(wb)
                    if frame["type"] == "private":
                        got.append(frame["id"])
    assert len(got) == len(set(got)), "a message was delivered twice"
    assert sorted(got) == sorted(sent_ids)


async def test_resent_frame_gets_the_original_ack_and_is_not_delivered_twice(
    server: TestServer,
) -> None:
    a, b = await server.create_user("a"), await server.create_user("b")
    with trio.fail_after(10):
        async with server.connect(b) as wb:
            async with server.connect(a) as wa:
                await send(wa, {"type": "private", "to": b.id, "content": "once",
                                "client_id": "dup"})
                first = await recv(wa)
            async with server.connect(a) as wa:  # reconnected; resends
                await send(wa, {"type": "private", "to": b.id, "content": "once",
                                "client_id": "dup"})
                again = await recv(wa)
            assert again == first
            assert (await recv(wb))["content"] == "once"
            with trio.move_on_after(0.3):
                frame = await recv(wb)
                raise AssertionError(f"delivered twice: {frame}")
    rows = (await stored_rows(server, "SELECT count(*) FROM messages"))[0]
    assert rows == (1,)


async def test_resend_after_a_restart_is_found_in_the_store(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    async with running_server(database=path) as server:
        a, b = await server.create_user("a"), await server.create_user("b")
        async with server.connect(a) as wa:
            await send(wa, {"type": "private", "to": b.id,
                            "content": "x", "client_id": "k1"})
            first = await recv(wa)
    async with running_server(database=path) as server:
        with trio.fail_after(10):
            async with server.connect(a, query=f"since={first['id']}") as wa:
                assert (await recv(wa))["type"] == "synced"
                await send(wa, {"type": "private", "to": b.id, "content": "x",
                                "client_id": "k1"})
                assert await recv(wa) == first
    count = sqlite3.connect(path).execute("SELECT count(*) FROM messages").fetchone()
    assert count == (1,)


@pytest.mark.parametrize("query", ["since=abc", "since=-1", "since=1&since_notification=x",
                                   "since=99999999999999999999"])
async def test_bad_since_is_refused_with_400(server: TestServer, query: str) -> None:
    a = await server.create_user("a")
    with pytest.raises(trio_websocket.ConnectionRejected) as info:
        async with server.connect(a, query=query):
            pass
    assert info.value.status_code == 400
    assert json.loads(info.value.body or b"{}")["error"]["code"] == "bad_request"


def test_frame_id_reads_the_id_without_decoding() -> None:
    assert frame_id(b'{"type":"private","id":123,"from":1}') == 123
    assert frame_id(b'{"type":"notification","id":9,"subtype":"x"}') == 9
    assert frame_id(b'{"type":"broadcast","from":1,"content":"\\"id\\":5"}') is None
    assert frame_id(b'{"type":"presence","user_id":1}') is None


async def test_resend_on_a_fresh_connection_after_a_restart_gets_the_original_ack(
    tmp_path: Path,
) -> None:
    """No `since`, so the resend is not looked up before it is stored: the store catches it."""
    path = tmp_path / "t.db"
    async with running_server(database=path) as server:
        a, b = await server.create_user("a"), await server.create_user("b")
        async with server.connect(a) as wa:
            await send(wa, {"type": "private", "to": b.id, "content": "x", "client_id": "k2"})
            first = await recv(wa)
    async with running_server(database=path) as server:
        with trio.fail_after(10):
            async with server.connect(b) as wb, server.connect(a) as wa:
                await send(wa, {"type": "private", "to": b.id, "content": "x",
                                "client_id": "k2"})
                assert await recv(wa) == first
                with trio.move_on_after(0.3):
                    raise AssertionError(f"delivered again: {await recv(wb)}")
                await send(wa, {"type": "private", "to": b.id, "content": "x",
                                "client_id": "k2"})  # and a third time, from memory
                assert await recv(wa) == first
    count = sqlite3.connect(path).execute("SELECT count(*) FROM messages").fetchone()
    assert count == (1,)


async def test_a_send_cancelled_while_the_commit_queue_is_full_leaves_no_receipt_behind(
    server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection closes while its message waits for room in the commit queue (here:
    a queue that never has room for the first message). The message was never queued, so a
    resend of it on another connection is a new message: stored, delivered and acked once.
    The receipt used to be registered before the message was queued, so that resend waited
    forever for a commit that would never come."""
    from trionet.realtime.committer import GroupCommitter

    a, b = await server.create_user("a"), await server.create_user("b")
    original = GroupCommitter.submit
    blocked: list[str] = []

    async def full_once(self: GroupCommitter, pending: object) -> None:
        if not blocked:
            blocked.append("x")
            await trio.sleep_forever()  # the queue is full, and stays so
        await original(self, pending)  # type: ignore[arg-type]

    monkeypatch.setattr(GroupCommitter, "submit", full_once)
    frame = {"type": "private", "to": b.id, "content": "once", "client_id": "c1"}
    with trio.fail_after(10):
        async with server.connect(b) as wb:
            async with server.connect(a) as wa:
                await send(wa, frame)
                while not blocked:
                    await trio.sleep(0.01)
                # the server ends the connection (a ban, say): its reader is cancelled
                await server.services.manager.disconnect_user(a.id)
                with pytest.raises(trio_websocket.ConnectionClosed):
                    await wa.get_message()
            async with server.connect(a) as wa:  # the first socket is gone: a resend
                await send(wa, frame)
                ack = await recv(wa)
                assert ack["type"] == "ack" and ack["persisted"] and ack["client_id"] == "c1"
            delivered = await recv(wb)
            assert delivered["content"] == "once" and delivered["id"] == ack["id"]
