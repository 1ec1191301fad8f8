"""Webhooks: trionet tells the backend what it needs for mobile and web push.

With ``TRIONET_WEBHOOK_URL`` and ``TRIONET_WEBHOOK_SECRET`` set, trionet POSTs JSON events::

    {"id": "245645382504448", "type": "message.offline", "created_at": "2026-...",
     "data": {"message": {...the frame...}, "offline_user_ids": [7, 9]}}

- ``message.offline``: a persisted private or group message, with the recipients that had no
  open connection anywhere when it was routed (none: no event);
- ``notification.offline``: the same for a notification;
- ``user.online`` / ``user.offline``: a user's first connection anywhere opened, or their last
  closed (``data``: ``{"user_id": 7}``).

Each request carries ``X-Trionet-Event-Id``, ``X-Trionet-Timestamp`` (Unix seconds) and
``X-Trionet-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>">`` with the secret
(:func:`sign`, :func:`verify`).

Delivery is at least once, deduplicated by ``id``: nothing on the delivery path waits for any
of it. :meth:`Webhooks.committed` (the committer's batches) and :meth:`Webhooks.presence`
only put events in a bounded memory queue (full: dropped and counted); a writer task moves them
into the store's outbox (bounded: :data:`OUTBOX_BOUND` rows, the oldest dropped and counted),
and a sender task POSTs the due ones in order, one at a time, :data:`TIMEOUT` seconds each, and
retries a failure (an error, a timeout, an answer that is not 2xx, a redirect included) after
1, 2, 4... seconds, at most :data:`MAX_DELAY` apart, :data:`MAX_ATTEMPTS` times. The outbox is
in the store, so events survive a restart, and every node may send from it (a claimed event
is leased, so two nodes never send it at once). Counted in ``trionet_webhooks_total{outcome}``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

import trio
from prometheus_client import Counter, Gauge

from ..core.frames import message_frame, notification_frame
from ..core.ids import IdAllocator, id_to_iso
from ..core.routing import ToAll, ToGroup
from ..metrics import Metrics
from ..store import OutboxStore
from .committer import Pending

__all__ = ["MAX_ATTEMPTS", "OUTBOX_BOUND", "Webhooks", "retry_delay", "sign", "verify"]

log = logging.getLogger("trionet.webhooks")

#: events held in memory on their way to the outbox
QUEUE = 10_000
#: most events in the outbox (past it, the oldest are dropped)
OUTBOX_BOUND = 100_000
#: seconds one POST may take
TIMEOUT = 10.0
#: the longest wait between two attempts, seconds
MAX_DELAY = 300.0
#: attempts before an event is dropped (about 45 minutes of retries)
MAX_ATTEMPTS = 15
#: events claimed per round: one, so a claim's lease covers the one POST it waits for
CLAIM = 1
#: seconds a claimed event is held by its sender (then, if that sender died mid-attempt,
#: another takes it): longer than a POST may take
LEASE = TIMEOUT + 2
#: how often the sender looks for due events when there was nothing to do
POLL = 1.0


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Trionet-Signature`` of a request: ``sha256=`` and the hex HMAC-SHA256 of
    ``"<timestamp>.<body>"``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str, *,
           tolerance: float = 300.0, now: float | None = None) -> bool:
    """What a receiver checks: the signature, and a timestamp within ``tolerance`` seconds
    (an old request replayed is refused)."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - sent) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, sent, body), signature)


def retry_delay(attempt: int) -> float:
    """Seconds before the attempt after ``attempt`` (1, 2, 4... at most :data:`MAX_DELAY`)."""
    return float(min(MAX_DELAY, 2 ** max(0, attempt - 1)))


