"""What a node does when Redis goes away and comes back, over real sockets to the machine's
Redis through a proxy the test cuts (the Redis server itself is never restarted)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pytest
import trio
from faults import CuttableProxy, free_port
from trio_websocket import ConnectionClosed, WebSocketConnection

from trionet.backplane.redis import RedisBackplane
from trionet.core.events import Delivery, PresenceChanged, Resync
from trionet.core.routing import ToUsers
from trionet.metrics import Metrics
from trionet.settings import Settings
from trionet.testing import (
    DEFAULT_TEST_REDIS,
    TestServer,
    fresh_redis_prefix,
    running_cluster,
    running_server,
)


async def drain_until_closed(ws: WebSocketConnection) -> tuple[list[dict[str, Any]], int]:
    """Every frame until the server closes ``ws``, and the close code."""
    import json

    frames = []
    try:
        while True:
            frames.append(json.loads(await ws.get_message()))
    except ConnectionClosed as closed:
        return frames, closed.reason.code


async def test_a_redis_outage_keeps_local_delivery_then_every_client_resumes_exactly_once(
) -> None:
    async with trio.open_nursery() as nursery:
        proxy = CuttableProxy(nursery, int(DEFAULT_TEST_REDIS.rsplit(":", 1)[1].split("/")[0]))
        await proxy.start()
        cut_url = f"redis://127.0.0.1:{proxy.port}/0"
        settings = Settings(rate_limit=0, redis_lease=30)
        async with running_cluster(2, settings, per_node=[{"redis_url": cut_url}]) as (one, two):
            alice, bob, carol = [await one.create_user(n) for n in ("alice", "bob", "carol")]
            with trio.fail_after(60):
                async with one.connect(alice) as wa, one.connect(carol) as wc, \
                        two.connect(bob) as wb, one.http(alice) as http_one:
                    proxy.cut()
                    while (await http_one.get("/readyz")).status_code != 503:
                        await trio.sleep(0.05)
                    # node one's own connections still talk to each other
                    await TestServer.send_json(wa, {"type": "private", "to": carol.id,
                                                    "content": "local", "client_id": "l"})
                    assert (await TestServer.receive_json(wc))["content"] == "local"
                    assert (await TestServer.receive_json(wa))["persisted"] is True
                    # across the cut: both directions are stored and acked
                    await TestServer.send_json(wa, {"type": "private", "to": bob.id,
                                                    "content": "one->two", "client_id": "x"})
                    ack_x = await TestServer.receive_json(wa)
                    assert ack_x["persisted"] is True
                    await TestServer.send_json(wb, {"type": "private", "to": alice.id,
                                                    "content": "two->one", "client_id": "y"})
                    ack_y = await TestServer.receive_json(wb)
                    assert ack_y["persisted"] is True
                    await trio.sleep(2)  # an outage of a few seconds
                    await proxy.start()
                    # bob (node two) gets node one's message once the queue is flushed
                    got = await TestServer.receive_json(wb, 20)
                    assert got["content"] == "one->two" and got["id"] == ack_x["id"]
                    # node one asks its connections to resume: they may have missed frames
                    frames, code = await drain_until_closed(wa)
                    assert code == 1012
                    assert "two->one" not in [f.get("content") for f in frames]
                    while (await http_one.get("/readyz")).status_code != 200:
                        await trio.sleep(0.05)
                since = ack_x["id"] - 1  # the last id alice had seen before the cut, say
                async with one.connect(alice, query=f"since={since}") as wa2, \
                        two.connect(bob, query=f"since={ack_x['id']}") as wb2:
                    replayed = []
                    while True:
                        frame = await TestServer.receive_json(wa2)
                        if frame["type"] == "synced":
                            break
                        replayed.append(frame)
                    contents = [f["content"] for f in replayed]
                    # everything from the look-back window, each once, the missed one included
                    assert contents.count("two->one") == 1 and contents.count("one->two") == 1
                    assert len({f["id"] for f in replayed}) == len(replayed)
                    # bob's resume elsewhere also works (nothing new for him, nothing twice)
                    frames_b = []
                    while True:
                        frame = await TestServer.receive_json(wb2)
                        if frame["type"] == "synced":
                            # the look-back replayed from before since: the cursor is not
                            assert frame["last_id"] >= ack_x["id"]
                            break
                        frames_b.append(frame)
                    assert len({f["id"] for f in frames_b}) == len(frames_b)
        nursery.cancel_scope.cancel()


async def test_a_node_that_cannot_reach_redis_at_start_up_retries_says_so_then_serves(
    caplog: pytest.LogCaptureFixture,
) -> None:
    servers: list[TestServer] = []
    up = trio.Event()
    async with trio.open_nursery() as nursery, fresh_redis_prefix() as (url, prefix):
        proxy = CuttableProxy(nursery, int(url.rsplit(":", 1)[1].split("/")[0]))
        proxy.port = free_port()  # nothing listens there yet: refused

        async def node() -> None:
            settings = Settings(rate_limit=0, redis_url=f"redis://127.0.0.1:{proxy.port}/0",
                                redis_prefix=prefix)
            async with running_server(settings) as server:
                servers.append(server)
                up.set()
                await trio.sleep_forever()

        with trio.fail_after(30), caplog.at_level(logging.WARNING, logger="trionet.backplane"):
            nursery.start_soon(node)
            await trio.sleep(1.5)
            assert not up.is_set()  # start-up waits for Redis ...
            said = [r.getMessage() for r in caplog.records]
            assert any("unreachable" in m and "retrying" in m for m in said), said  # ... loudly
            await proxy.start()
            await up.wait()
            async with servers[0].http() as http:
                assert (await http.get("/readyz")).status_code == 200
        nursery.cancel_scope.cancel()


class _FailingOnce:
    """A sink whose first delivery raises (a bug in the listener's path, say)."""

    def __init__(self, *, fail: bool = True) -> None:
        self.delivered: list[bytes] = []
        self.controls: list[object] = []
        self.failed = not fail

    def deliver(self, batch: Sequence[Delivery]) -> int:
        if not self.failed:
            self.failed = True
            raise RuntimeError("boom")
        self.delivered.extend(d.frame for d in batch)
        return len(batch)

    def control(self, event: object) -> int:
        self.controls.append(event)
        return 0


async def test_a_listener_that_fails_is_restarted_counted_and_its_connections_resume() -> None:
    async with fresh_redis_prefix() as (url, prefix), trio.open_nursery() as nursery:
        m1, m2 = Metrics(), Metrics()
        b1 = RedisBackplane(url, prefix, "n1", metrics=m1)
        b2 = RedisBackplane(url, prefix, "n2", metrics=m2)
        sink = _FailingOnce()
        with trio.fail_after(30):
            await nursery.start(b1.run, sink)
            await nursery.start(b2.run, _FailingOnce(fail=False))
            await b1.publish_control(PresenceChanged(7, True, "n1"))
            await b1.joined(7)
            for frame in (b"first", b"second"):
                await b2.publish([Delivery(ToUsers(frozenset({7})), frame, "private")],
                                 stored=True)
                await trio.sleep(0.3)
            while not sink.delivered:
                await b2.publish([Delivery(ToUsers(frozenset({7})), b"later", "private")])
                await trio.sleep(0.3)
        assert m1.registry.get_sample_value("trionet_backplane_reconnects_total",
                                            {"reason": "error"}) == 1
        assert Resync("n1") in sink.controls  # its connections were told to resume
        assert b1.ready
        nursery.cancel_scope.cancel()


async def test_a_node_whose_lease_may_have_lapsed_allocates_no_ids_until_it_holds_one() -> None:
    async with trio.open_nursery() as nursery:
        proxy = CuttableProxy(nursery, int(DEFAULT_TEST_REDIS.rsplit(":", 1)[1].split("/")[0]))
        await proxy.start()
        settings = Settings(rate_limit=0, redis_lease=2,
                            redis_url=f"redis://127.0.0.1:{proxy.port}/0")
        async with running_cluster(1, settings) as (one,):
            alice, bob = await one.create_user("alice"), await one.create_user("bob")
            with trio.fail_after(60):
                async with one.connect(alice) as wa, one.connect(bob):
                    proxy.cut()
                    await trio.sleep(2)  # past the lease, less its margin
                    await TestServer.send_json(wa, {"type": "private", "to": bob.id,
                                                    "content": "x", "client_id": "f"})
                    error = await TestServer.receive_json(wa)
                    assert error["type"] == "error" and error["code"] == "unavailable"
                    assert error["client_id"] == "f"
                    await proxy.start()
                    frames, code = await drain_until_closed(wa)  # resume: 1012
                    assert code == 1012
                async with one.connect(alice) as wa:
                    await TestServer.send_json(wa, {"type": "private", "to": bob.id,
                                                    "content": "x", "client_id": "f"})
                    ack = await TestServer.receive_json(wa)
                    assert ack["type"] == "ack" and ack["persisted"] is True
        nursery.cancel_scope.cancel()


async def test_a_queue_that_overflowed_in_an_outage_makes_every_node_resume() -> None:
    async with fresh_redis_prefix() as (url, prefix), trio.open_nursery() as nursery:
        proxy = CuttableProxy(nursery, int(url.rsplit(":", 1)[1].split("/")[0]))
        await proxy.start()
        b1 = RedisBackplane(f"redis://127.0.0.1:{proxy.port}/0", prefix, "n1",
                            metrics=Metrics(), outbound_bytes=4096)
        b2 = RedisBackplane(url, prefix, "n2", metrics=Metrics())
        s1, s2 = _FailingOnce(fail=False), _FailingOnce(fail=False)
        with trio.fail_after(30):
            await nursery.start(b1.run, s1)
            await nursery.start(b2.run, s2)
            await b2.publish_control(PresenceChanged(7, True, "n2"))
            await b2.joined(7)
            proxy.cut()
            while b1.ready:
                await trio.sleep(0.05)
            for n in range(10):  # 10 KB of stored frames for a 4 KB queue: the oldest go
                await b1.publish([Delivery(ToUsers(frozenset({7})), b"%d" % n + b"x" * 1000,
                                           "private")], stored=True)
            await proxy.start()
            while Resync("n1") not in s2.controls:  # n2's connections are told to resume
                await trio.sleep(0.05)
        assert s2.delivered and len(s2.delivered) < 10  # what fitted came late; the rest not
        assert s2.delivered[-1].startswith(b"9")  # the newest were kept
        nursery.cancel_scope.cancel()


async def test_a_malformed_message_on_the_backplane_is_ignored_not_fatal() -> None:
    import coredis
    import msgspec

    async with fresh_redis_prefix() as (url, prefix), trio.open_nursery() as nursery:
        metrics = Metrics()
        backplane = RedisBackplane(url, prefix, "n1", metrics=metrics)
        sink = _FailingOnce(fail=False)
        with trio.fail_after(20):
            await nursery.start(backplane.run, sink)
            client = coredis.Redis.from_url(url)
            async with client:
                for junk in (b"\x00junk", msgspec.msgpack.encode({"n": "x", "s": 1, "i": [
                        {"e": "deliver", "target": [1], "frame": b"f", "kind": "k"}]}),
                             msgspec.msgpack.encode({"n": "x", "s": 2, "i": "nope"})):
                    await client.publish(f"{prefix}:all", junk)
                good = msgspec.msgpack.encode({"n": "x", "s": 3, "i": [
                    {"e": "deliver", "target": {"to": "all"}, "frame": b"ok", "kind": "k"}]})
                await client.publish(f"{prefix}:all", good)
            while not sink.delivered:
                await trio.sleep(0.05)
        assert sink.delivered == [b"ok"]
        assert not metrics.registry.get_sample_value(
            "trionet_backplane_reconnects_total", {"reason": "error"})
        nursery.cancel_scope.cancel()


async def test_a_stuck_redis_connection_is_noticed_and_the_node_recovers() -> None:
    async with trio.open_nursery() as nursery:
        proxy = CuttableProxy(nursery, int(DEFAULT_TEST_REDIS.rsplit(":", 1)[1].split("/")[0]))
        await proxy.start()
        settings = Settings(rate_limit=0, redis_url=f"redis://127.0.0.1:{proxy.port}/0",
                            redis_lease=6)
        async with running_cluster(1, settings) as (one,):
            metrics = one.services.metrics.registry
            with trio.fail_after(60):
                async with one.http() as http:
                    proxy.delay = 3600  # the connection stays open and says nothing
                    while (await http.get("/readyz")).status_code != 503:
                        await trio.sleep(0.1)
                    lost = sum(metrics.get_sample_value("trionet_backplane_reconnects_total",
                                                        {"reason": r}) or 0
                               for r in ("connection", "deaf", "lease", "error"))
                    assert lost >= 1  # noticed, and counted
                    proxy.delay = 0
                    proxy.cut()  # the stuck pipes go; new connections get through at once
                    await proxy.start()
                    while (await http.get("/readyz")).status_code != 200:
                        await trio.sleep(0.1)
        nursery.cancel_scope.cancel()
