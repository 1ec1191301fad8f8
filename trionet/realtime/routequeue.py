"""The queue into the central manager task: the one way anything is routed.

Committed batches (from the committer), ephemeral sends (readers' typing and custom types,
broadcasts, presence, the server API's pushes) and control events all wait in one bounded
channel, so that their order and their backpressure live in one place: a sender whose frame
does not fit waits (``send``), or, where it cannot wait, the event is dropped and counted
(``control_nowait``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import trio

from ..core.events import ControlEvent, Delivery
from ..metrics import Metrics
from .committer import Pending

__all__ = ["Control", "Job", "RouteQueue", "Send", "WAKE", "Wake"]


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


class Wake:
    """Tells the manager task that control events wait (they have a lane of their own)."""

    __slots__ = ()


WAKE = Wake()

Job = list[Pending] | Send | Control | Wake


class RouteQueue:
    """A bounded channel of :data:`Job`; the manager task is its only reader.

    Control events queued without waiting (``control_nowait``: presence changes, membership
    changes) take a lane of their own, as bounded, which the manager empties before each job:
    a queue full of frames neither drops nor delays them. Once :meth:`close` ran (the manager
    stopped), every job still queued is settled and new ones raise ``trio.ClosedResourceError``:
    no caller waits for a task that is gone.
    """

    def __init__(self, size: int = 4096, *, metrics: Metrics | None = None) -> None:
        self._size = size
        self._send, self.receiver = trio.open_memory_channel[Job](size)
        self._controls: deque[Control] = deque()
        #: control events dropped because their lane was full
        self.dropped = 0
        self._dropped = None if metrics is None else metrics.control_dropped

    def take_controls(self) -> list[Control]:
        """The control events queued without waiting, oldest first (for the manager task)."""
        if not self._controls:  # the common case, before every job
            return []
        taken = list(self._controls)
        self._controls.clear()
        return taken

    def close(self) -> list[Job]:
        """Refuse new jobs; returns the ones still queued, to be settled unrouted."""
        self._send.close()
        left: list[Job] = list(self.take_controls())
        while True:
            try:
                left.append(self.receiver.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                return left

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
        """Queue a control event without waiting (for synchronous callers), ahead of the
        queued frames; False, and counted in ``dropped``, when its lane is full."""
        if len(self._controls) >= self._size:
            self.dropped += 1
            if self._dropped is not None:
                self._dropped.inc()
            return False
        self._controls.append(Control(event, None))
        try:
            self._send.send_nowait(WAKE)
        except trio.WouldBlock:
            pass  # the channel is full of jobs: the manager takes the lane before the next one
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._controls.pop()
            return False
        return True
