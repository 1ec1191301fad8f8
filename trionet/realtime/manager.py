"""The central manager: owns the registry of connections and routes every frame.

The manager never awaits a client: each delivery is a ``send_nowait`` of an already-encoded
string into the recipient's bounded channel. A full channel marks a slow consumer, which is
unregistered and closed with 4008 once its queued frames are written.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import trio

from ..core import protocol
from ..core.dedupe import reused_message
from ..core.errors import CloseCode, ErrorCode
from ..core.frames import RESERVED_NOTIFICATION_KEYS, notification_frame
from ..core.ids import IdAllocator, id_to_iso
from ..core.routing import Target, ToAll, ToUsers, group_target, recipients
from ..interfaces import Identity, NotificationRecord
from ..metrics import Metrics
from .committer import GroupCommitter, Pending
from .membership import MembershipCache

__all__ = ["Conn", "Manager", "reused_error"]

log = logging.getLogger("trionet.manager")

#: how long an ended session is remembered, to refuse sockets whose handshake raced its end
REVOKED_SECONDS = 300.0

class Conn:
    """One WebSocket connection as the manager sees it: a user and a bounded outbox."""

    __slots__ = ("id", "user_id", "identity", "outbox", "close_code", "closed", "__weakref__")
    _ids = itertools.count(1)

    def __init__(self, identity: Identity, outbox: trio.MemorySendChannel[bytes]) -> None:
        self.id = next(self._ids)
        self.user_id = identity.user_id
        self.identity = identity
        self.outbox = outbox
        self.close_code: int | None = None
        self.closed = False

    def push(self, frame: bytes) -> bool:
        """Queue an encoded frame; False when the outbox is full (a slow consumer)."""
        if self.closed:
            return True
        try:
            self.outbox.send_nowait(frame)
        except trio.WouldBlock:
            return False
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.closed = True
        return True

    def end(self, code: int) -> None:
        """Stop taking frames; the writer sends what is queued, then closes with ``code``."""
        if not self.closed:
            self.closed = True
            self.close_code = code
            self.outbox.close()

    def __repr__(self) -> str:
        return f"<Conn {self.id} user={self.user_id}>"


class Manager:
    """Registry and router. Start :meth:`run` with ``nursery.start`` before serving."""

    def __init__(
        self,
        *,
        metrics: Metrics,
        membership: MembershipCache,
        ids: IdAllocator,
        inbox_size: int = 4096,
    ) -> None:
        self.metrics = metrics
        self.membership = membership
        self.ids = ids
        self.committer: GroupCommitter | None = None
        self._registry: dict[int, list[Conn]] = {}
        self._count = 0
        self._inbox_send, self._inbox_recv = trio.open_memory_channel[list[Pending]](inbox_size)
        self._running = False
        #: called with (user_id, online) when a user's first connection opens or last closes
        self.on_presence: Callable[[int, bool], None] | None = None
        #: called with the recipients once notify_many's notifications are committed
        self.on_notified: Callable[[list[int]], None] | None = None
        #: sessions ended recently (key -> monotonic time): a socket whose handshake raced
        #: the logout is refused when it registers
        self._revoked: dict[str, float] = {}
        #: per user, WebSocket handlers running (handshakes included), for the per-user cap
        self._slots: dict[int, int] = {}

    # -- registry ---------------------------------------------------------------------------

    def reserve(self, user_id: int, limit: int) -> bool:
        """Take one of the user's ``limit`` connection slots (0: no limit) for a WebSocket
        handler, from its handshake to its end; False when all are taken. Every True must be
        matched by one :meth:`release`."""
        held = self._slots.get(user_id, 0)
        if limit and held >= limit:
            return False
        self._slots[user_id] = held + 1
        return True

    def release(self, user_id: int) -> None:
        """Give back a slot taken by :meth:`reserve`."""
        held = self._slots.get(user_id, 0) - 1
        if held > 0:
            self._slots[user_id] = held
        else:
            self._slots.pop(user_id, None)

    def register(self, conn: Conn) -> bool:
        """Add a connection; True when it is the user's first (the user came online).

        A connection whose session was ended while its handshake ran is closed (4001) at once.
        """
        key = conn.identity.session_key
        if key is not None and key in self._revoked:
            conn.end(CloseCode.SESSION_ENDED)
            return False
        conns = self._registry.setdefault(conn.user_id, [])
        conns.append(conn)
        self._count += 1
        self.metrics.connections.set(self._count)
        self.metrics.online_users.set(len(self._registry))
        first = len(conns) == 1
        if first and self.on_presence is not None:
            self.on_presence(conn.user_id, True)
        return first

    def unregister(self, conn: Conn) -> bool:
        """Remove a connection (idempotent); True when it was the user's last."""
        conns = self._registry.get(conn.user_id)
        if not conns or conn not in conns:
            return False
        conns.remove(conn)
        self._count -= 1
        last = not conns
        if last:
            del self._registry[conn.user_id]
        self.metrics.connections.set(self._count)
        self.metrics.online_users.set(len(self._registry))
        if last and self.on_presence is not None:
            self.on_presence(conn.user_id, False)
        return last

    def is_online(self, user_id: int) -> bool:
        """True while the user has at least one open connection."""
        return user_id in self._registry

    def connections(self, user_id: int | None = None) -> list[Conn]:
        """Open connections of one user, or of everyone."""
        if user_id is not None:
            return list(self._registry.get(user_id, ()))
        return [c for conns in self._registry.values() for c in conns]

    @property
    def connection_count(self) -> int:
        return self._count

    def close(self, conn: Conn, code: int) -> None:
        """Unregister ``conn`` and close it with ``code`` after its queued frames."""
        self.unregister(conn)
        conn.end(code)

    def close_all(self, code: int) -> None:
        for conn in self.connections():
            self.close(conn, code)

    def end_session(self, session_key: str) -> int:
        """Close (4001) every connection opened with this session; returns how many."""
        self._revoked[session_key] = time.monotonic()
        ended = [c for c in self.connections() if c.identity.session_key == session_key]
        for conn in ended:
            self.close(conn, CloseCode.SESSION_ENDED)
        return len(ended)

    def end_expired(self, now: float | None = None) -> int:
        """Close (4001) connections whose credential has expired."""
        now = time.time() if now is None else now
        ended = [
            c for c in self.connections()
            if c.identity.expires_at is not None and c.identity.expires_at <= now
        ]
        for conn in ended:
            self.close(conn, CloseCode.SESSION_ENDED)
        return len(ended)

    # -- routing ----------------------------------------------------------------------------

    def dispatch(self, target: Target, frame: bytes, kind: str) -> int:
        """Queue ``frame`` for every connection ``target`` addresses; returns how many.

        This is the one place frames fan out; a backplane publishes from here too.
        """
        slow: list[Conn] | None = None
        sent = 0
        for conn in recipients(target, self._registry):
            if conn.push(frame):
                sent += 1
            else:
                slow = slow or []
                slow.append(conn)
        if slow:
            for conn in slow:
                log.info("closing slow consumer %r", conn)
                self.metrics.slow_consumers.inc()
                self.close(conn, CloseCode.SLOW_CONSUMER)
        self.metrics.frames_out.labels(kind).inc()
        self.metrics.deliveries.inc(sent)
        return sent

    def reply(self, conn: Conn, frame: bytes) -> None:
        """Queue a frame for one connection (an ack or an error)."""
        if not conn.push(frame):
            self.metrics.slow_consumers.inc()
            self.close(conn, CloseCode.SLOW_CONSUMER)

    def send_to_user(self, user_id: int, frame: dict[str, Any] | str | bytes) -> int:
        """Push a frame (a dict, or JSON text) to every connection of one user; not persisted."""
        return self.dispatch(ToUsers((user_id,)), _encoded(frame), _kind(frame))

    async def broadcast_to_group(
        self, group_id: int, frame: dict[str, Any] | str | bytes
    ) -> int:
        """Push a frame to every connection of the group's accepted members (not persisted)."""
        members = await self.membership.members(group_id)
        if not members:
            return 0
        return self.dispatch(group_target(members, None), _encoded(frame), _kind(frame))

    def broadcast_to_all(self, frame: dict[str, Any] | str | bytes) -> int:
        """Push a frame to every connection (not persisted)."""
        return self.dispatch(ToAll(), _encoded(frame), _kind(frame))

    def membership_changed(self, group_id: int) -> None:
        """Call when a group's membership changed outside trionet's API."""
        self.membership.invalidate(group_id)

    async def notify(
        self, user_id: int, subtype: str, message: str, /, **payload: Any
    ) -> dict[str, Any]:
        """Persist a notification and push it to the user's connections; returns the frame
        once it is stored (or given up on) and queued to every open connection of the user.

        ``payload`` keys join the frame beside ``subtype`` and ``message``; they never
        replace ``type``, ``id``, ``subtype``, ``message`` or ``timestamp``.
        """
        return (await self.notify_many([user_id], subtype, message, payload))[0]

    async def notify_many(
        self, user_ids: Iterable[int], subtype: str, message: str, payload: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """:meth:`notify` for several users at once, committed together."""
        assert self.committer is not None, "manager is not running"
        extra = {k: v for k, v in payload.items() if k not in RESERVED_NOTIFICATION_KEYS}
        pendings: list[Pending] = []
        for uid in user_ids:
            nid = self.ids.next()
            record = NotificationRecord(
                id=nid, user_id=uid, subtype=subtype, message=message, created_at=id_to_iso(nid),
                payload=extra,
            )
            frame = notification_frame(record)
            pending = Pending(notification=record, target=ToUsers((uid,)), frame=frame,
                              done=trio.Event())
            pendings.append(pending)
            await self.committer.submit(pending)
        for pending in pendings:
            assert pending.done is not None
            await pending.done.wait()
        if self.on_notified is not None:
            self.on_notified([p.notification.user_id for p in pendings if p.notification])
        return [p.frame for p in pendings if p.frame is not None]

    # -- the pump ---------------------------------------------------------------------------

    async def deliver_batch(self, batch: list[Pending]) -> None:
        """Hand a committed batch to the manager task (called by the committer)."""
        await self._inbox_send.send(batch)

    def _deliver(self, batch: list[Pending]) -> None:
        for p in batch:
            frame = p.frame
            if frame is None:
                continue
            if p.duplicate_of is not None:  # a resend of a stored message: its original ack
                if p.client_id is not None and p.origin is not None:
                    oid, ots = p.duplicate_of
                    self.reply(p.origin, protocol.encode_ack(p.client_id, oid, ots, True)
                               if not p.reused else reused_error(p.client_id))
                p.frame = p.target = p.origin = None
                continue
            if not p.persisted:
                frame = {**frame, "persisted": False}
            text = protocol.encode(frame)
            target = p.target
            if p.message is not None and p.message.kind == "group":
                # membership may have changed while the message was committed
                current = self.membership.peek(p.message.group_id or 0)
                if current is not None:
                    target = group_target(current, target.exclude)
            self.dispatch(target, text, str(frame["type"]))
            if p.client_id is not None and p.origin is not None:
                rid = p.message.id if p.message is not None else None
                ts = frame["timestamp"]
                self.reply(p.origin, protocol.encode_ack(p.client_id, rid, ts, p.persisted))
            if p.message is not None:  # kept a while for resends: drop what is not needed
                p.frame = p.target = p.origin = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Route committed batches until cancelled; sweep expired sessions every 15 s."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._sweep)
            self._running = True
            task_status.started()
            async for batch in self._inbox_recv:
                try:
                    self._deliver(batch)
                except Exception:  # a bug in one batch must not stop routing
                    log.exception("delivery of a batch failed")
                finally:  # "done" means routed: the frames are in their connections' queues
                    for p in batch:
                        p.routed()

    async def _sweep(self) -> None:
        while True:
            await trio.sleep(15)
            self.end_expired()
            cutoff = time.monotonic() - REVOKED_SECONDS  # handshakes take far less than this
            for key in [k for k, at in self._revoked.items() if at < cutoff]:
                del self._revoked[key]


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
