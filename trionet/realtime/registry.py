"""The registry of this node's connections: who is connected, and closing them.

The seed's Register / Unregister / IsOnline, plus the per-user connection slots, the sessions
ended recently (a socket whose handshake raced its logout is refused when it registers) and
closing by session, by user and by expiry. It routes nothing: :mod:`.fanout` reads it.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import trio

from ..core.errors import CloseCode
from ..core.routing import ConnRef
from ..interfaces import Identity
from ..metrics import Metrics

__all__ = ["FULL", "JOIN_MAX", "QUEUED", "REVOKED_SECONDS", "WRITTEN", "Conn", "Outgoing",
           "Registry", "Unfinished", "WriteNow", "ignore_presence"]

log = logging.getLogger("trionet.manager")

#: how long an ended session is remembered, to refuse sockets whose handshake raced its end
REVOKED_SECONDS = 300.0


#: most frames sent in one write (and, with ``coalesce=1``, joined into one WebSocket message)
JOIN_MAX = 128

#: what :meth:`Conn.push` did with a frame
FULL = 0  #: nothing: the outbox is full (a slow consumer)
QUEUED = 1  #: queued for the connection's writer (or dropped: the connection is closing)
WRITTEN = 2  #: written to the socket at once (the write-through path)


class Unfinished(Protocol):
    """The rest of a write that the write-through path began and could not finish because
    the kernel's buffer filled. It holds the socket's send lock, so nothing else can be
    written in between, and goes into the outbox, where the writer finishes it."""

    async def finish(self) -> None:
        """Write the rest, then release the send lock."""
        ...

    def abandon(self) -> None:
        """Release the send lock without writing (the connection is ending)."""
        ...


#: the write-through path of a connection (see :meth:`Conn.push`): write these frames now,
#: without blocking; True when they are written (or the socket is gone), False when the
#: socket is busy (nothing written), or the :class:`Unfinished` rest of a partial write
WriteNow = Callable[[Sequence[bytes]], "bool | Unfinished"]

#: what a connection's outbox carries: encoded frames, and at most one unfinished write
Outgoing = bytes | Unfinished


class Conn:
    """One WebSocket connection as the manager sees it: a user and a bounded outbox.

    ``ref`` names it by ids (this node, its number), which is how targets leave it out.

    **Write-through.** While ``idle`` (its writer waits on an empty outbox and writes
    nothing, no replay is being written or deduplicated) a frame for the connection is
    written to the socket at once by the task that routes it (``write_now``, non-blocking),
    without waking the writer. The first push that cannot be written that way is queued, and
    clears ``idle`` until the writer has drained the outbox again, so frames leave in the
    order they were pushed. A partial write queues its :class:`Unfinished` rest, which the
    writer completes before anything else.
    """

    __slots__ = ("id", "user_id", "identity", "outbox", "close_code", "closed", "ref",
                 "idle", "write_now", "__weakref__")
    _ids = itertools.count(1)

    def __init__(self, identity: Identity, outbox: trio.MemorySendChannel[Outgoing],
                 node: str = "local") -> None:
        self.id = next(self._ids)
        self.user_id = identity.user_id
        self.identity = identity
        self.outbox = outbox
        self.close_code: int | None = None
        self.closed = False
        self.ref = ConnRef(node, self.id)
        #: the writer waits on an empty outbox (set and cleared by the writer and by push)
        self.idle = False
        self.write_now: WriteNow | None = None

    def push(self, frame: bytes) -> int:
        """Write or queue an encoded frame: :data:`WRITTEN`, :data:`QUEUED`, or :data:`FULL`
        when the outbox is full (a slow consumer)."""
        if self.closed:
            return QUEUED
        if self.idle:
            written = self._write_through((frame,))
            if written:
                return WRITTEN
        return self._queue(frame)

    def push_many(self, frames: Sequence[bytes]) -> int:
        """:meth:`push` for several frames: written through :data:`JOIN_MAX` at a time while
        each write completes; whatever is left is queued frame by frame (so the outbox's
        bound, and :data:`FULL`, apply to it as to single frames)."""
        if self.closed:
            return QUEUED
        start = 0
        while self.idle and start < len(frames):
            chunk = frames[start:start + JOIN_MAX]
            if not self._write_through(chunk):
                break
            start += len(chunk)
        if start == len(frames):
            return WRITTEN
        for frame in frames[start:]:
            if self._queue(frame) == FULL:
                return FULL
        return QUEUED

    def _write_through(self, frames: Sequence[bytes]) -> bool:
        """Try the write-through path; True when the frames are taken care of."""
        write_now = self.write_now
        if write_now is None:
            return False
        result = write_now(frames)
        if result is True:
            return True
        self.idle = False
        if result is False:
            return False
        # a partial write: its rest goes first into the (empty) outbox, holding the lock
        try:
            self.outbox.send_nowait(result)
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            result.abandon()  # the connection is ending: its writer is gone
            self.closed = True
        return True

    def _queue(self, item: Outgoing) -> int:
        try:
            self.outbox.send_nowait(item)
        except trio.WouldBlock:
            return FULL
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.closed = True
        self.idle = False
        return QUEUED

    def end(self, code: int) -> None:
        """Stop taking frames; the writer sends what is queued, then closes with ``code``."""
        if not self.closed:
            self.closed = True
            self.idle = False
            self.close_code = code
            self.outbox.close()

    def __repr__(self) -> str:
        return f"<Conn {self.id} user={self.user_id}>"


def ignore_presence(user_id: int, online: bool) -> None:
    """The default presence callback: nobody listens."""


class Registry:
    """This node's open connections, by user.

    ``on_presence(user_id, online)`` is called (synchronously, it must not block) when a
    user's first connection registers and when their last one unregisters.
    """

    def __init__(
        self,
        *,
        metrics: Metrics,
        node: str = "local",
        on_presence: Callable[[int, bool], None] = ignore_presence,
    ) -> None:
        self.metrics = metrics
        self.node = node
        self._on_presence = on_presence
        self._users: dict[int, list[Conn]] = {}
        self._count = 0
        #: sessions ended recently (key -> monotonic time)
        self._revoked: dict[str, float] = {}
        #: per user, WebSocket handlers running (handshakes included), for the per-user cap
        self._slots: dict[int, int] = {}

    @property
    def users(self) -> Mapping[int, Sequence[Conn]]:
        """user id -> that user's open connections (read-only; for the fan-out)."""
        return self._users

    def connection(self, identity: Identity, outbox: trio.MemorySendChannel[Outgoing]) -> Conn:
        """A new connection of this node (not registered yet)."""
        return Conn(identity, outbox, self.node)

    # -- slots --------------------------------------------------------------------------------

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

    # -- register / unregister ----------------------------------------------------------------

    def register(self, conn: Conn) -> bool:
        """Add a connection; True when it is the user's first (the user came online).

        A connection whose session was ended while its handshake ran is closed (4001) at once.
        """
        key = conn.identity.session_key
        if key is not None and key in self._revoked:
            conn.end(CloseCode.SESSION_ENDED)
            return False
        conns = self._users.setdefault(conn.user_id, [])
        conns.append(conn)
        self._count += 1
        self._gauges()
        first = len(conns) == 1
        if first:
            self._on_presence(conn.user_id, True)
        return first

    def unregister(self, conn: Conn) -> bool:
        """Remove a connection (idempotent); True when it was the user's last."""
        conns = self._users.get(conn.user_id)
        if not conns or conn not in conns:
            return False
        conns.remove(conn)
        self._count -= 1
        last = not conns
        if last:
            del self._users[conn.user_id]
        self._gauges()
        if last:
            self._on_presence(conn.user_id, False)
        return last

    def _gauges(self) -> None:
        self.metrics.connections.set(self._count)
        self.metrics.online_users.set(len(self._users))

    def is_online(self, user_id: int) -> bool:
        """True while the user has at least one open connection to this node."""
        return user_id in self._users

    def connections(self, user_id: int | None = None) -> list[Conn]:
        """Open connections of one user, or of everyone."""
        if user_id is not None:
            return list(self._users.get(user_id, ()))
        return [c for conns in self._users.values() for c in conns]

    @property
    def connection_count(self) -> int:
        return self._count

    # -- closing ------------------------------------------------------------------------------

    def close(self, conn: Conn, code: int) -> None:
        """Unregister ``conn`` and close it with ``code`` after its queued frames."""
        self.unregister(conn)
        conn.end(code)

    def close_all(self, code: int) -> None:
        for conn in self.connections():
            self.close(conn, code)

    def reply(self, conn: Conn, frame: bytes) -> None:
        """Queue a frame for one connection (an ack or an error); a full outbox closes it as
        a slow consumer."""
        result = conn.push(frame)
        if result == WRITTEN:
            self.metrics.written_through.inc()
        elif result == FULL:
            self.metrics.slow_consumers.inc()
            self.close(conn, CloseCode.SLOW_CONSUMER)

    def revoke(self, session_key: str) -> None:
        """Remember an ended session: a socket of it that registers later is refused."""
        self._revoked[session_key] = time.monotonic()

    def end_session(self, session_key: str) -> int:
        """Close (4001) every connection opened with this session; returns how many."""
        self.revoke(session_key)
        ended = [c for c in self.connections() if c.identity.session_key == session_key]
        for conn in ended:
            self.close(conn, CloseCode.SESSION_ENDED)
        return len(ended)

    def disconnect(self, user_id: int, code: int) -> int:
        """Close every connection of a user with ``code``; returns how many."""
        ended = self.connections(user_id)
        for conn in ended:
            self.close(conn, code)
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

    def forget_revoked(self, now: float | None = None) -> None:
        """Drop ended sessions older than :data:`REVOKED_SECONDS` (handshakes take far
        less)."""
        cutoff = (time.monotonic() if now is None else now) - REVOKED_SECONDS
        for key in [k for k, at in self._revoked.items() if at < cutoff]:
            del self._revoked[key]
