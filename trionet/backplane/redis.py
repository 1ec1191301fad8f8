"""The Redis backplane: several processes (nodes), on one host or many, act as one server.

One owner task per node holds the Redis client (coredis, which runs on trio through anyio;
its contexts must be entered and left in one task) and the two links of the hot path, made
with the client's URL, TLS context and credentials (:mod:`trionet.backplane.resp`: coredis's
CPU per command was more than the rest of a cross-node message). Under it:

- **the outbound task** sends, in order and pipelined on its link, what the manager handed
  over: each committed batch (or ephemeral send) once, through one script that publishes it
  to each *other* live node holding one of its recipients (``P:to:<node>``), or to ``P:all``
  for everyone; control events to ``P:all``; and the node's users joining and leaving
  (``P:where:<user>``). The manager never waits for Redis: this node's own connections get
  every batch at once (:meth:`publish` hands it to the sink first), and the rest waits in a
  queue bounded in bytes;
- **the listener** hands what arrives on ``P:to:<node>`` and ``P:all`` (its link's
  subscription) to the node's sink;
- **the lease**: a worker number (0-63, for message ids) and the node's name, leased with a
  TTL and renewed; with it, a heartbeat published to the node's own channel, so a listener
  that hears nothing any more (a deaf node) is detected and the connection restarted;
- **the reaper**: a node whose lease expired (it died) is reaped by whichever live node
  gets there first, atomically: its users are removed and those no node holds any more go
  offline, announced by the reaper.

Failures: a lost Redis connection (or any failure of these tasks) is logged, counted in
``trionet_backplane_reconnects_total`` and retried with a growing delay; meanwhile the node
serves its own connections, ``ready`` is false (``/readyz`` answers 503), and what it could
not send waits (persisted batches first; past :data:`OUTBOUND_BYTES` the oldest go). Once it
is back, the node's connections are closed with 1012 so that they reconnect and resume (they
may have missed what other nodes sent meanwhile), and if persisted frames were dropped from
the queue every node does the same (a :class:`~trionet.core.events.Resync`).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import coredis
import trio
from coredis.exceptions import RedisError
from prometheus_client import Counter, Gauge

from ..core.events import (
    ControlEvent,
    Delivery,
    PresenceChanged,
    Resync,
    pack,
    unpack,
)
from ..core.routing import ToAll, ToGroup
from ..metrics import Metrics
from .interface import BackplaneSink
from .redis_keys import ACQUIRE, JOIN, LEAVE, REAP_CHUNK, REAP_CLAIM, RENEW, ROUTE, WORKERS, Keys
from .resp import RespLink

__all__ = ["RedisBackplane", "BackplaneUnavailable", "OUTBOUND_BYTES"]

log = logging.getLogger("trionet.backplane")

#: most bytes of batches and events waiting for Redis while it is unreachable
OUTBOUND_BYTES = 32 * 1024 * 1024
#: the node's lease (TRIONET_REDIS_LEASE): renewed, and a heartbeat sent, every fifth of it
LEASE_SECONDS = 15.0
#: reconnect delays: the first, and the most
RETRY_FIRST = 0.2
RETRY_MAX = 5.0
#: seconds to connect to Redis, and to wait for a reply
CONNECT_TIMEOUT = 2.0
STREAM_TIMEOUT = 5.0
#: most queued ops sent in one pipeline
SEND_BATCH = 256
#: users reaped from a dead node per script call
REAP_CHUNK_USERS = 1000
#: how long a connection waits for its user's join to reach Redis before going on
JOIN_WAIT_SECONDS = 2.0
_HEARTBEAT = b"hb"


class BackplaneUnavailable(Exception):
    """Redis could not be used (lease lost, deaf listener...): reconnect. ``reason`` labels
    ``trionet_backplane_reconnects_total``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(slots=True)
class _Op:
    """One thing for Redis, in order: a payload to route (``users`` None: to every node),
    a control event for every node, or a user joining or leaving this node."""

    kind: str  # "route", "all", "join", "leave"
    payload: bytes = b""
    users: frozenset[int] | None = None
    user_id: int = 0
    persisted: bool = False
    #: for a join or leave: the how-many-th of its user's (only the newest may mark the user
    #: joined)
    generation: int = 0

    @property
    def size(self) -> int:
        return len(self.payload) + 8 * (len(self.users) if self.users else 1) + 64


