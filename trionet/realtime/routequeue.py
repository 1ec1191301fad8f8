"""The queue into the central manager task: the one way anything is routed.

Committed batches (from the committer), ephemeral sends (readers' typing and custom types,
broadcasts, presence, the server API's pushes) and control events all wait in one bounded
channel, so that their order and their backpressure live in one place: a sender whose frame
does not fit waits (``send``), or, where it cannot wait, the event is dropped and counted
(``control_nowait``).
"""

from __future__ import annotations

from collections.abc import Sequence

import trio

from ..core.events import ControlEvent, Delivery
from ..metrics import Metrics
from .committer import Pending

__all__ = ["Control", "Job", "RouteQueue", "Send"]


class Send:
    """Ephemeral deliveries; ``done`` (when asked for) is set once they are routed, with
    ``count`` the frames queued to this node's connections."""

    __slots__ = ("deliveries", "done", "count")

    def __init__(self, deliveries: Sequence[Delivery], done: trio.Event | None) -> None:
        self.deliveries = deliveries
        self.done = done
        self.count = 0


class Control:
    """A control event; ``done`` and ``count`` as for :class:`Send` (connections closed)."""

    __slots__ = ("event", "done", "count")

    def __init__(self, event: ControlEvent, done: trio.Event | None) -> None:
        self.event = event
        self.done = done
        self.count = 0


Job = list[Pending] | Send | Control


class RouteQueue:
    """A bounded channel of :data:`Job`; the manager task is its only reader."""

    def __init__(self, size: int = 4096, *, metrics: Metrics | None = None) -> None:
        self._send, self.receiver = trio.open_memory_channel[Job](size)
        #: control events dropped because the queue was full
        self.dropped = 0
        self._dropped = None if metrics is None else metrics.control_dropped

    async def committed(self, batch: list[Pending]) -> None:
        """Route a committed (or given-up-on) batch: the committer's ``deliver``."""
        await self._send.send(batch)

    async def send(self, deliveries: Sequence[Delivery], *, wait: bool = False) -> int:
        """Route ephemeral deliveries, waiting while the queue is full; with ``wait``, until
        they are routed, and return how many frames this node's connections got."""
        job = Send(deliveries, trio.Event() if wait else None)
        await self._send.send(job)
        if job.done is None:
            return 0
        await job.done.wait()
        return job.count

    async def control(self, event: ControlEvent) -> int:
        """Apply a control event everywhere; returns once this node applied it, with how many
        of its connections it closed."""
        job = Control(event, trio.Event())
        await self._send.send(job)
        assert job.done is not None
        await job.done.wait()
        return job.count

    def control_nowait(self, event: ControlEvent) -> bool:
        """Queue a control event without waiting (for synchronous callers); False, and
        counted in ``dropped``, when the queue is full."""
        try:
            self._send.send_nowait(Control(event, None))
        except trio.WouldBlock:
            self.dropped += 1
            if self._dropped is not None:
                self._dropped.inc()
            return False
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        return True
