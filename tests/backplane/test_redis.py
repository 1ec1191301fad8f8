"""The Redis backplane against the machine's Redis (a fresh key prefix per test)."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Sequence
from pathlib import Path

import coredis
import pytest
import trio
from faults import free_port
from redis_helpers import open_link, own_redis

from trionet.backplane.redis import RedisBackplane
from trionet.backplane.resp import LinkError
from trionet.core.events import ControlEvent, Delivery, PresenceChanged
from trionet.core.routing import ToGroup, ToUsers
from trionet.metrics import Metrics
from trionet.testing import fresh_redis_prefix


class Sink:
    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.events: list[ControlEvent] = []

    def deliver(self, batch: Sequence[Delivery]) -> int:
        self.frames.extend(d.frame for d in batch)
        return 0

    def control(self, event: ControlEvent) -> int:
        self.events.append(event)
        return 0


async def sender_and_receiver(nursery: trio.Nursery, url: str, prefix: str
                              ) -> tuple[RedisBackplane, Sink]:
    """Two running nodes: ``n0`` (returned, to send with) and ``n1``, which holds user 7
    (its sink returned)."""
    sender = RedisBackplane(url, prefix, "n0", metrics=Metrics())
    receiver = RedisBackplane(url, prefix, "n1", metrics=Metrics())
    sink = Sink()
    await nursery.start(sender.run, Sink())
    await nursery.start(receiver.run, sink)
    await receiver.publish_control(PresenceChanged(7, True, "n1"))
    await receiver.joined(7)
    return sender, sink


async def test_a_batch_reaches_only_the_nodes_holding_its_recipients_even_thousands() -> None:
    async with fresh_redis_prefix() as (url, prefix), trio.open_nursery() as nursery:
        nodes = [RedisBackplane(url, prefix, f"n{i}", metrics=Metrics()) for i in range(3)]
        sinks = [Sink() for _ in nodes]
        with trio.fail_after(20):
            for node, sink in zip(nodes, sinks, strict=True):
                await nursery.start(node.run, sink)
            await nodes[1].publish_control(PresenceChanged(9_999, True, "n1"))
            await nodes[1].joined(9_999)
            # 10,000 recipients, one of them on n1, none on n2: n1 alone gets it, once
            await nodes[0].publish([Delivery(ToUsers(frozenset(range(10_000))), b"many",
                                             "private")], stored=True)
            await nodes[0].publish([Delivery(ToGroup(5, frozenset({9_999})), b"group",
                                             "group")], stored=True)
            while len(sinks[1].frames) < 2:
                await trio.sleep(0.02)
            await trio.sleep(0.2)
        assert sinks[1].frames == [b"many", b"group"]
        assert sinks[2].frames == []  # it holds none of them: it hears nothing
        assert sinks[0].frames == [b"many", b"group"]  # the publisher's own, directly
        nursery.cancel_scope.cancel()


async def test_a_command_redis_refuses_costs_its_own_op_only_alone_or_in_a_pipeline() -> None:
    """A route Redis refuses (here a ``where`` key of the wrong type: WRONGTYPE) is counted
    as dropped and marks the node for a resume, and the ops around it still go: sent alone
    and among others in one pipeline."""
    async with fresh_redis_prefix() as (url, prefix), trio.open_nursery() as nursery:
        with trio.fail_after(20):
            sender, received = await sender_and_receiver(nursery, url, prefix)
            async with coredis.Redis.from_url(url) as redis:
                await redis.set(f"{prefix}:where:666", "not a set")

            def dropped() -> float:
                return sender.m_dropped.labels("route")._value.get()

            def send(frame: bytes, to: int) -> Delivery:
                return Delivery(ToUsers(frozenset({to})), frame, "private")

            await sender.publish([send(b"refused alone", 666)], stored=True)
            while dropped() < 1:
                await trio.sleep(0.01)
            assert sender._lost
            await sender.publish([send(b"after it", 7)], stored=True)
            while len(received.frames) < 1:
                await trio.sleep(0.01)
            # three queued at once go in one pipeline: only the middle one is refused
            sender._lost = False
            for frame, to in ((b"one", 7), (b"refused among others", 666), (b"three", 7)):
                await sender.publish([send(frame, to)], stored=True)  # queues: no yield
            while len(received.frames) < 3:
                await trio.sleep(0.01)
            assert dropped() == 2 and sender._lost
        assert received.frames == [b"after it", b"one", b"three"]
        nursery.cancel_scope.cancel()



async def test_a_flushed_script_cache_costs_nothing() -> None:
    """``SCRIPT FLUSH`` (an operator's, or a Redis restarted without its cache) between two
    sends: the node neither reconnects nor loses one (harmless to other clients of this
    Redis: they load a script again when it is refused)."""
    async with fresh_redis_prefix() as (url, prefix), trio.open_nursery() as nursery:
        with trio.fail_after(20):
            sender, received = await sender_and_receiver(nursery, url, prefix)
            for frame in (b"one", b"two"):
                await sender.publish([Delivery(ToUsers(frozenset({7})), frame, "private")],
                                     stored=True)
                while received.frames[-1:] != [frame]:
                    await trio.sleep(0.01)
                async with coredis.Redis.from_url(url) as redis:
                    await redis.script_flush()
            await trio.sleep(0.2)
        assert received.frames == [b"one", b"two"]
        reconnects = sender.m_reconnects.collect()[0].samples
        assert all(sample.value == 0 for sample in reconnects), reconnects
        nursery.cancel_scope.cancel()


async def test_a_tls_redis_through_rediss_urls_whole_backplane(tmp_path: Path) -> None:
    """``rediss://`` with the URL's CA: coredis's client and both links speak TLS, and two
    nodes route through it; a certificate the URL's CA did not sign is refused."""
    openssl = shutil.which("openssl")
    assert openssl is not None, "openssl is not installed (scripts/test installs it)"
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    other_cert, other_key = tmp_path / "other.pem", tmp_path / "other-key.pem"
    for c, k in ((cert, key), (other_cert, other_key)):
        await trio.run_process([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                                "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                                "-subj", "/CN=127.0.0.1", "-addext",
                                "subjectAltName=IP:127.0.0.1", "-keyout", str(k), "-out",
                                str(c)], capture_stdout=True, capture_stderr=True)
    port = free_port()

    def listening() -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    async with own_redis(listening, "--bind", "127.0.0.1", "--tls-port", str(port),
                         "--tls-cert-file", str(cert), "--tls-key-file", str(key),
                         "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no"):
        url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={cert}"
        with trio.fail_after(15):
            link = await open_link(url)
            assert await link.pipeline([("PING",)]) == [b"PONG"]
            await link.aclose()
            with pytest.raises(LinkError, match="broke"):  # (certificate verify failed)
                await open_link(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={other_cert}")
            async with trio.open_nursery() as nursery:
                sender, received = await sender_and_receiver(nursery, url, "tls")
                await sender.publish([Delivery(ToUsers(frozenset({7})), b"over tls",
                                               "private")], stored=True)
                while not received.frames:
                    await trio.sleep(0.01)
                assert received.frames == [b"over tls"]
                nursery.cancel_scope.cancel()
