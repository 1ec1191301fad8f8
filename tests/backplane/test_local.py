"""The in-process backplane hands everything to its node's sink, only while it runs."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import trio

from trionet.backplane import Backplane, LocalBackplane
from trionet.core.events import ControlEvent, Delivery, MembershipChanged
from trionet.core.routing import ToAll


class Sink:
    def __init__(self) -> None:
        self.batches: list[list[Delivery]] = []
        self.events: list[ControlEvent] = []

    def deliver(self, batch: Sequence[Delivery]) -> int:
        self.batches.append(list(batch))
        return len(batch)

    def control(self, event: ControlEvent) -> int:
        self.events.append(event)
        return 3


async def test_publish_reaches_the_sink_while_running_and_not_after() -> None:
    backplane: Backplane = LocalBackplane("n1")
    sink = Sink()
    with pytest.raises(RuntimeError, match="not running"):
        await backplane.publish([])
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(backplane.run, sink)
            batch = [Delivery(ToAll(), b"a", "x"), Delivery(ToAll(), b"b", "x")]
            assert await backplane.publish(batch) == 2
            assert await backplane.publish_control(MembershipChanged(1)) == 3
            nursery.cancel_scope.cancel()
    assert sink.batches == [batch] and sink.events == [MembershipChanged(1)]
    with pytest.raises(RuntimeError, match="not running"):
        await backplane.publish_control(MembershipChanged(1))
