"""Presence events: tell related users when someone's first connection opens or last closes.

The registry reports a user's first connection opening and last closing as a
``PresenceChanged`` control event; the manager task publishes it, and the fan-out of the node
that holds the connections calls :meth:`Presence.hook`, which only queues the change (a full
queue drops it and counts the drop). One task, :meth:`Presence.run`, looks up who should
hear of it in the store and routes one encoded frame through the manager's queue::

    {"type": "presence", "user_id": 7, "online": true, "timestamp": "2026-..."}

Recipients are the online users related to the user, at most ``limit`` of them (past the
cap, clients poll ``GET /api/users/online``): those who share an accepted group with them, or
have a private conversation with them in which **both** sides have written
(``Store.related_users``). One unsolicited message is no relation: a stranger
who writes once learns nothing of the recipient's comings and goings until they answer. A
second tab opening or closing sends nothing, because the registry only reports a user's first
and last connection.

The look-ups go through the store, one at a time; the store is closed only after this task
has stopped (``Services.stop`` first, then ``Store.aclose``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

import trio
from prometheus_client import Counter

from ..core import protocol
from ..core.clock import now_iso
from ..core.events import Delivery
from ..core.routing import ToUsers
from ..metrics import Metrics
from ..store import BlockStore, MessageStore
from .routequeue import RouteQueue

__all__ = ["Presence"]

log = logging.getLogger("trionet.presence")


class _PresenceStore(MessageStore, BlockStore, Protocol):
    pass


class Presence:
    """The presence pump. Give :meth:`hook` to the manager as ``on_presence``; start :meth:`run`.

    ``active`` is asked before queueing and before announcing: while it is false (the server
    is draining and everyone is being disconnected) changes are ignored.
    """

    def __init__(
        self,
        store: _PresenceStore,
        is_online: Callable[[int], bool],
        queue: RouteQueue,
        metrics: Metrics,
        *,
        limit: int,
        active: Callable[[], bool] = lambda: True,
        queue_size: int = 4096,
    ) -> None:
        self._store = store
        self._is_online = is_online
        self._queue = queue
        self.limit = limit
        self._active = active
        self._send, self._recv = trio.open_memory_channel[tuple[int, bool, str]](queue_size)
        self.events = Counter(
            "trionet_presence_events",
            "Presence changes (first connection opened, last closed), by outcome",
            ["outcome"],
            registry=metrics.registry,
        )

    def hook(self, user_id: int, online: bool) -> None:
        """Queue a presence change; never blocks (a full queue drops the change)."""
        if self.limit <= 0 or not self._active():
            return
        try:
            self._send.send_nowait((user_id, online, now_iso()))
        except trio.WouldBlock:
            self.events.labels("dropped").inc()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Announce queued presence changes, in order, until cancelled."""
        task_status.started()
        async for user_id, online, timestamp in self._recv:
            if not self._active():
                continue
            try:
                await self.announce(user_id, online, timestamp)
            except Exception:  # a failed look-up must not stop presence (or the server)
                self.events.labels("failed").inc()
                log.exception("presence look-up for user %d failed", user_id)

    async def announce(self, user_id: int, online: bool, timestamp: str) -> int:
        """Send one presence frame to the related online users; returns how many connections."""
        # is_online is one dict membership test: safe to call from a store's worker thread
        peers = await self._store.related_users(user_id, wanted=self._is_online,
                                                limit=self.limit)
        if peers:  # a block hides each side's comings and goings from the other
            hidden = await self._store.blocked_among(user_id, peers)
            if hidden:
                peers = [p for p in peers if p not in hidden]
        if not peers:
            self.events.labels("nobody").inc()
            return 0
        frame = protocol.encode(
            {"type": "presence", "user_id": user_id, "online": online, "timestamp": timestamp}
        )
        self.events.labels("sent").inc()
        return await self._queue.send([Delivery(ToUsers(peers), frame, "presence")], wait=True)
