"""One WebSocket connection: a nursery with a reader task and a writer task.

The reader decodes and checks each frame and hands accepted messages to the committer (or,
for ephemeral types, to the manager); the writer drains the connection's bounded outbox to the
socket. When either ends the other is cancelled, and the connection is unregistered.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import trio

from ..backplane import Backplane
from ..core import protocol
from ..core.clock import now_iso
from ..core.dedupe import Receipt, RecentSends, fingerprint, record_fingerprint, reused_message
from ..core.errors import CloseCode, ErrorCode, FrameError, StoreUnavailable
from ..core.events import Delivery
from ..core.frames import change_frame, message_frame, notification_frame
from ..core.ids import IdAllocator, id_to_iso
from ..core.ratelimit import FloodGate, TokenBucket, Verdict
from ..core.resume import frame_id, looked_back, plan_replay, replay_pages
from ..core.routing import ConnRef, Target
from ..interfaces import Identity, MessagePersister, MessageRecord
from ..metrics import Metrics
from ..settings import Settings
from ..store import Store
from .blocks import BlockCache
from .changes import delete_message, edit_message
from .committer import GroupCommitter, Pending
from .membership import MembershipCache
from .messagetypes import MAX_ID, DeleteIn, EditIn, MessageType, MessageTypes, ReadIn
from .receipts import mark_read, read_frame
from .registry import JOIN_MAX, Conn, Outgoing, Registry
from .retention import Retention
from .routequeue import RouteQueue

__all__ = ["ConnectionGone", "ConnectionServices", "Transport", "serve_connection"]

log = logging.getLogger("trionet.connection")

#: this long of flooding (each second more frames refused than accepted) closes with 1008
ABUSE_SECONDS = 10.0
#: most queued frames the writer sends in one write (joined into one message when coalescing)
COALESCE_MAX = JOIN_MAX
#: how long the server waits for the peer to answer its close before dropping the socket
CLOSE_WAIT_SECONDS = 2.0
#: the least look-back of the replay of edits, deletes and read markers (seconds)
CHANGES_LOOKBACK_SECONDS = 5.0
#: changed messages read (and written) per page of a replay
CHANGES_PAGE_ROWS = 16
#: how long after connecting a resuming connection checks resends and replayed ids
DEDUPE_SECONDS = 60.0
#: most records, and most bytes of stored content, one page of a replay reads from the store
#: (it is written to the socket before the next is read)
REPLAY_PAGE_ROWS = 64
REPLAY_PAGE_BYTES = 256 * 1024


class ConnectionGone(Exception):
    """Raised by :meth:`Transport.receive` when the peer has disconnected."""


class Transport(Protocol):
    """The socket side of a connection."""

    async def receive(self) -> str | bytes:
        """The next message: text, or bytes for a binary one (``b""`` for an empty one, which
        Quart's own glue would turn into None); raises :class:`ConnectionGone`."""
        ...

    async def send_frames(self, payloads: Sequence[bytes], joined: bool) -> None:
        """Send encoded frames (UTF-8 JSON), in order: one text message each, or with
        ``joined`` one text message of them all separated by newlines."""
        ...

    async def close(self, code: int, reason: str = "") -> None: ...


class ConnectionServices(Protocol):
    """What a connection uses of its app's shared parts (:class:`trionet.services.Services`
    is the one an app builds)."""

    settings: Settings
    registry: Registry
    routes: RouteQueue
    committer: GroupCommitter
    membership: MembershipCache
    blocks: BlockCache
    retention: Retention
    ids: IdAllocator
    metrics: Metrics
    message_types: MessageTypes
    persister: MessagePersister
    store: Store
    recent_sends: RecentSends[Pending]
    backplane: Backplane
    #: seconds before ``since`` a replay starts (see trionet.core.resume.looked_back)
    resume_lookback: float
    #: connection handlers running (a graceful shutdown waits for them)
    open_handlers: int

    async def user_exists(self, user_id: int) -> bool: ...

    async def is_admin(self, user_id: int) -> bool: ...


_NOTHING_REPLAYED: frozenset[int] = frozenset()


class _Session:
    """What the reader and the writer of one connection share."""

    __slots__ = ("services", "settings", "registry", "conn", "ws", "gate", "coalesce",
                 "replayed", "dedupe_until", "check_store_until", "type_buckets")

    def __init__(self, services: ConnectionServices, conn: Conn, ws: Transport) -> None:
        self.services = services
        self.settings = services.settings
        self.registry = services.registry
        self.conn = conn
        self.ws = ws
        s = services.settings
        self.gate = FloodGate(s.rate_limit, trio.current_time(), abuse_seconds=ABUSE_SECONDS)
        self.coalesce = False
        #: ids written by the replay; live duplicates of them are dropped for a while
        self.replayed: frozenset[int] | set[int] = _NOTHING_REPLAYED
        self.dedupe_until = 0.0
        #: until when a resend is also looked up in the store (resuming connections)
        self.check_store_until = 0.0
        self.type_buckets: dict[str, TokenBucket] | None = None

    def error(self, code: str, message: str, client_id: str | None = None) -> None:
        self.services.metrics.errors.labels(code).inc()
        self.registry.reply(self.conn, protocol.encode_error(code, message, client_id))

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
            if len(data) > max_bytes // 4 and len(
                    data.encode() if isinstance(data, str) else data) > max_bytes:
                self.registry.close(self.conn, CloseCode.MESSAGE_TOO_BIG)
                continue
            # every frame counts, binary and malformed ones included
            verdict = self.gate.admit(trio.current_time())
            if verdict is not Verdict.ACCEPT:
                self._refuse(verdict, data)
                continue
            if not isinstance(data, str):  # a binary frame
                frames_in.labels("binary").inc()
                self.error(ErrorCode.BINARY_FRAME,
                           "binary frames are not supported; send JSON text")
                continue
            try:
                await self.handle(data)
            except FrameError as exc:
                self.error(exc.code, exc.message, exc.client_id)
            except StoreUnavailable:
                self.error(ErrorCode.UNAVAILABLE, "storage is busy or unavailable; try again",
                           protocol.client_id_of(data))
            except Exception:
                log.exception("frame handling failed for %r", self.conn)
                self.error(ErrorCode.INTERNAL, "internal error; the frame was not processed")

    def _refuse(self, verdict: Verdict, data: str | bytes) -> None:
        """A frame over the rate limit: answered, dropped silently while the connection
        floods (one answer a second), or the connection closed after sustained flooding."""
        self.services.metrics.rate_limited.inc()
        if verdict is Verdict.CLOSE:
            self.registry.close(self.conn, CloseCode.POLICY_VIOLATION)
        elif verdict is Verdict.REFUSE:
            cid = protocol.client_id_of(data) if isinstance(data, str) else None
            self.error(ErrorCode.RATE_LIMITED, "too many frames; slow down", cid)

    async def handle(self, raw: str) -> None:
        types = self.services.message_types
        frame = protocol.decode_client_frame(
            raw, max_content_chars=self.settings.max_content_chars, types=types)
        name = frame.__struct_config__.tag
        if name == "ping":
            self.registry.reply(self.conn, protocol.encode({"type": "pong",
                                                           "client_id": frame.client_id}))
            return
        if name == "read":
            await self._read(frame)
            return
        if name in ("edit", "delete"):
            await self._change(frame)
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
            builtin = name in ("private", "group")
            content = frame.content if builtin else protocol.encode(mtype.payload(frame)).decode()
            subtype = None if builtin else name
            fp = None
            if client_id is not None:
                fp = fingerprint(route.kind, route.scope.get("to"), route.scope.get("group_id"),
                                 subtype, content)
                if await self._resent(client_id, fp):
                    return
            self._check_available(client_id)
            mid = self.services.ids.next()
            record = MessageRecord(
                id=mid, kind=route.kind, sender_id=self.conn.user_id, content=content,
                created_at=id_to_iso(mid), recipient_id=route.scope.get("to"),
                group_id=route.scope.get("group_id"), client_id=client_id, subtype=subtype,
            )
            await self._submit(record, route.target, fp)
            return
        ts = now_iso()
        out = {"type": name, "from": self.conn.user_id, **route.scope, **mtype.payload(frame),
               "timestamp": ts}
        await self.services.routes.send([Delivery(route.target, protocol.encode(out), name)])
        if client_id is not None:
            self.registry.reply(self.conn, protocol.encode_ack(client_id, None, ts, False))

    async def _read(self, frame: ReadIn) -> None:
        self.services.metrics.frames_in.labels("read").inc()
        group_id = None if frame.group_id is None else int(frame.group_id)
        if group_id is not None and not 0 < group_id <= MAX_ID:
            raise FrameError(ErrorCode.INVALID_MESSAGE, "`group_id` must be an id below 2**53",
                             frame.client_id)
        state, at = await mark_read(self.services, self.conn.user_id, to=frame.to,
                                    group_id=group_id, up_to=frame.up_to, origin=self.conn.ref,
                                    client_id=frame.client_id)
        if frame.client_id is not None:
            self.registry.reply(self.conn, protocol.encode_read_ack(
                frame.client_id, at, state.last_read_id, state.unread_count))

    async def _change(self, frame: EditIn | DeleteIn) -> None:
        self.services.metrics.frames_in.labels(frame.__struct_config__.tag).inc()
        user_id, ref = self.conn.user_id, self.conn.ref
        if isinstance(frame, EditIn):
            at = await edit_message(self.services, user_id, frame.id, frame.content,
                                    origin=ref, client_id=frame.client_id)
        else:
            at = await delete_message(self.services, user_id, frame.id, origin=ref,
                                      client_id=frame.client_id)
        if frame.client_id is not None:
            self.registry.reply(self.conn, protocol.encode_ack(frame.client_id, frame.id, at,
                                                               True))

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
    def origin(self) -> ConnRef:
        return self.conn.ref

    async def user_exists(self, user_id: int) -> bool:
        return await self.services.user_exists(user_id)

    async def blocked(self, user_id: int) -> bool:
        return await self.services.blocks.between(self.conn.user_id, user_id)

    async def group_members(self, group_id: int) -> frozenset[int] | None:
        return await self.services.membership.members(group_id)

    async def is_admin(self, user_id: int) -> bool:
        return await self.services.is_admin(user_id)

    def _check_available(self, client_id: str | None) -> None:
        if not self.services.committer.available:
            raise FrameError(ErrorCode.UNAVAILABLE,
                             "storage is failing and the retry buffer is full; try again later",
                             client_id)

    async def _submit(self, record: MessageRecord, target: Target, fp: bytes | None) -> None:
        committer = self.services.committer
        pending = Pending(message=record, target=target, frame=message_frame(record),
                          origin=self.conn, client_id=record.client_id)
        receipt = None
        if record.client_id is not None and fp is not None:
            receipt = pending.receipt = Receipt(fp, pending, trio.current_time())
        await committer.submit(pending)
        # registered once queued: a send cancelled while the queue was full leaves no receipt
        # behind for a resend to wait on forever (if the commit ran meanwhile, the receipt is
        # settled already, as any is once its message is routed)
        if receipt is not None and record.client_id is not None:
            self.services.recent_sends.add(record.sender_id, record.client_id, receipt)

    async def _resent(self, client_id: str, fp: bytes) -> bool:
        """Answer a resend of an accepted frame with its original ack (True); refuse a
        different frame under a used ``client_id``; False for a new ``client_id``."""
        user_id = self.conn.user_id
        now = trio.current_time()
        receipt = self.services.recent_sends.get(user_id, client_id, now)
        check_store = now < self.check_store_until
        if receipt is not None and receipt.reused:  # the stored message is the one to match
            receipt, check_store = None, True
        if receipt is not None:
            if receipt.fingerprint != fp:
                raise FrameError(ErrorCode.CLIENT_ID_REUSED, reused_message(client_id),
                                 client_id)
            pending = receipt.pending
            if pending is not None:  # still being committed: answer as it is answered
                if pending.done is None:
                    pending.done = trio.Event()
                await pending.done.wait()
            if receipt.reused:
                raise FrameError(ErrorCode.CLIENT_ID_REUSED, reused_message(client_id),
                                 client_id)
            self.registry.reply(self.conn, protocol.encode_ack(
                client_id, receipt.id, receipt.created_at, receipt.persisted))
            return True
        if not check_store:
            return False
        stored = await self.services.persister.find_by_client_id(user_id, client_id)
        if stored is None:
            return False
        if record_fingerprint(stored) != fp:
            raise FrameError(ErrorCode.CLIENT_ID_REUSED, reused_message(client_id), client_id)
        self.registry.reply(self.conn, protocol.encode_ack(client_id, stored.id,
                                                          stored.created_at, True))
        return True

    async def replay(self, since: int, since_notification: int | None) -> None:
        """Write what the client missed, then ``synced``; live frames wait in the outbox.

        The plan reads ids and sizes only; the records are then read, encoded and written one
        page at a time (each written before the next is read), so a client that does not read
        holds about one page in memory, not the whole replay.
        """
        svc = self.services
        persister = svc.persister
        user_id = self.conn.user_id
        limit = self.settings.replay_limit
        # serve_connection waited for this node's hold on the user to be recorded before the
        # handshake: whatever another node routes from then on reaches this connection, and
        # the replay below covers everything before it
        lookback = svc.resume_lookback
        message_sizes, notification_sizes = await persister.replay_sizes(
            user_id, since=looked_back(since, lookback) or 0,
            since_notification=looked_back(since_notification, lookback), limit=limit)
        window, gap_from = plan_replay(message_sizes, notification_sizes, limit,
                                       self.settings.replay_bytes, since=since,
                                       since_notification=since_notification)
        horizon = svc.retention.horizon()
        if gap_from is None and since < horizon:  # older ones were deleted (retention)
            gap_from = window[0].id if window else horizon
        del message_sizes, notification_sizes
        svc.metrics.replays.inc()
        replayed: set[int] = set()
        self.replayed = replayed
        head: list[bytes] = []
        if gap_from is not None:
            head.append(protocol.encode({"type": "sync_gap", "from_id": gap_from}))
        last_id, last_note = since, since_notification
        for page in replay_pages(window, REPLAY_PAGE_ROWS, REPLAY_PAGE_BYTES):
            messages, notifications = await persister.replay_page(
                user_id, [i.id for i in page if not i.notification],
                [i.id for i in page if i.notification])
            frames = [(m.id, message_frame(m)) for m in messages]
            frames += [(n.id, notification_frame(n)) for n in notifications]
            frames.sort(key=lambda pair: pair[0])
            # never below the client's own cursors (a look-back replays from before them)
            last_id = max([last_id, *(m.id for m in messages)])
            if notifications:
                last_note = max([last_note or 0, *(n.id for n in notifications)])
            out = head + [protocol.encode(f) for _, f in frames]
            replayed.update(fid for fid, _ in frames)
            head = []
            del messages, notifications, frames  # only the encoded page waits for the socket
            await self._write_replay(out)
        # the edits and deletes, and the read markers, since: state, not events, so a
        # look-back (always: their ids are taken before their own write commits, on one node
        # too) costs only a few frames sent again
        back = looked_back(since, max(lookback, CHANGES_LOOKBACK_SECONDS)) or 0
        changed = await svc.store.changed_since(user_id, back, limit + 1)
        if len(changed) > limit:  # more than a replay carries: the client reloads history
            changed = changed[-limit:]
            head.append(protocol.encode({"type": "sync_gap", "from_id": since}))
        for start in range(0, len(changed), CHANGES_PAGE_ROWS):
            some = changed[start:start + CHANGES_PAGE_ROWS]
            records, _ = await svc.store.replay_page(user_id, [mid for mid, _ in some], [])
            current = {r.id: r for r in records}
            out = head + [protocol.encode(change_frame(current[mid], id_to_iso(change_id)))
                          for mid, change_id in some if mid in current]
            head = []
            del records, current
            await self._write_replay(out)
        markers = await svc.store.read_markers_since(user_id, back, limit)
        head += [protocol.encode(read_frame(marker)) for marker in markers]
        synced: dict[str, object] = {"type": "synced", "last_id": last_id}
        if since_notification is not None:
            synced["last_notification_id"] = last_note
        await self._write_replay([*head, protocol.encode(synced)])
        self.dedupe_until = trio.current_time() + DEDUPE_SECONDS

    async def _write_replay(self, out: list[bytes]) -> None:
        """Write replay frames, counted in ``trionet_replay_buffered_bytes`` until written."""
        size = sum(map(len, out))
        buffered = self.services.metrics.replay_buffered_bytes
        buffered.inc(size)
        try:
            await self.ws.send_frames(out, self.coalesce)
        finally:
            buffered.dec(size)

    def already_replayed(self, frame: bytes) -> bool:
        if not self.still_deduplicating():
            self.replayed = _NOTHING_REPLAYED
            return False
        fid = frame_id(frame)
        return fid is not None and fid in self.replayed

    async def writer(self, outbox: trio.MemoryReceiveChannel[Outgoing],
                     resume: tuple[int, int | None] | None) -> None:
        if resume is not None:
            await self.replay(*resume)
        conn = self.conn
        write_through = conn.write_now is not None
        send_frames = self.ws.send_frames
        joined = self.coalesce
        while True:
            try:
                first: Outgoing | None = outbox.receive_nowait()
            except trio.WouldBlock:
                first = None
            except trio.EndOfChannel:
                break
            if first is None:
                # idle: frames pushed from now on are written through, until one is not
                # (waited for outside the except block: an idle connection keeps no traceback)
                if write_through and self.replayed and not self.still_deduplicating():
                    self.replayed = _NOTHING_REPLAYED
                conn.idle = write_through and not self.replayed
                try:
                    first = await outbox.receive()
                except trio.EndOfChannel:
                    break
                finally:
                    conn.idle = False
            if not isinstance(first, bytes):  # the rest of a write-through: it goes first
                await first.finish()
                continue
            batch = [first]  # everything queued goes out in one write
            while len(batch) < COALESCE_MAX:
                try:
                    item = outbox.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
                assert isinstance(item, bytes), "an unfinished write is only queued first"
                batch.append(item)
            if self.replayed:
                batch = [f for f in batch if not self.already_replayed(f)]
                if not batch:
                    continue
            await send_frames(batch, joined)
        # the manager ended this connection: queued frames are out, now the close
        code = self.conn.close_code or 1000
        await self.ws.close(code, _REASONS.get(code, ""))

    def still_deduplicating(self) -> bool:
        return trio.current_time() <= self.dedupe_until


