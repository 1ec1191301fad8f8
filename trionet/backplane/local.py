"""The in-process backplane: one node, which is the whole deployment."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import trio

from ..core.events import ControlEvent, Delivery
from .interface import BackplaneSink

__all__ = ["LocalBackplane"]


class LocalBackplane:
    """Hands every batch and event straight to this node's sink (no copy, no encoding)."""

    def __init__(self, node: str = "local",
                 is_online: Callable[[int], bool] = lambda user_id: False) -> None:
        self.node = node
        self.ready = True
        self._is_online = is_online
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

    async def publish(self, batch: Sequence[Delivery], *, stored: bool = False) -> int:
        return self._bound().deliver(batch)

    async def publish_control(self, event: ControlEvent) -> int:
        return self._bound().control(event)

    def is_online(self, user_id: int) -> bool:
        """This node's registry says (it is the whole deployment)."""
        return self._is_online(user_id)

    async def flush(self) -> None:
        """Everything was handed over when it was published."""

    async def joined(self, user_id: int) -> None:
        """Registered is reachable: nothing to wait for."""
