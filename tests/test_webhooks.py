"""Webhooks (``TRIONET_WEBHOOK_URL``): signed events for offline users and presence, sent at
least once from an outbox in the store, to a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from api_helpers import quick_user
from faults import free_port, wait_ready
from webhook_helpers import SECRET, Receiver

from trionet.realtime import webhooks
from trionet.realtime.webhooks import retry_delay, sign, verify
from trionet.settings import Settings
from trionet.testing import TestServer, running_server


def test_signatures_and_backoff() -> None:
    body = b'{"id":"1"}'
    signature = sign(SECRET, 1_700_000_000, body)
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert verify(SECRET, "1700000000", body, signature, now=1_700_000_100)
    assert not verify(SECRET, "1700000000", body + b" ", signature, now=1_700_000_100)
    assert not verify("another-secret-entirely", "1700000000", body, signature,
                      now=1_700_000_100)
    assert not verify(SECRET, "1700000000", body, signature, now=1_700_000_000 + 301)
    assert not verify(SECRET, "soon", body, signature)
    assert [retry_delay(n) for n in (1, 2, 3, 9, 10, 20)] == [1, 2, 4, 256, 300, 300]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    try:
        yield hook
    finally:
        hook.close()


@pytest.fixture
async def hooked(receiver: Receiver) -> Any:
    settings = Settings(rate_limit=0, webhook_url=receiver.url, webhook_secret=SECRET)
    async with running_server(settings) as server:
        yield server


async def test_offline_recipients_are_posted_signed_and_online_ones_are_not(
    hooked: TestServer, receiver: Receiver
) -> None:
    alice, bob = await quick_user(hooked, "alice"), await quick_user(hooked, "bob")
    carol = await quick_user(hooked, "carol")
    with trio.fail_after(20):
        async with hooked.connect(alice) as wa:
            (online,) = await receiver.wait_for("user.online")
            assert online["data"] == {"user_id": alice.id}
            async with hooked.connect(carol) as wc:
                await receiver.wait_for("user.online", 2)
                for to, cid in ((carol, "to-carol"), (bob, "to-bob")):
                    await hooked.send_json(wa, {"type": "private", "to": to.id,
                                                "content": f"hi {to.username}",
                                                "client_id": cid})
                    while (await hooked.receive_json(wa))["type"] != "ack":
                        pass
                await hooked.receive_json(wc)
                (event,) = await receiver.wait_for("message.offline")
                assert event["data"]["offline_user_ids"] == [bob.id]
                assert event["data"]["message"]["content"] == "hi bob"
                assert event["data"]["message"]["from"] == alice.id
                gid = await hooked.create_group("g", alice, [bob, carol])
                await hooked.send_json(wa, {"type": "group", "group_id": gid,
                                            "content": "to the group", "client_id": "g"})
                (_, group_event) = await receiver.wait_for("message.offline", 2)
                assert group_event["data"]["offline_user_ids"] == [bob.id]
        await hooked.services.manager.notify(bob.id, "like", "carol liked your post")
        (note,) = await receiver.wait_for("notification.offline")
        assert note["data"]["offline_user_ids"] == [bob.id]
        assert note["data"]["notification"]["message"] == "carol liked your post"
        await receiver.wait_for("user.offline", 2)
    # every request is signed, carries its event id, and verifies
    for headers, body, _status in receiver.requests:
        assert headers["content-type"] == "application/json"
        assert headers["x-trionet-event-id"] == json.loads(body)["id"]
        assert verify(SECRET, headers["x-trionet-timestamp"], body,
                      headers["x-trionet-signature"])
    ids = [e["id"] for e in receiver.accepted()]
    assert len(ids) == len(set(ids))
    assert await hooked.services.store.outbox_size() == 0


async def test_a_failing_receiver_gets_the_event_after_retries_once_per_id(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webhooks, "retry_delay", lambda attempt: 0.05)
    failing = Receiver(fail=3)
    try:
        settings = Settings(rate_limit=0, webhook_url=failing.url, webhook_secret=SECRET)
        async with running_server(settings) as server:
            bob = await quick_user(server, "bob")
            with trio.fail_after(20):
                await server.services.manager.notify(bob.id, "test", "hello")
                (event,) = await failing.wait_for("notification.offline")
                await trio.sleep(0.3)  # nothing more comes for it
                tries = [s for h, _, s in failing.requests
                         if h["x-trionet-event-id"] == event["id"]]
                assert tries == [500, 500, 500, 200]
                events = server.services.webhooks
                assert events is not None
                assert events.events.labels("retried")._value.get() == 3
                assert events.events.labels("sent")._value.get() == 1
    finally:
        failing.close()


async def test_message_delivery_never_waits_for_a_slow_or_dead_webhook() -> None:
    settings = Settings(rate_limit=0, webhook_url=f"http://127.0.0.1:{free_port()}/down",
                        webhook_secret=SECRET)
    async with running_server(settings) as server:
        alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
        with trio.fail_after(10):
            async with server.connect(alice) as wa:
                started = time.monotonic()
                for i in range(20):
                    await server.send_json(wa, {"type": "private", "to": bob.id,
                                                "content": f"m{i}", "client_id": str(i)})
                    ack = await server.receive_json(wa)
                    assert ack["type"] == "ack" and ack["persisted"] is True
                assert time.monotonic() - started < 2
            with trio.fail_after(5):
                while await server.services.store.outbox_size() < 20:  # waiting, not lost
                    await trio.sleep(0.05)


@pytest.mark.sqlite_only
async def test_events_in_the_outbox_survive_a_sigkill(tmp_path: Path) -> None:
    port, hook_port, key = free_port(), free_port(), "k" * 32
    db = tmp_path / "chat.db"
    env = {**os.environ, "TRIONET_DATABASE": str(db), "TRIONET_API_KEY": key,
           "TRIONET_RATE_LIMIT": "0", "TRIONET_HOST": "127.0.0.1", "TRIONET_PORT": str(port),
           "TRIONET_WEBHOOK_URL": f"http://127.0.0.1:{hook_port}/hooks",
           "TRIONET_WEBHOOK_SECRET": SECRET}
    url = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {key}"}

    def outbox() -> int:
        with sqlite3.connect(db) as conn:
            return int(conn.execute("SELECT count(*) FROM webhook_outbox").fetchone()[0])

    def between_attempts() -> bool:
        """Both events tried and waiting for their retry (none in an attempt's lease)."""
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT attempts, next_at FROM webhook_outbox").fetchall()
        return len(rows) == 2 and all(a >= 1 and n < time.time() + webhooks.LEASE - 5
                                      for a, n in rows)

    with trio.fail_after(60):
        with (tmp_path / "first.log").open("wb") as log:
            first = await trio.lowlevel.open_process(
                [sys.executable, "-m", "trionet", "serve"], env=env, stdout=log, stderr=log)
            try:
                await wait_ready(url, first)
                async with httpx.AsyncClient(base_url=url, timeout=10, headers=auth) as http:
                    for uid in (1, 2):
                        r = await http.put(f"/api/server/users/{uid}",
                                           json={"username": f"u{uid}"})
                        assert r.status_code == 201
                    r = await http.post("/api/server/notify", json={
                        "user_ids": [1, 2], "subtype": "test", "message": "while down"})
                    assert r.is_success, r.text
                while not between_attempts():  # the receiver is down: they wait there
                    await trio.sleep(0.02)
                first.send_signal(signal.SIGKILL)
                await first.wait()
            finally:
                if first.returncode is None:
                    first.kill()
        hook = Receiver(port=hook_port)
        try:
            with (tmp_path / "second.log").open("wb") as log:
                second = await trio.lowlevel.open_process(
                    [sys.executable, "-m", "trionet", "serve"], env=env, stdout=log, stderr=log)
                try:
                    await wait_ready(url, second)
                    events = await hook.wait_for("notification.offline", 2)
                    assert sorted(e["data"]["offline_user_ids"][0] for e in events) == [1, 2]
                    while outbox():
                        await trio.sleep(0.05)
                finally:
                    second.terminate()
                    with trio.move_on_after(10):
                        await second.wait()
                    if second.returncode is None:
                        second.kill()
        finally:
            hook.close()
