"""One WebSocket connection: a nursery with a reader task and a writer task.

The reader decodes and checks each frame and hands accepted messages to the committer (or,
for ephemeral types, to the manager); the writer drains the connection's bounded outbox to the
socket. When either ends the other is cancelled, and the connection is unregistered.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

import trio

from . import protocol
from .committer import Pending
from .errors import CloseCode, ErrorCode, FrameError
from .ids import id_to_iso
from .interfaces import Identity, MessageRecord
from .manager import Conn
from .ratelimit import TokenBucket
from .routing import ToAll, group_target, private_target

if TYPE_CHECKING:
    from .app import Services

__all__ = ["ConnectionGone", "Transport", "serve_connection"]

log = logging.getLogger("trionet.connection")

#: continuous rate limiting for this long closes the connection with 1008
ABUSE_SECONDS = 10.0
#: most frames the writer joins into one WebSocket message when coalescing
COALESCE_MAX = 64


class ConnectionGone(Exception):
    """Raised by :meth:`Transport.receive` when the peer has disconnected."""


class Transport(Protocol):
    """The socket side of a connection."""

    async def receive(self) -> str | bytes | None:
        """The next message: text, or bytes for a binary one; raises :class:`ConnectionGone`."""
        ...

    async def send(self, data: str) -> None: ...

    async def close(self, code: int, reason: str = "") -> None: ...


class _Session:
    def __init__(self, services: Services, conn: Conn, ws: Transport) -> None:
        self.services = services
        self.settings = services.settings
        self.manager = services.manager
        self.conn = conn
        self.ws = ws
        s = services.settings
        self.bucket = TokenBucket(s.rate_limit, s.rate_limit * 2, trio.current_time())
        self.limited_since: float | None = None

    def error(self, code: str, message: str, client_id: str | None = None) -> None:
        self.services.metrics.errors.labels(code).inc()
        self.manager.reply(self.conn, protocol.encode_error(code, message, client_id))

    async def reader(self) -> None:
        max_bytes = self.settings.max_message_bytes
        frames_in = self.services.metrics.frames_in
        while True:
            try:
                data = await self.ws.receive()
            except ConnectionGone:
                return
            if isinstance(data, str):
                size = len(data)
                if size > max_bytes // 4 and len(data.encode()) > max_bytes:
                    self.manager.close(self.conn, CloseCode.MESSAGE_TOO_BIG)
                    return
            else:  # bytes, or None for an empty binary frame
                if data is not None and len(data) > max_bytes:
                    self.manager.close(self.conn, CloseCode.MESSAGE_TOO_BIG)
                    return
                frames_in.labels("binary").inc()
                self.error(ErrorCode.BINARY_FRAME,
                           "binary frames are not supported; send JSON text")
                continue
            now = trio.current_time()
            if not self.bucket.take(now):
                self.services.metrics.rate_limited.inc()
                if self.limited_since is None:
                    self.limited_since = now
                elif now - self.limited_since >= ABUSE_SECONDS:
                    self.manager.close(self.conn, CloseCode.POLICY_VIOLATION)
                    return
                self.error(ErrorCode.RATE_LIMITED, "too many frames; slow down")
                continue
            self.limited_since = None
            try:
                await self.handle(data)
            except FrameError as exc:
                self.error(exc.code, exc.message, exc.client_id)
            except Exception:
                log.exception("frame handling failed for %r", self.conn)
                self.error(ErrorCode.INTERNAL, "internal error; the frame was not processed")

    async def handle(self, raw: str) -> None:
        frame = protocol.decode_client_frame(raw, max_content_chars=self.settings.max_content_chars)
        self.services.metrics.frames_in.labels(frame.__struct_config__.tag or "").inc()
        user_id = self.conn.user_id
        if isinstance(frame, protocol.PrivateIn):
            if not await self.services.user_exists(frame.to):
                raise FrameError(ErrorCode.UNKNOWN_USER, f"no user {frame.to}", frame.client_id)
            self._check_available(frame.client_id)
            mid = self.manager.ids.next()
            ts = id_to_iso(mid)
            record = MessageRecord(id=mid, kind="private", sender_id=user_id, content=frame.content,
                                   created_at=ts, recipient_id=frame.to, client_id=frame.client_id)
            out = {"type": "private", "id": mid, "from": user_id, "to": frame.to,
                   "content": frame.content, "timestamp": ts}
            await self._submit(record, private_target(user_id, frame.to, self.conn), out,
                               frame.client_id)
        elif isinstance(frame, protocol.GroupIn):
            gid = frame.group
            members = await self.manager.membership.members(gid)
            if members is None or user_id not in members:
                raise FrameError(ErrorCode.NOT_MEMBER, f"you are not a member of group {gid}",
                                 frame.client_id)
            self._check_available(frame.client_id)
            mid = self.manager.ids.next()
            ts = id_to_iso(mid)
            record = MessageRecord(id=mid, kind="group", sender_id=user_id, content=frame.content,
                                   created_at=ts, group_id=gid, client_id=frame.client_id)
            out = {"type": "group", "id": mid, "from": user_id, "group_id": gid,
                   "content": frame.content, "timestamp": ts}
            await self._submit(record, group_target(members, self.conn), out, frame.client_id)
        elif isinstance(frame, protocol.BroadcastIn):
            if not await self.services.is_admin(user_id):
                raise FrameError(ErrorCode.FORBIDDEN, "only admins may broadcast", frame.client_id)
            ts = id_to_iso(self.manager.ids.next())
            self.manager.dispatch(ToAll(), protocol.encode(
                {"type": "broadcast", "from": user_id, "content": frame.content, "timestamp": ts}
            ), "broadcast")
            if frame.client_id is not None:
                self.manager.reply(self.conn, protocol.encode_ack(frame.client_id, None, ts, False))
        elif isinstance(frame, protocol.PingIn):
            self.manager.reply(self.conn, protocol.encode({"type": "pong",
                                                           "client_id": frame.client_id}))
        else:  # NotificationIn
            cid = frame.client_id if isinstance(frame.client_id, str) else None
            raise FrameError(ErrorCode.FORBIDDEN, "notifications are sent by the server only", cid)

    def _check_available(self, client_id: str | None) -> None:
        committer = self.manager.committer
        if committer is not None and not committer.available:
            raise FrameError(ErrorCode.UNAVAILABLE,
                             "storage is failing and the retry buffer is full; try again later",
                             client_id)

    async def _submit(self, record: MessageRecord, target: object, out: dict[str, object],
                      client_id: str | None) -> None:
        committer = self.manager.committer
        assert committer is not None
        await committer.submit(Pending(message=record, target=target, frame=out,
                                       origin=self.conn, client_id=client_id))

    async def writer(self, outbox: trio.MemoryReceiveChannel[str], coalesce: bool) -> None:
        send = self.ws.send
        async for frame in outbox:
            if coalesce:
                more: list[str] | None = None
                while True:
                    try:
                        nxt = outbox.receive_nowait()
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                    if more is None:
                        more = [frame]
                    more.append(nxt)
                    if len(more) >= COALESCE_MAX:
                        break
                if more is not None:
                    frame = "\n".join(more)
            await send(frame)
            await trio.lowlevel.checkpoint()
        # the manager ended this connection: queued frames are out, now the close
        code = self.conn.close_code or 1000
        await self.ws.close(code, _REASONS.get(code, ""))


_REASONS: dict[int, str] = {
    CloseCode.GOING_AWAY: "server going away",
    CloseCode.POLICY_VIOLATION: "rate limit exceeded",
    CloseCode.MESSAGE_TOO_BIG: "message too big",
    CloseCode.SESSION_ENDED: "session ended",
    CloseCode.SLOW_CONSUMER: "slow consumer",
}


async def serve_connection(
    services: Services, ws: Transport, identity: Identity, *, coalesce: bool = False
) -> None:
    """Run one accepted connection until either side ends it."""
    send, receive = trio.open_memory_channel[str](services.settings.send_queue)
    conn = Conn(identity, send)
    session = _Session(services, conn, ws)
    services.manager.register(conn)
    services.open_handlers += 1
    try:
        async with trio.open_nursery() as nursery:

            async def run_reader() -> None:
                try:
                    await session.reader()
                finally:
                    if not conn.closed:  # else the writer is finishing a server-side close
                        nursery.cancel_scope.cancel()

            async def run_writer() -> None:
                try:
                    await session.writer(receive, coalesce)
                finally:
                    nursery.cancel_scope.cancel()

            nursery.start_soon(run_writer)
            nursery.start_soon(run_reader)
    finally:
        services.manager.unregister(conn)
        services.open_handlers -= 1
        conn.closed = True
        send.close()