def offline_recipients(pending: Pending, is_online: Callable[[int], bool]) -> list[int]:
    """The recipients of a committed record that have no open connection anywhere."""
    target = pending.target
    if target is None or isinstance(target, ToAll):
        return []
    if pending.notification is not None:
        users: Sequence[int] = (pending.notification.user_id,)
    else:
        members = target.members if isinstance(target, ToGroup) else target.user_ids
        sender = pending.message.sender_id if pending.message is not None else None
        users = sorted(u for u in members if u != sender)
    return [u for u in users if not is_online(u)]


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer that is not 2xx (a POST is never turned into a GET)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Webhooks:
    """Events for the backend: queued by the delivery path, sent by :meth:`run`."""

    def __init__(self, store: OutboxStore, url: str, secret: str, ids: IdAllocator,
                 is_online: Callable[[int], bool], metrics: Metrics) -> None:
        self._store = store
        self.url = url
        self._secret = secret
        self._ids = ids
        self._is_online = is_online
        self._send, self._recv = trio.open_memory_channel[tuple[int, str, int | None]](QUEUE)
        self._wake = trio.Event()
        self.events = Counter("trionet_webhooks", "Webhook events, by outcome (queued, sent,"
                              " retried, dropped)", ["outcome"], registry=metrics.registry)
        self.outbox = Gauge("trionet_webhook_outbox", "Webhook events in the outbox",
                            registry=metrics.registry)

    # -- the delivery path's side: never blocks ---------------------------------------------

    def committed(self, batch: Sequence[Pending]) -> None:
        """Queue the offline events of a committed batch (before it is routed)."""
        for p in batch:
            if p.duplicate_of is not None or p.frame is None:
                continue
            offline = offline_recipients(p, self._is_online)
            if not offline:
                continue
            if p.notification is not None:
                self._emit("notification.offline", {
                    "notification": notification_frame(p.notification),
                    "offline_user_ids": offline})
            elif p.message is not None:
                self._emit("message.offline", {"message": message_frame(p.message),
                                               "offline_user_ids": offline}, p.message.id)

    def presence(self, user_id: int, online: bool) -> None:
        """Queue ``user.online`` / ``user.offline`` (the first connection anywhere opened,
        or the last one closed)."""
        self._emit("user.online" if online else "user.offline", {"user_id": user_id})

    def _emit(self, kind: str, data: dict[str, Any], message_id: int | None = None) -> None:
        event_id = self._ids.next()
        body = json.dumps({"id": str(event_id), "type": kind, "created_at": id_to_iso(event_id),
                           "data": data}, separators=(",", ":"))
        try:
            self._send.send_nowait((event_id, body, message_id))
        except trio.WouldBlock:
            self.events.labels("dropped").inc()
            return
        self.events.labels("queued").inc()

    # -- the tasks ---------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._write)
            nursery.start_soon(self._deliver)
            task_status.started()

    async def _write(self) -> None:
        """Move queued events into the outbox, everything queued at once."""
        while True:
            first = await self._recv.receive()
            events = [first]
            while len(events) < 500:
                try:
                    events.append(self._recv.receive_nowait())
                except trio.WouldBlock:
                    break
            while True:
                try:
                    dropped = await self._store.outbox_add(events, now=time.time(),
                                                           bound=OUTBOX_BOUND)
                    break
                except Exception:  # the store is failing: keep them, try again shortly
                    log.exception("could not store %d webhook events", len(events))
                    await trio.sleep(1.0)
            if dropped:
                self.events.labels("dropped").inc(dropped)
                log.warning("the webhook outbox is full: dropped its %d oldest events", dropped)
            self._wake.set()

    async def _deliver(self) -> None:
        while True:
            try:
                claimed = await self._store.outbox_claim(now=time.time(), lease=LEASE,
                                                         limit=CLAIM)
                if len(claimed) < CLAIM:  # the gauge once a pause, not once an event
                    self.outbox.set(await self._store.outbox_size())
            except Exception:
                log.exception("could not read the webhook outbox")
                claimed = []
            for event_id, body, attempt in claimed:
                await self._attempt(event_id, body.encode(), attempt)
            if len(claimed) < CLAIM:
                self._wake = trio.Event()
                with trio.move_on_after(POLL):
                    await self._wake.wait()

    async def _attempt(self, event_id: int, body: bytes, attempt: int) -> None:
        try:
            status = await trio.to_thread.run_sync(self._post, event_id, body)
            error = None if 200 <= status < 300 else f"HTTP {status}"
        except Exception as exc:  # refused, reset, timed out
            error = f"{type(exc).__name__}: {exc}"
        try:
            if error is None:
                await self._store.outbox_done(event_id)
                self.events.labels("sent").inc()
            elif attempt >= MAX_ATTEMPTS:
                await self._store.outbox_done(event_id)
                self.events.labels("dropped").inc()
                log.error("dropped webhook event %d after %d attempts: %s", event_id, attempt,
                          error)
            else:
                await self._store.outbox_retry(event_id, next_at=time.time()
                                               + retry_delay(attempt))
                self.events.labels("retried").inc()
                log.info("webhook event %d failed (%s); attempt %d in %.0f s", event_id, error,
                         attempt + 1, retry_delay(attempt))
        except Exception:  # the lease runs out and the event comes due again
            log.exception("could not record the outcome of webhook event %d", event_id)

    _opener = urllib.request.build_opener(_NoRedirects)

    def _post(self, event_id: int, body: bytes) -> int:
        timestamp = int(time.time())
        request = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": "trionet-webhooks",
            "X-Trionet-Event-Id": str(event_id), "X-Trionet-Timestamp": str(timestamp),
            "X-Trionet-Signature": sign(self._secret, timestamp, body)})
        try:
            with self._opener.open(request, timeout=TIMEOUT) as response:
                response.read(65536)
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
