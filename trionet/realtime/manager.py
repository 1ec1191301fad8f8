"""The central manager task, and the manager API an application calls.

One task per process routes everything: committed batches of private, group, custom and
notification records, ephemeral sends (typing, custom types, broadcasts, presence, the server
API's pushes) and control events. They reach it through one bounded :class:`RouteQueue`; it
publishes each to the :class:`~trionet.backplane.Backplane` once (a committed batch as one
list of deliveries), and the backplane hands them to the :class:`~.fanout.Fanout` of every
node, this one included. Acks go straight to the sending connection once its record is
routed.

The manager never awaits a client: the fan-out puts already-encoded frames into bounded
outboxes. The seed's API (:meth:`Manager.send_to_user`, :meth:`~Manager.broadcast_to_group`,
:meth:`~Manager.broadcast_to_all`, :meth:`~Manager.is_online`, :meth:`~Manager.notify`) is
the public face.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import trio

from ..backplane import Backplane
from ..core import protocol
from ..core.dedupe import reused_message
from ..core.errors import CloseCode, ErrorCode
from ..core.events import (
    BlocksChanged,
    Delivery,
    DisconnectUser,
    MembershipChanged,
    SessionEnded,
    UserDeleted,
)
from ..core.routing import Target, ToAll, ToUsers, group_target
from ..metrics import Metrics
from .blocks import BlockCache
from .committer import Pending
from .fanout import Fanout
from .membership import MembershipCache
from .notifier import Notifier
from .registry import Conn, Registry, ignore_presence
from .routequeue import Control, Job, RouteQueue, Send, Wake

__all__ = ["Conn", "Manager", "reused_error"]

log = logging.getLogger("trionet.manager")

#: how often connections with an expired credential are looked for
SWEEP_SECONDS = 15.0


class Manager:
    """Start :meth:`run` with ``nursery.start`` before serving."""

    def __init__(
        self,
        *,
        registry: Registry,
        membership: MembershipCache,
        backplane: Backplane,
        queue: RouteQueue,
        notifier: Notifier,
        metrics: Metrics,
        on_presence: Callable[[int, bool], None] = ignore_presence,
        blocks: BlockCache | None = None,
        on_user_deleted: Callable[[int], None] = lambda user_id: None,
    ) -> None:
        self.registry = registry
        self.membership = membership
        self.backplane = backplane
        self.queue = queue
        self.notifier = notifier
        self.metrics = metrics
        self.fanout = Fanout(registry, membership, metrics, on_presence=on_presence,
                             blocks=blocks, on_user_deleted=on_user_deleted)

    # -- the public face ----------------------------------------------------------------------

    def is_online(self, user_id: int) -> bool:
        """True while the user has a connection to any node of the deployment (to this
        process, without a backplane between processes)."""
        return self.backplane.is_online(user_id)

    async def send_to_user(self, user_id: int, frame: dict[str, Any] | str | bytes) -> int:
        """Push a frame (a dict, or JSON text) to every connection of one user; not persisted.
        Returns how many of this process's connections it was queued to."""
        return await self.send(ToUsers((user_id,)), frame)

    async def broadcast_to_group(
        self, group_id: int, frame: dict[str, Any] | str | bytes
    ) -> int:
        """Push a frame to every connection of the group's accepted members (not persisted)."""
        members = await self.membership.members(group_id)
        if not members:
            return 0
        return await self.send(group_target(group_id, members, None), frame)

    async def broadcast_to_all(self, frame: dict[str, Any] | str | bytes) -> int:
        """Push a frame to every connection (not persisted)."""
        return await self.send(ToAll(), frame)

    async def send(self, target: Target, frame: dict[str, Any] | str | bytes) -> int:
        """Push a frame to whatever ``target`` addresses (not persisted); returns once it is
        queued, with how many of this process's connections got it."""
        return await self.queue.send([Delivery(target, _encoded(frame), _kind(frame))],
                                     wait=True)

    async def notify(
        self, user_id: int, subtype: str, message: str, /, **payload: Any
    ) -> dict[str, Any]:
        """Persist a notification and push it to the user's connections; returns the frame
        once it is stored (or given up on) and queued to every open connection of the user.

        ``payload`` keys join the frame beside ``subtype`` and ``message``; they never
        replace ``type``, ``id``, ``subtype``, ``message`` or ``timestamp``.
        """
        return (await self.notifier.notify_many([user_id], subtype, message, payload))[0]

    async def notify_many(
        self, user_ids: Iterable[int], subtype: str, message: str, payload: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """:meth:`notify` for several users at once, committed together."""
        return await self.notifier.notify_many(user_ids, subtype, message, payload)

    def blocks_changed(self, *user_ids: int) -> None:
        """Call when a block between these users was made or lifted: their cached block
        relations are forgotten here at once, and on every node through the backplane."""
        if self.fanout.blocks is not None:
            for user_id in user_ids:
                self.fanout.blocks.invalidate(user_id)
        self.queue.control_nowait(BlocksChanged(tuple(user_ids)))

    def membership_changed(self, group_id: int) -> None:
        """Call when a group's membership changed outside trionet's API: its cached members
        are forgotten here at once, and on every node through the backplane."""
        self.membership.invalidate(group_id)
        self.queue.control_nowait(MembershipChanged(group_id))

    async def end_session(self, session_key: str) -> int:
        """Close (4001) every connection opened with this session; returns how many of this
        process's it closed. A socket of the session still in its handshake is refused."""
        self.registry.revoke(session_key)
        return await self.queue.control(SessionEnded(session_key))

    async def user_deleted(self, user_id: int) -> int:
        """Close (4001) every connection of a deleted account and forget what is cached of
        it, on every node; returns how many of this process's connections it closed."""
        return await self.queue.control(UserDeleted(user_id))

    async def disconnect_user(self, user_id: int, code: int = CloseCode.SESSION_ENDED) -> int:
        """Close every connection of a user (4001 unless ``code`` says otherwise), for a
        banned or deleted account; returns how many of this process's it closed."""
        return await self.queue.control(DisconnectUser(user_id, code))

    # -- the task -----------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Route everything queued until cancelled; sweep expired sessions every 15 s."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self.backplane.run, self.fanout)
            nursery.start_soon(self._sweep)
            task_status.started()
            try:
                async for job in self.queue.receiver:
                    for control in self.queue.take_controls():
                        await self._run_job(control)
                    await self._run_job(job)
            finally:  # stopped: nobody may wait for a routing that will not happen
                for job in self.queue.close():
                    _settle(job)

    async def _run_job(self, job: Job) -> None:
        try:
            await self._route(job)
        except Exception:  # a bug in one job must not stop routing
            log.exception("routing failed")
        finally:  # "done" means routed: the frames are in their connections' queues
            _settle(job)

    async def _route(self, job: Job) -> None:
        if isinstance(job, Wake):
            return
        if isinstance(job, Send):
            job.count = await self.backplane.publish(job.deliveries)
        elif isinstance(job, Control):
            job.count = await self.backplane.publish_control(job.event)
        else:
            await self._route_committed(job)

    async def _route_committed(self, batch: list[Pending]) -> None:
        """Publish a committed batch once, then ack each record to its sender."""
        deliveries: list[Delivery] = []
        acks: list[tuple[Conn, bytes]] = []
        for p in batch:
            frame = p.frame
            if frame is None:
                continue
            origin = p.origin
            if p.duplicate_of is not None:  # a resend of a stored message: its original ack
                if p.client_id is not None and origin is not None:
                    oid, ots = p.duplicate_of
                    acks.append((origin, protocol.encode_ack(p.client_id, oid, ots, True)
                                 if not p.reused else reused_error(p.client_id)))
                p.frame = p.target = p.origin = None
                continue
            if not p.persisted:
                frame = {**frame, "persisted": False}
            try:
                delivery = Delivery(p.target, protocol.encode(frame), str(frame["type"]))
            except Exception:  # one bad record must not cost its batch its delivery
                log.exception("a committed record could not be encoded; it is not delivered")
                p.frame = p.target = p.origin = None
                continue
            deliveries.append(delivery)
            if p.client_id is not None and origin is not None:
                rid = p.message.id if p.message is not None else None
                acks.append((origin, protocol.encode_ack(p.client_id, rid, frame["timestamp"],
                                                         p.persisted)))
            if p.message is not None:  # kept a while for resends: drop what is not needed
                p.frame = p.target = p.origin = None
        if deliveries:
            await self.backplane.publish(deliveries, stored=True)
        reply = self.registry.reply
        for conn, ack in acks:
            reply(conn, ack)

    async def _sweep(self) -> None:
        while True:
            await trio.sleep(SWEEP_SECONDS)
            self.registry.end_expired()
            self.registry.forget_revoked()


def _settle(job: Job) -> None:
    if isinstance(job, list):
        for p in job:
            p.routed()
    elif isinstance(job, Wake):
        return
    elif job.done is not None:
        job.done.set()


def reused_error(client_id: str) -> bytes:
    """The error for a frame that reuses the ``client_id`` of a different message."""
    return protocol.encode_error(ErrorCode.CLIENT_ID_REUSED, reused_message(client_id),
                                 client_id)


def _kind(frame: dict[str, Any] | str | bytes) -> str:
    if isinstance(frame, dict):
        return str(frame.get("type", "custom"))
    return "custom"


def _encoded(frame: dict[str, Any] | str | bytes) -> bytes:
    if isinstance(frame, bytes):
        return frame
    if isinstance(frame, str):
        return frame.encode()
    return protocol.encode(frame)