_REASONS: dict[int, str] = {
    CloseCode.GOING_AWAY: "server going away",
    CloseCode.POLICY_VIOLATION: "rate limit exceeded",
    CloseCode.MESSAGE_TOO_BIG: "message too big",
    CloseCode.SESSION_ENDED: "session ended",
    CloseCode.SLOW_CONSUMER: "slow consumer",
}


async def serve_connection(
    services: ConnectionServices,
    ws: Transport,
    identity: Identity,
    *,
    coalesce: bool = False,
    since: int | None = None,
    since_notification: int | None = None,
    accept: Callable[[], Awaitable[None]],
) -> None:
    """Run one connection until either side ends it.

    ``accept`` (answering the handshake) is called once the connection is registered for live
    delivery here and, on several nodes, once this node's hold on the user is recorded in
    Redis: whatever is sent to the user after the client sees the connection open reaches it
    from any node. (The first connection of a user on a node waits one round trip to Redis
    for that, at most ``JOIN_WAIT_SECONDS`` while Redis is unreachable.)

    With ``since``, the connection first replays what the client missed (see
    ``docs/protocol.md``, Resume); it is registered for live delivery before the replay query,
    so nothing falls between the two.
    """
    send, receive = trio.open_memory_channel[Outgoing](services.settings.send_queue)
    conn = services.registry.connection(identity, send)
    write_through = getattr(ws, "write_through", None)
    if write_through is not None:
        conn.write_now = write_through(coalesce)
    session = _Session(services, conn, ws)
    session.coalesce = coalesce
    resume = None if since is None else (since, since_notification)
    if resume is not None:
        session.check_store_until = trio.current_time() + DEDUPE_SECONDS
    services.registry.register(conn)
    services.open_handlers += 1
    try:
        await services.backplane.joined(identity.user_id)
        await accept()
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
        services.registry.unregister(conn)
        services.open_handlers -= 1
        conn.closed = True
        conn.idle = False
        send.close()
        _abandon_unfinished(receive)


def _abandon_unfinished(outbox: trio.MemoryReceiveChannel[Outgoing]) -> None:
    """Release the send lock an unwritten rest of a write-through holds (the connection is
    over; hypercorn still writes its close)."""
    while True:
        try:
            item = outbox.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel):
            return
        if not isinstance(item, bytes):
            item.abandon()
