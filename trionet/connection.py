"""One WebSocket connection: a nursery with a reader task and a writer task.

The reader decodes and checks each frame and hands accepted messages to the committer (or,
for ephemeral types, to the manager); the writer drains the connection's bounded outbox to the
socket. When either ends the other is cancelled, and the connection is unregistered.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import trio

from . import protocol
from .clock import now_iso
from .committer import Pending
from .errors import CloseCode, ErrorCode, FrameError
from .frames import message_frame
from .ids import id_to_iso
from .interfaces import Identity, MessageRecord
from .manager import Conn
from .messagetypes import MessageType
from .ratelimit import TokenBucket
from .resume import frame_id, plan_replay

if TYPE_CHECKING:
    from .app import Services

__all__ = ["ConnectionGone", "Transport", "serve_connection"]

log = logging.getLogger("trionet.connection")

#: continuous rate limiting for this long closes the connection with 1008
ABUSE_SECONDS = 10.0
#: most queued frames the writer sends in one write (joined into one message when coalescing)
COALESCE_MAX = 128
#: how long the server waits for the peer to answer its close before dropping the socket
CLOSE_WAIT_SECONDS = 2.0
#: how long after connecting a resuming connection checks resends and replayed ids
DEDUPE_SECONDS = 60.0


class ConnectionGone(Exception):
    """Raised by :meth:`Transport.receive` when the peer has disconnected."""


class Transport(Protocol):
    """The socket side of a connection."""

    async def receive(self) -> str | bytes | None:
        """The next message: text, or bytes for a binary one; raises :class:`ConnectionGone`."""
        ...

    async def send_frames(self, payloads: Sequence[bytes], joined: bool) -> None:
        """Send encoded frames (UTF-8 JSON), in order: one text message each, or with
        ``joined`` one text message of them all separated by newlines."""
        ...

    async def close(self, code: int, reason: str = "") -> None: ...


_NOTHING_REPLAYED: frozenset[int] = frozenset()


class _Session:
    """What the reader and the writer of one connection share."""

    __slots__ = ("services", "settings", "manager", "conn", "ws", "bucket", "limited_since",
                 "coalesce", "replayed", "dedupe_until", "check_store_until", "type_buckets")

    def __init__(self, services: Services, conn: Conn, ws: Transport) -> None:
        self.services = services
        self.settings = services.settings
        self.manager = services.manager
        self.conn = conn
        self.ws = ws
        s = services.settings
        self.bucket = TokenBucket(s.rate_limit, s.rate_limit * 2, trio.current_time())
        self.limited_since: float | None = None
        self.coalesce = False
        #: ids written by the replay; live duplicates of them are dropped for a while
        self.replayed: frozenset[int] | set[int] = _NOTHING_REPLAYED
        self.dedupe_until = 0.0
        #: until when a resend is also looked up in the store (resuming connections)
        self.check_store_until = 0.0
        self.type_buckets: dict[str, TokenBucket] | None = None

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
            if self.conn.closed:
                continue  # closing: read (and drop) until the peer's close arrives
            if isinstance(data, str):
                size = len(data)
                if size > max_bytes // 4 and len(data.encode()) > max_bytes:
                    self.manager.close(self.conn, CloseCode.MESSAGE_TOO_BIG)
                    continue
            else:  # bytes, or None for an empty binary frame
                if data is not None and len(data) > max_bytes:
                    self.manager.close(self.conn, CloseCode.MESSAGE_TOO_BIG)
                    continue
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
                    continue
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
        types = self.services.message_types
        frame = protocol.decode_client_frame(
            raw, max_content_chars=self.settings.max_content_chars, types=types)
        name = frame.__struct_config__.tag
        if name == "ping":
            self.manager.reply(self.conn, protocol.encode({"type": "pong",
                                                           "client_id": frame.client_id}))
            return
        mtype = types.by_name[name]
        self.services.metrics.frames_in.labels(name).inc()
        if mtype.rate is not None:
            self._take_type_token(mtype, frame)
        route = await mtype.route(self, frame)
        client_id = frame.client_id
        if mtype.persisted:
            if route.kind is None:
                raise RuntimeError(f"persisted type {name!r} was routed to no user or group")
            if await self._resent(client_id):
                return
            self._check_available(client_id)
            mid = self.manager.ids.next()
            builtin = name in ("private", "group")
            record = MessageRecord(
                id=mid, kind=route.kind, sender_id=self.conn.user_id,
                content=frame.content if builtin else protocol.encode(
                    mtype.payload(frame)).decode(),
                created_at=id_to_iso(mid), recipient_id=route.scope.get("to"),
                group_id=route.scope.get("group_id"), client_id=client_id,
                subtype=None if builtin else name,
            )
            await self._submit(record, route.target)
            return
        ts = now_iso()
        out = {"type": name, "from": self.conn.user_id, **route.scope, **mtype.payload(frame),
               "timestamp": ts}
        self.manager.dispatch(route.target, protocol.encode(out), name)
        if client_id is not None:
            self.manager.reply(self.conn, protocol.encode_ack(client_id, None, ts, False))

    def _take_type_token(self, mtype: MessageType, frame: Any) -> None:
        buckets = self.type_buckets
        if buckets is None:
            buckets = self.type_buckets = {}
        bucket = buckets.get(mtype.name)
        now = trio.current_time()
        if bucket is None:
            assert mtype.rate is not None
            bucket = buckets[mtype.name] = TokenBucket(mtype.rate, mtype.rate * 2, now)
        if not bucket.take(now):
            self.services.metrics.rate_limited.inc()
            raise FrameError(ErrorCode.RATE_LIMITED,
                             f"too many {mtype.name} frames; slow down", frame.client_id)

    # -- RouteContext, for the message types' routers ---------------------------------------

    @property
    def sender_id(self) -> int:
        return self.conn.user_id

    @property
    def origin(self) -> Conn:
        return self.conn

    async def user_exists(self, user_id: int) -> bool:
        return await self.services.user_exists(user_id)

    async def group_members(self, group_id: int) -> frozenset[int] | None:
        return await self.manager.membership.members(group_id)

    async def is_admin(self, user_id: int) -> bool:
        return await self.services.is_admin(user_id)

    def _check_available(self, client_id: str | None) -> None:
        committer = self.manager.committer
        if committer is not None and not committer.available:
            raise FrameError(ErrorCode.UNAVAILABLE,
                             "storage is failing and the retry buffer is full; try again later",
                             client_id)

    async def _submit(self, record: MessageRecord, target: object) -> None:
        committer = self.manager.committer
        assert committer is not None
        pending = Pending(message=record, target=target, frame=message_frame(record),
                          origin=self.conn, client_id=record.client_id)
        if record.client_id is not None:
            self.services.recent_sends.add(record.sender_id, record.client_id, pending)
        await committer.submit(pending)

    async def _resent(self, client_id: str | None) -> bool:
        """Answer a resend of an already accepted frame with its original ack."""
        if client_id is None:
            return False
        user_id = self.conn.user_id
        earlier = self.services.recent_sends.get(user_id, client_id)
        if earlier is not None and earlier.message is not None:
            if not earlier.delivered:
                if earlier.done is None:
                    earlier.done = trio.Event()
                await earlier.done.wait()
            record, persisted = earlier.message, earlier.persisted
            if earlier.duplicate_of is not None:  # itself a resend of a stored one
                self.manager.reply(self.conn, protocol.encode_ack(
                    client_id, earlier.duplicate_of[0], earlier.duplicate_of[1], True))
                return True
        elif trio.current_time() < self.check_store_until:
            stored = await self.services.persister.find_by_client_id(user_id, client_id)
            if stored is None:
                return False
            record, persisted = stored, True
        else:
            return False
        self.manager.reply(self.conn, protocol.encode_ack(client_id, record.id,
                                                          record.created_at, persisted))
        return True

    async def replay(self, since: int, since_notification: int | None) -> None:
        """Write what the client missed, then ``synced``; live frames wait in the outbox."""
        svc = self.services
        limit = self.settings.replay_limit
        messages, notifications = await svc.persister.replay(
            self.conn.user_id, since=since, since_notification=since_notification, limit=limit)
        frames, gap_from = plan_replay(messages, notifications, limit)
        svc.metrics.replays.inc()
        out: list[bytes] = []
        if gap_from is not None:
            out.append(protocol.encode({"type": "sync_gap", "from_id": gap_from}))
        self.replayed = {fid for fid, _ in frames}
        out += [protocol.encode(f) for _, f in frames]
        last_id = max((m.id for m in messages if m.id in self.replayed), default=since)
        last_note = max((n.id for n in notifications if n.id in self.replayed),
                        default=since_notification)
        synced: dict[str, object] = {"type": "synced", "last_id": last_id}
        if since_notification is not None:
            synced["last_notification_id"] = last_note
        out.append(protocol.encode(synced))
        for start in range(0, len(out), COALESCE_MAX):
            await self.ws.send_frames(out[start:start + COALESCE_MAX], self.coalesce)
        self.dedupe_until = trio.current_time() + DEDUPE_SECONDS

    def already_replayed(self, frame: bytes) -> bool:
        if trio.current_time() > self.dedupe_until:
            self.replayed = _NOTHING_REPLAYED
            return False
        fid = frame_id(frame)
        return fid is not None and fid in self.replayed

    async def writer(self, outbox: trio.MemoryReceiveChannel[bytes],
                     resume: tuple[int, int | None] | None) -> None:
        if resume is not None:
            await self.replay(*resume)
        send_frames = self.ws.send_frames
        joined = self.coalesce
        async for first in outbox:
            batch = [first]  # everything queued goes out in one write
            while len(batch) < COALESCE_MAX:
                try:
                    batch.append(outbox.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            if self.replayed:
                batch = [f for f in batch if not self.already_replayed(f)]
                if not batch:
                    continue
            await send_frames(batch, joined)
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
    services: Services,
    ws: Transport,
    identity: Identity,
    *,
    coalesce: bool = False,
    since: int | None = None,
    since_notification: int | None = None,
) -> None:
    """Run one accepted connection until either side ends it.

    With ``since``, the connection first replays what the client missed (see
    ``docs/protocol.md``, Resume); it is registered for live delivery before the replay query,
    so nothing falls between the two.
    """
    send, receive = trio.open_memory_channel[bytes](services.settings.send_queue)
    conn = Conn(identity, send)
    session = _Session(services, conn, ws)
    session.coalesce = coalesce
    resume = None if since is None else (since, since_notification)
    if resume is not None:
        session.check_store_until = trio.current_time() + DEDUPE_SECONDS
    services.manager.register(conn)
    services.open_handlers += 1
    try:
        async with trio.open_nursery() as nursery:

            async def run_writer() -> None:
                try:
                    await session.writer(receive, resume)
                finally:
                    # the close is sent: give the peer a moment to answer it, so the socket
                    # is not shut while its data is in flight (which would reset the
                    # connection and lose the close frame)
                    nursery.cancel_scope.deadline = trio.current_time() + CLOSE_WAIT_SECONDS

            nursery.start_soon(run_writer)
            # the reader runs in this task: one task fewer per connection; it returns when
            # the peer disconnects, after a server-side close once the peer has answered it
            await session.reader()
            nursery.cancel_scope.cancel()
    finally:
        services.manager.unregister(conn)
        services.open_handlers -= 1
        conn.closed = True
        send.close()
