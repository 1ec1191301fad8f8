"""Abuse over the WebSocket, each attack reproduced over real sockets: floods (text, binary,
malformed), a reused ``client_id``, the resend table's memory, sockets per user."""

from __future__ import annotations

import gc
import json
import sys
from typing import Any

import pytest
import trio
import trio_websocket

from trionet.settings import Settings
from trionet.testing import TestServer, running_server

recv = TestServer.receive_json
send = TestServer.send_json


async def _drain_until_closed(ws: trio_websocket.WebSocketConnection) -> tuple[int, list[Any]]:
    frames = []
    try:
        while True:
            frames.append(json.loads(await ws.get_message()))
    except trio_websocket.ConnectionClosed as closed:
        assert closed.reason is not None
        return closed.reason.code, frames


@pytest.mark.parametrize("kind", ["text", "binary", "malformed"])
async def test_a_sustained_flood_is_closed_with_1008_and_answered_about_once_a_second(
    monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """The old limiter reset its abuse timer with every refilled token (no close after 13 s and
    281,350 frames, 171,439 of them answered), and binary frames never touched it."""
    monkeypatch.setattr("trionet.realtime.connection.ABUSE_SECONDS", 2.0)
    payload: str | bytes = {"text": '{"type":"ping"}', "binary": b"\x00" * 16,
                            "malformed": "{not json"}[kind]
    async with running_server(Settings(rate_limit=5)) as server:
        a, b = await server.create_user("a"), await server.create_user("b")
        with trio.fail_after(20):
            async with server.connect(b) as wb, server.connect(a) as wa:
                started = trio.current_time()
                async with trio.open_nursery() as nursery:
                    async def flood() -> None:
                        try:
                            while True:
                                await wa.send_message(payload)
                                await trio.sleep(0.0005)
                        except trio_websocket.ConnectionClosed:
                            pass

                    nursery.start_soon(flood)
                    code, frames = await _drain_until_closed(wa)
                    nursery.cancel_scope.cancel()
                elapsed = trio.current_time() - started
                refusals = [f for f in frames if f.get("code") == "rate_limited"]
                # the neighbour is unharmed
                await send(wb, {"type": "ping", "client_id": "still-here"})
                assert (await recv(wb))["type"] == "pong"
    assert code == 1008
    assert 2.0 <= elapsed < 8
    assert len(refusals) <= 10 + 6  # a burst's worth, then about one a second


async def test_rate_limited_errors_carry_the_refused_frames_client_id() -> None:
    async with running_server(Settings(rate_limit=5)) as server:
        a, b = await server.create_user("a"), await server.create_user("b")
        with trio.fail_after(10):
            async with server.connect(a) as wa:
                for i in range(20):
                    await send(wa, {"type": "private", "to": b.id, "content": f"m{i}",
                                    "client_id": f"c{i}"})
                frames = [await recv(wa) for _ in range(20)]
    acked = {f["client_id"] for f in frames if f["type"] == "ack"}
    refused = {f["client_id"] for f in frames if f.get("code") == "rate_limited"}
    assert acked == {f"c{i}" for i in range(10)}
    assert refused == {f"c{i}" for i in range(10, 20)}


async def test_a_reused_client_id_is_refused_and_never_acked_as_the_original() -> None:
    """The attack: c-1 to bob, then c-1 with other content to carol was acked with the first
    message's id and delivered to nobody."""
    async with running_server() as server:
        a, b, c = [await server.create_user(n) for n in ("a", "b", "c")]
        with trio.fail_after(10):
            async with server.connect(b) as wb, server.connect(c) as wc, \
                    server.connect(a) as wa:
                first = {"type": "private", "to": b.id, "content": "for bob", "client_id": "c-1"}
                await send(wa, first)
                ack = await recv(wa)
                assert (await recv(wb))["content"] == "for bob"
                await send(wa, {**first, "to": c.id, "content": "for carol"})
                refused = await recv(wa)
                await send(wa, first)  # a real resend still gets the original ack
                again = await recv(wa)
                with trio.move_on_after(0.3):
                    stray = await recv(wc)
                    raise AssertionError(f"carol got {stray}")
    assert ack["type"] == "ack" and ack["persisted"] is True
    assert refused["type"] == "error" and refused["code"] == "client_id_reused"
    assert refused["client_id"] == "c-1"
    assert again == ack


async def test_a_reused_client_id_is_refused_after_memory_forgot_it() -> None:
    """When the in-memory table no longer has it (aged out, evicted, a restart), the store's
    unique index catches the copy: the different message is refused, not acked as the first."""
    async with running_server() as server:
        a, b = await server.create_user("a"), await server.create_user("b")
        with trio.fail_after(10):
            async with server.connect(b) as wb, server.connect(a) as wa:
                first = {"type": "private", "to": b.id, "content": "one", "client_id": "k"}
                await send(wa, first)
                ack = await recv(wa)
                await recv(wb)
                server.services.recent_sends.__init__()  # type: ignore[misc]
                await send(wa, {**first, "content": "two"})
                refused = await recv(wa)
                server.services.recent_sends.__init__()  # type: ignore[misc]
                await send(wa, first)
                again = await recv(wa)
                with trio.move_on_after(0.3):
                    stray = await recv(wb)
                    raise AssertionError(f"bob got {stray}")
            history = await server.services.persister.private_page(
                a.id, b.id, limit=10, offset=0, before_id=None)
    assert refused["code"] == "client_id_reused" and refused["client_id"] == "k"
    assert again["type"] == "ack" and again["id"] == ack["id"]
    assert [m.content for m in history] == ["one"]


def _reachable_bytes(root: object) -> int:
    """Bytes of every object reachable from ``root`` (what it keeps alive)."""
    seen: set[int] = set()
    stack, total = [root], 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
    return total


async def test_the_resend_table_keeps_no_message_content() -> None:
    """The attack: 5,000 messages of ~48 KB with client_ids took RSS 51 -> 490 MB and kept it
    after the sender left (~88 KB per entry)."""
    async with running_server() as server:
        a, b = await server.create_user("a"), await server.create_user("b")
        content = "\u00e9" * 10_000  # 20 KB stored (sent as 60 KB of \\u escapes)
        with trio.fail_after(20):
            async with server.connect(a) as wa:
                for i in range(100):
                    await send(wa, {"type": "private", "to": b.id, "content": content,
                                    "client_id": f"big-{i}"})
                acks = [await recv(wa) for _ in range(100)]
        table = server.services.recent_sends
        per_entry = _reachable_bytes(table) / len(table)
    assert all(f["type"] == "ack" for f in acks) and len(table) == 100
    assert per_entry < 1_000, per_entry


async def test_sockets_per_user_are_capped_with_a_429_handshake() -> None:
    async with running_server(Settings(rate_limit=0, max_connections_per_user=3)) as server:
        a, b = await server.create_user("a"), await server.create_user("b")
        with trio.fail_after(10):
            async with server.connect(a), server.connect(a), server.connect(a):
                with pytest.raises(trio_websocket.ConnectionRejected) as refused:
                    async with server.connect(a):
                        pass
                async with server.connect(b):  # another user is not affected
                    pass
            # slots come back when sockets close
            while server.services.registry.connections(a.id):
                await trio.sleep(0.01)
            async with server.connect(a):
                pass
    assert refused.value.status_code == 429
    assert refused.value.body is not None
    assert json.loads(refused.value.body)["error"]["code"] == "too_many_requests"


async def test_concurrent_handshakes_cannot_pass_the_per_user_cap_together() -> None:
    async with running_server(Settings(rate_limit=0, max_connections_per_user=5)) as server:
        a = await server.create_user("a")
        opened: list[int] = []
        refused: list[int] = []
        release = trio.Event()

        async def open_one() -> None:
            try:
                async with server.connect(a):
                    opened.append(1)
                    await release.wait()
            except trio_websocket.ConnectionRejected as exc:
                refused.append(exc.status_code or 0)

        with trio.fail_after(15):
            async with trio.open_nursery() as nursery:
                for _ in range(20):
                    nursery.start_soon(open_one)
                while len(opened) + len(refused) < 20:
                    await trio.sleep(0.01)
                release.set()
    assert len(opened) == 5 and refused == [429] * 15


async def test_zero_turns_the_per_user_cap_off() -> None:
    async with running_server(Settings(rate_limit=0, max_connections_per_user=0)) as server:
        a = await server.create_user("a")
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                done = trio.Event()
                count = 0

                async def hold() -> None:
                    nonlocal count
                    async with server.connect(a):
                        count += 1
                        await done.wait()

                for _ in range(25):
                    nursery.start_soon(hold)
                while count < 25:
                    await trio.sleep(0.01)
                done.set()
