"""The fan-out: turns what the backplane hands this node into puts on its connections.

It is the node's :class:`~trionet.backplane.BackplaneSink`. Each delivery hands an
already-encoded frame to every addressed connection (:meth:`Conn.push`): written to the socket
at once when the connection's writer is idle (the write-through path), otherwise a
``send_nowait`` into its bounded outbox. A batch of several deliveries goes to each recipient
in one write (or into its outbox in one go), in the batch's order. A full outbox marks a slow
consumer, which is unregistered and closed with 4008 once its queued frames are written. A
group target is resolved against the freshest member list this node knows (membership may
change while a message is committed).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from ..core.errors import CloseCode
from ..core.events import (
    BlocksChanged,
    ControlEvent,
    Delivery,
    DisconnectUser,
    MembershipChanged,
    PresenceChanged,
    Resync,
    SessionEnded,
    UserDeleted,
)
from ..core.routing import Target, ToGroup, recipients, skipped_conn
from ..metrics import Metrics
from .blocks import BlockCache
from .membership import MembershipCache
from .registry import FULL, WRITTEN, Conn, Registry, ignore_presence

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
        blocks: BlockCache | None = None,
        on_user_deleted: Callable[[int], None] = lambda user_id: None,
    ) -> None:
        self.registry = registry
        self.membership = membership
        self.metrics = metrics
        self._on_presence = on_presence
        self.blocks = blocks
        self._on_user_deleted = on_user_deleted

    def deliver(self, batch: Sequence[Delivery]) -> int:
        if len(batch) == 1:
            return self._deliver_one(batch[0])
        users = self.registry.users
        node = self.registry.node
        frames_out = self.metrics.frames_out
        # one write (or queueing) per recipient for the whole batch, in the batch's order
        per_conn: dict[Conn, list[bytes]] = {}
        # a batch's messages to one group share its member set: its connections here are
        # looked up once, each message leaving out its own sender's (the set is kept in the
        # value, so that its id stays its own while the batch is handled)
        resolved: dict[int, tuple[object, list[Conn]]] = {}
        for delivery in batch:
            frame = delivery.frame
            target = self._current(delivery.target)
            if not isinstance(target, ToGroup):
                conns: Iterable[Conn] = recipients(target, users, node)
            else:
                ids = target.members
                found = resolved.get(id(ids))
                if found is None:
                    everyone = list(recipients(replace(target, exclude=None), users, node))
                    resolved[id(ids)] = (ids, everyone)
                else:
                    everyone = found[1]
                skip = skipped_conn(target, node)
                conns = everyone if skip is None else [c for c in everyone if c.id != skip]
            for conn in conns:
                frames = per_conn.get(conn)
                if frames is None:
                    per_conn[conn] = [frame]
                else:
                    frames.append(frame)
            frames_out.labels(delivery.kind).inc()
        slow: list[Conn] | None = None
        sent = written = 0
        for conn, frames in per_conn.items():
            result = conn.push(frames[0]) if len(frames) == 1 else conn.push_many(frames)
            if result == FULL:
                slow = slow or []
                slow.append(conn)
                continue
            sent += len(frames)
            if result == WRITTEN:
                written += len(frames)
        return self._count(sent, written, slow)

    def _deliver_one(self, delivery: Delivery) -> int:
        frame = delivery.frame
        slow: list[Conn] | None = None
        sent = written = 0
        for conn in recipients(self._current(delivery.target), self.registry.users,
                               self.registry.node):
            result = conn.push(frame)
            if result == WRITTEN:
                written += 1
            elif result == FULL:
                slow = slow or []
                slow.append(conn)
                continue
            sent += 1
        self.metrics.frames_out.labels(delivery.kind).inc()
        return self._count(sent, written, slow)

    def _current(self, target: Target) -> Target:
        """A group target with the freshest member list this node knows."""
        if isinstance(target, ToGroup):
            current = self.membership.peek(target.group_id)
            if current is not None:
                return ToGroup(target.group_id, current, target.exclude)
        return target

    def _count(self, sent: int, written: int, slow: list[Conn] | None) -> int:
        if slow:  # closed after the loop: closing changes the registry being walked
            for conn in slow:
                if not conn.closed:
                    log.info("closing slow consumer %r", conn)
                    self.metrics.slow_consumers.inc()
                    self.registry.close(conn, CloseCode.SLOW_CONSUMER)
        self.metrics.deliveries.inc(sent)
        if written:
            self.metrics.written_through.inc(written)
        return sent

    def control(self, event: ControlEvent) -> int:
        if isinstance(event, SessionEnded):
            return self.registry.end_session(event.session_key)
        if isinstance(event, DisconnectUser):
            return self.registry.disconnect(event.user_id, event.code)
        if isinstance(event, MembershipChanged):
            self.membership.invalidate(event.group_id)
            return 0
        if isinstance(event, UserDeleted):
            self._on_user_deleted(event.user_id)
            if self.blocks is not None:
                self.blocks.invalidate(event.user_id)
            return self.registry.disconnect(event.user_id, CloseCode.SESSION_ENDED)
        if isinstance(event, BlocksChanged):
            if self.blocks is not None:
                for user_id in event.user_ids:
                    self.blocks.invalidate(user_id)
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
