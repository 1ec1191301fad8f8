"""The fan-out: turns what the backplane hands this node into puts on its connections.

It is the node's :class:`~trionet.backplane.BackplaneSink`. Each delivery is a
``send_nowait`` of an already-encoded frame into every addressed connection's bounded
outbox; a full outbox marks a slow consumer, which is unregistered and closed with 4008 once
its queued frames are written. A group target is resolved against the freshest member list
this node knows (membership may change while a message is committed).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from ..core.errors import CloseCode
from ..core.events import (
    ControlEvent,
    Delivery,
    DisconnectUser,
    MembershipChanged,
    PresenceChanged,
    Resync,
    SessionEnded,
)
from ..core.routing import ToGroup, recipients
from ..metrics import Metrics
from .membership import MembershipCache
from .registry import Conn, Registry, ignore_presence

__all__ = ["Fanout"]

log = logging.getLogger("trionet.manager")


class Fanout:
    """Delivers to this node's connections and applies control events to it.

    ``on_presence(user_id, online)`` gets the presence changes of this node's own
    connections (to announce them); it must not block.
    """

    def __init__(
        self,
        registry: Registry,
        membership: MembershipCache,
        metrics: Metrics,
        *,
        on_presence: Callable[[int, bool], None] = ignore_presence,
    ) -> None:
        self.registry = registry
        self.membership = membership
        self.metrics = metrics
        self._on_presence = on_presence

    def deliver(self, batch: Sequence[Delivery]) -> int:
        users = self.registry.users
        node = self.registry.node
        frames_out = self.metrics.frames_out
        slow: list[Conn] | None = None
        sent = 0
        for delivery in batch:
            target = delivery.target
            if isinstance(target, ToGroup):
                current = self.membership.peek(target.group_id)
                if current is not None:
                    target = ToGroup(target.group_id, current, target.exclude)
            frame = delivery.frame
            for conn in recipients(target, users, node):
                if conn.push(frame):
                    sent += 1
                else:
                    slow = slow or []
                    slow.append(conn)
            frames_out.labels(delivery.kind).inc()
        if slow:  # closed after the loop: closing changes the registry being walked
            for conn in slow:
                if not conn.closed:
                    log.info("closing slow consumer %r", conn)
                    self.metrics.slow_consumers.inc()
                    self.registry.close(conn, CloseCode.SLOW_CONSUMER)
        self.metrics.deliveries.inc(sent)
        return sent

    def control(self, event: ControlEvent) -> int:
        if isinstance(event, SessionEnded):
            return self.registry.end_session(event.session_key)
        if isinstance(event, DisconnectUser):
            return self.registry.disconnect(event.user_id, event.code)
        if isinstance(event, MembershipChanged):
            self.membership.invalidate(event.group_id)
            return 0
        if isinstance(event, PresenceChanged):
            if event.node == self.registry.node:
                self._on_presence(event.user_id, event.online)
            return 0
        if isinstance(event, Resync):  # frames for them may be lost: they reconnect, resume
            closed = self.registry.connection_count
            self.registry.close_all(CloseCode.SERVICE_RESTART)
            return closed
        raise TypeError(f"not a control event: {event!r}")