class RedisBackplane:
    """The :class:`~trionet.backplane.Backplane` of a node in a deployment on one Redis."""

    def __init__(
        self,
        url: str,
        prefix: str,
        node: str,
        *,
        metrics: Metrics,
        on_worker: Callable[[int | None], None] = lambda worker: None,
        members_of: Callable[[int], Collection[int] | None] = lambda group_id: None,
        outbound_bytes: int = OUTBOUND_BYTES,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        self.url = url
        self.keys = Keys(prefix)
        self.node = node
        self._on_worker = on_worker
        #: the freshest member list this node knows of a group (its membership cache)
        self._members_of = members_of
        self.worker: int | None = None
        self._outbound_bytes = outbound_bytes
        self._lease_ms = int(lease_seconds * 1000)
        # renewed (and the heartbeat sent) five times a lease, dead nodes looked for as often;
        # deaf: no heartbeat heard for two thirds of a lease
        self._renew = self._reap = lease_seconds / 5
        self._deaf = max(2.0, lease_seconds * 2 / 3)
        self._sink: BackplaneSink | None = None
        self._queue: deque[_Op] = deque()
        self._queued_bytes = 0
        self._in_flight = 0
        self._wake = trio.Event()
        #: persisted frames were dropped from the queue: every node must resync
        self._lost = False
        #: the nodes holding each user, cluster-wide (a replica kept from presence events)
        self._where: dict[int, set[str]] = {}
        #: users whose join reached Redis; waiters for those in flight
        self._joined: set[int] = set()
        self._join_waiters: dict[int, trio.Event] = {}
        #: per user with a join or leave queued: the newest one's generation
        self._presence_ops: dict[int, int] = {}
        self._generations = itertools.count(1)
        self._heard = time.monotonic()
        #: this node's messages are numbered; the last number seen of each other node's
        self._seq = itertools.count(1)
        self._last_seq: dict[str, int] = {}
        self.ready = False
        self._started = False
        self._renewed_at = time.monotonic()
        #: ids stop this long before the lease could lapse
        self._margin = max(1.0, lease_seconds / 5)
        #: a newly leased number is not used before this (monotonic) time
        self._hold_until = 0.0
        self._fenced = False
        #: the Redis client while connected (other tasks may send commands on it; only the
        #: owner task enters and leaves it)
        self.client: Any = None
        r = metrics.registry
        self.m_connected = Gauge("trionet_backplane_connected",
                                 "1 while the Redis backplane is connected", registry=r)
        self.m_reconnects = Counter(
            "trionet_backplane_reconnects",
            "Redis backplane connections lost or refused (and retried), by reason",
            ["reason"], registry=r)
        self.m_published = Counter("trionet_backplane_published",
                                   "Messages published to other nodes", registry=r)
        self.m_received = Counter("trionet_backplane_received",
                                  "Messages received from other nodes", registry=r)
        self.m_dropped = Counter(
            "trionet_backplane_dropped",
            "Batches and events dropped while Redis was unreachable (queue full), by kind",
            ["kind"], registry=r)
        self.m_queued = Gauge("trionet_backplane_queued_bytes",
                              "Bytes waiting for the Redis backplane", registry=r)
        self.m_resyncs = Counter(
            "trionet_backplane_resyncs",
            "Times this node's connections were asked to resume (1012) after an outage",
            registry=r)

    # -- what the node asks -------------------------------------------------------------------

    def is_online(self, user_id: int) -> bool:
        """True while any node holds a connection of the user (as this node last heard)."""
        return user_id in self._where

    async def joined(self, user_id: int) -> None:
        """Return once this node's hold on the user is recorded in Redis (so that whatever
        another node routes from now on reaches this node), or after
        :data:`JOIN_WAIT_SECONDS` while Redis is unreachable."""
        if user_id in self._joined:
            return
        event = self._join_waiters.get(user_id)
        if event is None:
            event = self._join_waiters[user_id] = trio.Event()
        with trio.move_on_after(JOIN_WAIT_SECONDS):
            await event.wait()

    async def flush(self) -> None:
        """Wait until everything queued for Redis is sent (while Redis is reachable)."""
        while self._queue and self.ready:  # noqa: ASYNC110 (a graceful stop: rare, short)
            await trio.sleep(0.01)

    async def publish(self, batch: Sequence[Delivery], *, stored: bool = False) -> int:
        sent = self._bound().deliver(batch)
        users: set[int] = set()
        everyone = False
        for delivery in batch:
            target = delivery.target
            if isinstance(target, ToAll):
                everyone = True
                break
            if isinstance(target, ToGroup):  # the members at commit, and any added since
                users.update(target.members)
                current = self._members_of(target.group_id)
                if current:
                    users.update(current)
            else:
                users.update(target.user_ids)
        payload = self._pack(batch)
        if everyone:
            self._put(_Op("all", payload, persisted=stored))
        elif users:
            self._put(_Op("route", payload, frozenset(users), persisted=stored))
        return sent

    async def publish_control(self, event: ControlEvent) -> int:
        if isinstance(event, PresenceChanged) and event.node == self.node:
            # this node's first connection of a user opened, or its last closed: recorded in
            # Redis first, announced (by this node) only if it is the first or last anywhere
            generation = next(self._generations)
            self._presence_ops[event.user_id] = generation
            if not event.online:  # from now on a connection must wait for its rejoin
                self._joined.discard(event.user_id)
            self._put(_Op("join" if event.online else "leave", self._pack([event]),
                          user_id=event.user_id, generation=generation))
            self._seen(event)
            return 0
        closed = self._bound().control(event)
        self._put(_Op("all", self._pack([event]), persisted=True))
        return closed

    # -- queueing -----------------------------------------------------------------------------

    def _pack(self, items: Sequence[Delivery | ControlEvent]) -> bytes:
        return pack(self.node, items, next(self._seq))

    def _bound(self) -> BackplaneSink:
        if self._sink is None:
            raise RuntimeError("the backplane is not running")
        return self._sink

    def _put(self, op: _Op) -> None:
        self._queue.append(op)
        self._queued_bytes += op.size
        # past the bound the oldest go, but never one a pipeline is sending now
        while self._queued_bytes > self._outbound_bytes and len(self._queue) > self._in_flight + 1:
            dropped = self._queue[self._in_flight]
            del self._queue[self._in_flight]
            self._queued_bytes -= dropped.size
            self.m_dropped.labels(dropped.kind).inc()
            if dropped.persisted or dropped.kind in ("join", "leave"):
                self._lost = True
            if dropped.generation and \
                    self._presence_ops.get(dropped.user_id) == dropped.generation:
                del self._presence_ops[dropped.user_id]
                waiter = self._join_waiters.pop(dropped.user_id, None)
                if waiter is not None:  # its join is lost: the reconnect's resync covers it
                    waiter.set()
        self.m_queued.set(self._queued_bytes)
        self._wake.set()

    def _seen(self, event: PresenceChanged) -> None:
        """Keep the replica of who is where."""
        nodes = self._where.get(event.user_id)
        if event.online:
            if nodes is None:
                self._where[event.user_id] = {event.node}
            else:
                nodes.add(event.node)
        elif nodes is not None:
            nodes.discard(event.node)
            if not nodes:
                del self._where[event.user_id]

    # -- the owner task -----------------------------------------------------------------------

    async def run(
        self, sink: BackplaneSink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Connect, lease, listen and send until cancelled, reconnecting whenever Redis is
        lost; ``started`` once connected the first time (start-up waits for Redis)."""
        self._sink = sink
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._fence_ids)
                await self._reconnecting(task_status)
                nursery.cancel_scope.cancel()
        finally:
            self._sink = None
            self.ready = False
            self.m_connected.set(0)

    async def _reconnecting(self, task_status: trio.TaskStatus[None]) -> None:
        delay = RETRY_FIRST
        while True:
            started_at = time.monotonic()
            try:
                await self._session(task_status)
            except Exception as exc:  # any failure: reconnect (never a silent deaf node)
                reason = _reason(exc)
                self.m_reconnects.labels(reason).inc()
                was_ready, self.ready = self.ready, False
                self.m_connected.set(0)
                if not self._started:
                    log.warning("Redis backplane at %s unreachable (%s); retrying in"
                                " %.1f s: this node serves nothing until it is reached",
                                _shown(self.url), _describe(exc), delay)
                else:
                    log.warning("Redis backplane %s (%s); reconnecting in %.1f s",
                                "lost" if was_ready else "still unreachable",
                                _describe(exc), delay)
            if time.monotonic() - started_at > 2 * RETRY_MAX:
                delay = RETRY_FIRST  # it had been up a while: retry soon
            await trio.sleep(delay)
            delay = min(RETRY_MAX, delay * 2)

    async def _session(self, task_status: trio.TaskStatus[None]) -> None:

        client = coredis.Redis.from_url(self.url, decode_responses=False,
                                        connect_timeout=CONNECT_TIMEOUT,
                                        stream_timeout=STREAM_TIMEOUT)
        async with client:
            await client.ping()
            scripts = {name: client.register_script(text) for name, text in (
                ("acquire", ACQUIRE), ("renew", RENEW), ("join", JOIN), ("leave", LEAVE),
                ("route", ROUTE), ("claim", REAP_CLAIM), ("reap", REAP_CHUNK))}
            await self._lease(client, scripts)
            # the hot path's links (see trionet.backplane.resp), both opened before the node
            # is ready; subscribed before it reads who is where, so that no change is missed
            async with await self._link(client, "listen") as listener, \
                    await self._link(client, "send") as sender:
                await listener.subscribe([self.keys.to(self.node), self.keys.all])
                await self._rejoin(client)
                await self._load_replica(client)
                self.ready = True
                self.m_connected.set(1)
                self._heard = time.monotonic()
                if not self._started:
                    log.info("Redis backplane connected: node %s, worker %d",
                             self.node, self.worker)
                    self._started = True
                    task_status.started()
                else:
                    log.info("Redis backplane reconnected: node %s, worker %d; this node's"
                             " connections resume (1012)", self.node, self.worker)
                    self._resync_local()
                if self._lost:  # persisted frames meant for other nodes were dropped
                    self._lost = False
                    self._put(_Op("all", self._pack([Resync(self.node)]), persisted=True))
                self.client = client  # (for the login throttle: only once all is set up)
                try:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._listen, listener)
                        nursery.start_soon(self._send, sender, scripts)
                        nursery.start_soon(self._keep_lease, client, scripts)
                        nursery.start_soon(self._reap_dead, client, scripts)
                finally:
                    self.client = None

    async def _link(self, client: Any, role: str) -> RespLink:
        return await RespLink.open(self.url, client, connect_within=CONNECT_TIMEOUT,
                                   reply_within=STREAM_TIMEOUT,
                                   name=f"{self.keys.prefix}:{self.node}:{role}")

    async def _fence_ids(self) -> None:
        """No two nodes ever allocate ids with one worker number.

        While the lease is not renewed (Redis unreachable) it may lapse and another node may
        take the number: ids stop (sends get ``unavailable``) a fifth of a lease before that
        can happen, until the lease is renewed or another number leased. And a number newly
        taken while Redis has been up for less than a lease (it restarted, and forgot the
        leases) may still be in use by a node that has not reconnected yet: it is not used
        before that node must have stopped."""
        while True:
            await trio.sleep(0.25)
            self._apply_fence()

    def _apply_fence(self) -> None:
        now = time.monotonic()
        late = now - self._renewed_at > self._lease_ms / 1000 - self._margin
        fence = self.worker is not None and (late or now < self._hold_until)
        if fence and not self._fenced:
            self._fenced = True
            if late:
                log.warning("the Redis lease of worker %d was not renewed for %.0f s: no new"
                            " message ids until it is", self.worker, now - self._renewed_at)
            else:
                log.warning("worker number %d is newly leased from a Redis up for less than a"
                            " lease: no new message ids for %.0f s (another node may still"
                            " use it)", self.worker, self._hold_until - now)
            self._on_worker(None)
        elif not fence and self._fenced and self.worker is not None:
            self._fenced = False
            self._on_worker(self.worker)

    def _renewed(self, sent_at: float) -> None:
        """The lease was renewed by a request sent at ``sent_at`` (its TTL runs from then)."""
        self._renewed_at = sent_at
        self._apply_fence()

    async def _lease(self, client: Any, scripts: dict[str, Any]) -> None:
        sent_at = time.monotonic()
        worker, kept = (int(v) for v in await scripts["acquire"](
            keys=[self.keys.nodes, self.keys.node(self.node)],
            args=[self.keys.prefix, self.node, self._lease_ms, WORKERS,
                  -1 if self.worker is None else self.worker]))
        if worker < 0:
            raise BackplaneUnavailable("lease", f"all {WORKERS} worker numbers are leased")
        if not kept:  # a number this node did not hold: did Redis forget who held it?
            info = await client.info("server")
            uptime = float(info.get("uptime_in_seconds", 1e9))
            lease = self._lease_ms / 1000
            if uptime < lease:
                self._hold_until = sent_at + (lease - uptime)
        if worker != self.worker:
            if self.worker is not None:
                log.warning("worker number %d was lost while Redis was unreachable; this node"
                            " allocates ids as worker %d now", self.worker, worker)
            self.worker = worker
            self._fenced = True  # the new number is given to the allocator by _apply_fence
            self._on_worker(None)
        self._renewed(sent_at)

    async def _rejoin(self, client: Any) -> None:
        """After a reconnect, make Redis say what this node holds: record every user it holds
        (it may have been reaped meanwhile) and tell the other nodes' replicas; a user Redis
        still has for it but it no longer holds (a leave that was lost) leaves now."""
        users = [uid for uid, nodes in self._where.items() if self.node in nodes]
        stored = {int(u) for u in await client.smembers(self.keys.held(self.node))}
        if users:
            async with client.pipeline(transaction=False) as pipe:
                pipe.sadd(self.keys.held(self.node), users)
                for uid in users:
                    pipe.sadd(self.keys.where(uid), [self.node])
                pipe.sadd(self.keys.nodes, [self.node])
            for start in range(0, len(users), 500):
                self._put(_Op("all", self._pack([PresenceChanged(uid, True, self.node)
                                                 for uid in users[start:start + 500]])))
        self._joined.update(u for u in users if u not in self._presence_ops)
        for uid in stored.difference(users):
            if uid not in self._presence_ops:  # (a leave still queued will do it)
                await self.publish_control(PresenceChanged(uid, False, self.node))

    async def _load_replica(self, client: Any) -> None:
        """Who is where, from Redis (every live node's users), then kept by events."""
        names = [n.decode() for n in await client.smembers(self.keys.nodes)]
        where: dict[int, set[str]] = {}
        for name in names:
            if name == self.node or not await client.exists([self.keys.node(name)]):
                continue
            for raw in await client.smembers(self.keys.held(name)):
                where.setdefault(int(raw), set()).add(name)
        for uid, nodes in self._where.items():
            if self.node in nodes:
                where.setdefault(uid, set()).add(self.node)
        self._where = where

    def _resync_local(self) -> None:
        self.m_resyncs.inc()
        self._bound().control(Resync(self.node))

    async def _listen(self, listener: RespLink) -> None:
        sink = self._bound()
        mine = self.keys.to(self.node).encode()
        while True:
            channel, data = await listener.message()
            self._heard = time.monotonic()
            if data == _HEARTBEAT and channel == mine:
                continue
            try:
                origin, seq, items = unpack(data)
            except ValueError:
                log.warning("ignored a backplane message that is not trionet's")
                continue
            if origin == self.node:
                continue  # this node's own, on P:all: handled when it was published
            if seq <= self._last_seq.get(origin, 0):
                continue  # a copy: a publish retried after a lost reply
            self._last_seq[origin] = seq
            self.m_received.inc()
            deliveries = [item for item in items if isinstance(item, Delivery)]
            if deliveries:
                sink.deliver(deliveries)
            for item in items:
                if isinstance(item, PresenceChanged):
                    self._seen(item)
                elif not isinstance(item, Delivery):
                    sink.control(item)

    async def _send(self, link: RespLink, scripts: dict[str, Any]) -> None:
        sink = self._bound()
        while True:
            if not self._queue:
                self._wake = trio.Event()
                await self._wake.wait()
                continue
            # everything queued meanwhile goes in one pipeline (one round trip), in order
            ops = list(itertools.islice(self._queue, SEND_BATCH))
            self._in_flight = len(ops)
            try:
                # an error of one command (Redis out of memory, say) costs that op only;
                # a lost connection fails the whole pipeline, which is sent again later
                results = await link.pipeline([self._command(op, scripts) for op in ops])
            finally:
                self._in_flight = 0
            for op, result in zip(ops, results, strict=True):
                self._queue.popleft()
                self._queued_bytes -= op.size
                if isinstance(result, RedisError):
                    log.error("Redis refused a backplane %s: %s", op.kind, result)
                    self.m_dropped.labels(op.kind).inc()
                    if op.persisted or op.generation:
                        self._lost = True  # the next reconnect makes every node resume
                    continue
                self._done(op, result, sink)
            self.m_queued.set(self._queued_bytes)

    def _command(self, op: _Op, scripts: dict[str, Any]) -> tuple[bytes | str | int, ...]:
        """The Redis command of one op. Scripts go as ``EVAL`` (Redis caches them by digest):
        an ``EVALSHA`` that Redis refuses with ``NOSCRIPT`` (its script cache flushed) in the
        middle of a pipeline, after which later ops arrived, could not be sent again without
        the receivers taking it for a copy (they deduplicate by sequence number)."""
        if op.kind == "route":
            assert op.users is not None
            return ("EVAL", scripts["route"].script, 0, self.keys.prefix, self.node,
                    op.payload, ",".join(map(str, op.users)))
        if op.kind == "all":
            return ("PUBLISH", self.keys.all, op.payload)
        return ("EVAL", scripts[op.kind].script, 2, self.keys.where(op.user_id),
                self.keys.held(self.node), self.node, op.user_id, op.payload, self.keys.all)

    def _done(self, op: _Op, result: Any, sink: BackplaneSink) -> None:
        if op.kind in ("route", "all"):
            self.m_published.inc()
            return
        newest = self._presence_ops.get(op.user_id) == op.generation
        if newest:
            del self._presence_ops[op.user_id]
            if op.kind == "join":  # (a join with a leave queued after it marks nothing)
                self._joined.add(op.user_id)
                waiter = self._join_waiters.pop(op.user_id, None)
                if waiter is not None:
                    waiter.set()
        if int(result):  # the first connection anywhere, or the last: announce it
            sink.control(PresenceChanged(op.user_id, op.kind == "join", self.node))

    async def _keep_lease(self, client: Any, scripts: dict[str, Any]) -> None:
        assert self.worker is not None
        while True:
            await trio.sleep(self._renew)
            sent_at = time.monotonic()
            kept = await scripts["renew"](
                keys=[self.keys.node(self.node), self.keys.worker(self.worker)],
                args=[self.node, self.worker, self._lease_ms])
            if not int(kept):  # the keys are gone (flushed?): stop ids at once, lease again
                self._renewed_at = -1e9
                self._apply_fence()
                raise BackplaneUnavailable("lease", "the node's lease expired")
            self._renewed(sent_at)
            await client.publish(self.keys.to(self.node), _HEARTBEAT)
            if time.monotonic() - self._heard > self._deaf:
                raise BackplaneUnavailable(
                    "deaf", f"the listener heard nothing for {self._deaf:.0f} s")

    async def _reap_dead(self, client: Any, scripts: dict[str, Any]) -> None:
        while True:
            await trio.sleep(self._reap)
            for raw in await client.smembers(self.keys.nodes):
                name = raw.decode()
                if name == self.node or await client.exists([self.keys.node(name)]):
                    continue
                if int(await scripts["claim"](keys=[self.keys.nodes, self.keys.reaping],
                                              args=[self.keys.prefix, name])):
                    log.warning("node %s stopped renewing its lease: reaping its users", name)
                    self._last_seq.pop(name, None)
            # the reaps under way: this node's claims, and any another node left unfinished
            for raw in await client.smembers(self.keys.reaping):
                await self._reap_one(raw.decode(), scripts)

    async def _reap_one(self, name: str, scripts: dict[str, Any]) -> None:
        sink = self._bound()
        total = offline = 0
        while True:  # in chunks: Redis is never blocked for long
            held, gone = ([int(u) for u in part] for part in await scripts["reap"](
                keys=[self.keys.reaping], args=[self.keys.prefix, name, REAP_CHUNK_USERS]))
            if not held:
                break
            total, offline = total + len(held), offline + len(gone)
            events = [PresenceChanged(uid, False, name) for uid in held]
            for event in events:
                self._seen(event)
            self._put(_Op("all", self._pack(events)))
            for uid in gone:  # this node announces them (the dead one cannot)
                if uid not in self._where:
                    sink.control(PresenceChanged(uid, False, self.node))
        if total:
            log.warning("reaped %d users of node %s (%d of them now offline)", total, name,
                        offline)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        inner = exc.exceptions[0] if exc.exceptions else exc
        return _reason(inner)
    if isinstance(exc, BackplaneUnavailable):
        return exc.reason
    if isinstance(exc, (OSError, TimeoutError, coredis.exceptions.ConnectionError)):
        return "connection"
    return "error"


def _describe(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _shown(url: str) -> str:
    """The URL without a password."""
    if "@" in url:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.rpartition('@')[2]}"
    return url

