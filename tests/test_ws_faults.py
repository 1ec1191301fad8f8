"""Slow consumers, a failing or slow database, graceful shutdown."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest
import trio
import trio_websocket

from trionet.interfaces import MessageRecord, NotificationRecord
from trionet.settings import Settings
from trionet.store.sqlite import SqliteStore
from trionet.store.sqlite.messages import Duplicates
from trionet.testing import TestServer, running_server

recv = TestServer.receive_json
send = TestServer.send_json


class FlakyPersister(SqliteStore):
    """The SQLite persister, but saves fail (or stall) while told to."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.failing = False
        self.stall = 0.0
        self.saved = 0

    async def save(
        self, messages: Sequence[MessageRecord], notifications: Sequence[NotificationRecord]
    ) -> Duplicates:
        if self.stall:
            await trio.sleep(self.stall)
        if self.failing:
            raise sqlite3.OperationalError("database is locked")
        duplicates = await super().save(messages, notifications)
        self.saved += len(messages)
        return duplicates

    def save_inline(
        self, messages: Sequence[MessageRecord], notifications: Sequence[NotificationRecord]
    ) -> Duplicates | None:
        if self.stall or self.failing:
            return None  # go the slow way, through save()
        return super().save_inline(messages, notifications)


def stored_ids(path: str) -> set[int]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT id FROM messages")}


async def test_slow_consumer_is_closed_with_4008_and_others_keep_receiving() -> None:
    settings = Settings(send_queue=64, rate_limit=0, tcp_user_timeout=0)
    async with running_server(settings) as server:
        a, slow, ok = [await server.create_user(n) for n in ("a", "slow", "ok")]
        gid = await server.create_group("g", a, [slow, ok])
        body = "x" * 15_000
        total = 600  # ~9 MB: more than the loopback socket buffers hold
        with trio.fail_after(30):
            async with server.connect(slow) as ws_slow, server.connect(ok) as ws_ok, \
                    server.connect(a) as wa:
                received = 0

                async def read_ok() -> None:
                    nonlocal received
                    while received < total:
                        received += '"type":"group"' in await ws_ok.get_message()

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(read_ok)
                    for window in range(0, total, 20):  # a sender that waits for its acks
                        for i in range(window, window + 20):
                            await send(wa, {"type": "group", "group_id": gid, "content": body,
                                            "client_id": str(i)})
                        acks = 0
                        while acks < 20:
                            acks += json.loads(await wa.get_message())["type"] == "ack"
                        while received < window:  # a healthy reader is at most a window behind
                            await trio.sleep(0.001)
                assert received == total  # the healthy member got every message
                assert not server.services.manager.is_online(slow.id)
                assert server.services.metrics.slow_consumers._value.get() >= 1
                # the slow client reads what was queued for it, then the 4008 close
                with pytest.raises(trio_websocket.ConnectionClosed) as info:
                    while True:
                        await ws_slow.get_message()
                assert info.value.reason.code == 4008


async def test_failing_database_does_not_stop_live_delivery(tmp_path: Path) -> None:
    path = str(tmp_path / "t.db")
    flaky = FlakyPersister(path)
    async with running_server(Settings(rate_limit=0), persister=flaky, database=path) as server:
        a, b = await server.create_user("a"), await server.create_user("b")
        with trio.fail_after(20):
            async with server.connect(a) as wa, server.connect(b) as wb:
                flaky.failing = True
                await send(wa, {"type": "private", "to": b.id, "content": "during",
                                "client_id": "d"})
                live = await recv(wb)
                assert live["content"] == "during" and live["persisted"] is False
                ack = await recv(wa)
                assert ack["persisted"] is False and ack["id"] == live["id"]
                assert server.services.committer.retry_depth == 1
                flaky.failing = False  # the database recovers: the buffered write lands
                while live["id"] not in stored_ids(path):
                    await trio.sleep(0.05)
                await send(wa, {"type": "private", "to": b.id, "content": "after",
                                "client_id": "e"})
                assert "persisted" not in await recv(wb)
                assert (await recv(wa))["persisted"] is True


async def test_commit_slower_than_the_timeout_delivers_unpersisted(tmp_path: Path) -> None:
    path = str(tmp_path / "t.db")
    flaky = FlakyPersister(path)
    settings = Settings(rate_limit=0, commit_timeout=0.2)
    async with running_server(settings, persister=flaky, database=path) as server:
        a, b = await server.create_user("a"), await server.create_user("b")
        with trio.fail_after(20):
            async with server.connect(a) as wa, server.connect(b) as wb:
                flaky.stall = 2.0
                started = trio.current_time()
                await send(wa, {"type": "private", "to": b.id, "content": "slow",
                                "client_id": "s"})
                live = await recv(wb)
                assert trio.current_time() - started < 1.5
                assert live["persisted"] is False
                flaky.stall = 0
                while live["id"] not in stored_ids(path):  # the slow commit still lands
                    await trio.sleep(0.05)


async def test_full_retry_buffer_refuses_with_unavailable(tmp_path: Path) -> None:
    path = str(tmp_path / "t.db")
    flaky = FlakyPersister(path)
    settings = Settings(rate_limit=0, retry_buffer=2)
    async with running_server(settings, persister=flaky, database=path) as server:
        a, b = await server.create_user("a"), await server.create_user("b")
        with trio.fail_after(20):
            async with server.connect(a) as wa, server.connect(b) as wb:
                flaky.failing = True
                for i in range(2):
                    await send(wa, {"type": "private", "to": b.id, "content": str(i),
                                    "client_id": str(i)})
                    assert (await recv(wa))["persisted"] is False
                    await recv(wb)
                await send(wa, {"type": "private", "to": b.id, "content": "no",
                                "client_id": "x"})
                err = await recv(wa)
                assert (err["type"], err["code"], err["client_id"]) == \
                    ("error", "unavailable", "x")
                flaky.failing = False
                while server.services.committer.retry_depth:
                    await trio.sleep(0.05)
                await send(wa, {"type": "private", "to": b.id, "content": "yes",
                                "client_id": "y"})
                assert (await recv(wa))["persisted"] is True


async def test_shutdown_closes_clients_with_1001_and_keeps_everything_acked(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "t.db")
    acked: list[int] = []
    codes: list[int] = []
    async with running_server(Settings(rate_limit=0), database=path) as server:
        a, b = await server.create_user("a"), await server.create_user("b")
        gid = await server.create_group("g", a, [b])

        async def client(user_id: int, peer: int) -> None:
            token = a if user_id == a.id else b
            async with server.connect(token) as ws:

                async def write() -> None:
                    for i in range(200):
                        frame = {"type": "private", "to": peer, "content": str(i),
                                 "client_id": f"{user_id}-{i}"}
                        if i % 2:
                            frame = {"type": "group", "group_id": gid, "content": str(i),
                                     "client_id": f"{user_id}-{i}"}
                        try:
                            await send(ws, frame)
                        except trio_websocket.ConnectionClosed:
                            return

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(write)
                    try:
                        while True:
                            got = json.loads(await ws.get_message())
                            if got["type"] == "ack" and got["persisted"]:
                                acked.append(got["id"])
                    except trio_websocket.ConnectionClosed as closed:
                        codes.append(closed.reason.code)

        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client, a.id, b.id)
                nursery.start_soon(client, b.id, a.id)
                while len(acked) < 50:
                    await trio.sleep(0.01)
                await server.stop()
    assert codes == [1001, 1001]
    assert set(acked) <= stored_ids(path)
    assert len(acked) >= 50
