"""Retention (``TRIONET_RETENTION_DAYS``): what is older is deleted, in small batches, and
history, conversations, unread counts and resume reflect it (on the store the run uses)."""

from __future__ import annotations

import time

import pytest
import trio
from api_helpers import quick_user, recv

from trionet.core.ids import id_at, id_to_iso
from trionet.interfaces import MessageRecord, NotificationRecord
from trionet.realtime import retention
from trionet.settings import Settings
from trionet.testing import TestServer, running_server

DAY = 86400.0


def old_id(days_ago: float, n: int = 0) -> int:
    return id_at(time.time() - days_ago * DAY) + n


def message(id_: int, sender: int, to: int, content: str) -> MessageRecord:
    return MessageRecord(id=id_, kind="private", sender_id=sender, recipient_id=to,
                         content=content, created_at=id_to_iso(id_))


async def history(server: TestServer, user: object, peer: int) -> list[str]:
    async with server.http(user) as http:  # type: ignore[arg-type]
        r = await http.get("/api/messages/private", params={"user": peer})
        return [m["content"] for m in r.json()["messages"]]


async def test_a_sweep_deletes_what_is_older_and_every_view_follows() -> None:
    async with running_server(Settings(rate_limit=0, retention_days=7)) as server:
        alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
        carol = await quick_user(server, "carol")
        store = server.services.store
        with trio.fail_after(20):
            old = [message(old_id(10, i), alice.id, bob.id, f"old {i}") for i in range(3)]
            gone_pair = message(old_id(9), carol.id, bob.id, "carol, long ago")
            new = message(old_id(1), alice.id, bob.id, "recent")
            notes = [NotificationRecord(id=old_id(8), user_id=bob.id, subtype="t",
                                        message="old note", created_at=id_to_iso(old_id(8))),
                     NotificationRecord(id=old_id(0.5), user_id=bob.id, subtype="t",
                                        message="new note",
                                        created_at=id_to_iso(old_id(0.5)))]
            await store.save([*old, gone_pair, new], notes)
            async with server.http(bob) as http:
                convs = (await http.get("/api/conversations")).json()["conversations"]
                assert {c["user"]["id"]: c["unread_count"] for c in convs} == {
                    alice.id: 4, carol.id: 1}
            done = await server.services.retention.sweep()
            assert done == {"messages": 4, "notifications": 1}
            assert await history(server, bob, alice.id) == ["recent"]
            assert await history(server, bob, carol.id) == []
            async with server.http(bob) as http:
                convs = (await http.get("/api/conversations")).json()["conversations"]
                # carol's conversation went with its latest message; alice's counts one
                assert [(c["user"]["id"], c["unread_count"]) for c in convs] == [(alice.id, 1)]
                notes_now = (await http.get("/api/notifications")).json()["notifications"]
                assert [n["message"] for n in notes_now] == ["new note"]
            # the second sweep finds nothing
            assert await server.services.retention.sweep() == {"messages": 0,
                                                                "notifications": 0}
            # a resume from before the horizon gets sync_gap; one after it does not
            async with server.connect(bob, query=f"since={old_id(12)}") as ws:
                frames = []
                while (frame := await recv(ws))["type"] != "synced":
                    frames.append(frame)
            assert frames[0] == {"type": "sync_gap", "from_id": new.id}
            assert [f.get("content") for f in frames[1:]] == ["recent"]
            async with server.connect(bob, query=f"since={old_id(3)}") as ws:
                frames = []
                while (frame := await recv(ws))["type"] != "synced":
                    frames.append(frame)
            assert [f["type"] for f in frames] == ["private"]


async def test_the_task_sweeps_in_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retention, "BATCH", 2)
    async with running_server(Settings(rate_limit=0, retention_days=1)) as server:
        alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
        store = server.services.store
        old = [message(old_id(2, i), alice.id, bob.id, f"old {i}") for i in range(5)]
        await store.save(old, [])
        # the task's first sweep ran at start-up, before these existed: run another round
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                await nursery.start(server.services.retention.run)
                while await history(server, bob, alice.id):
                    await trio.sleep(0.05)
                nursery.cancel_scope.cancel()
        deleted = server.services.retention.deleted.labels("messages")._value.get()
        assert deleted == 5


async def test_retention_off_deletes_nothing(server: TestServer) -> None:
    alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
    await server.services.store.save([message(old_id(300), alice.id, bob.id, "ancient")], [])
    with trio.fail_after(10):
        assert server.services.retention.horizon() == 0
        assert await server.services.retention.sweep() == {"messages": 0, "notifications": 0}
        assert await history(server, bob, alice.id) == ["ancient"]
