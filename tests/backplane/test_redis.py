"""The Redis backplane against the machine's Redis (a fresh key prefix per test)."""

from __future__ import annotations

from collections.abc import Sequence

import trio

from trionet.backplane.redis import RedisBackplane
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
