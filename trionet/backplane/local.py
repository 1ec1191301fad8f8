"""The in-process backplane: one node, which is the whole deployment."""

from __future__ import annotations

from collections.abc import Sequence

import trio

from ..core.events import ControlEvent, Delivery
from .interface import BackplaneSink

__all__ = ["LocalBackplane"]


class LocalBackplane:
    """Hands every batch and event straight to this node's sink (no copy, no encoding)."""

    def __init__(self, node: str = "local") -> None:
        self.node = node
        self._sink: BackplaneSink | None = None

    async def run(
        self, sink: BackplaneSink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        self._sink = sink
        try:
            task_status.started()
            await trio.sleep_forever()
        finally:
            self._sink = None

    def _bound(self) -> BackplaneSink:
        if self._sink is None:
            raise RuntimeError("the backplane is not running")
        return self._sink

    async def publish(self, batch: Sequence[Delivery]) -> int:
        return self._bound().deliver(batch)

    async def publish_control(self, event: ControlEvent) -> int:
        return self._bound().control(event)
