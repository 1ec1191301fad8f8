"""Group commit: everything that arrives while one commit runs goes into the next one.

Delivery waits for the commit, so history never lags what clients were shown, but never
longer than ``commit_timeout``: after that (or when the commit fails) the batch is delivered
with ``persisted: false`` and its records are written again, with backoff, from a bounded
retry buffer.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import trio

from ..core.dedupe import Receipt, record_fingerprint
from ..interfaces import MessagePersister, MessageRecord, NotificationRecord
from ..metrics import Metrics
from ..store.interface import InlineSaver

__all__ = ["GroupCommitter", "Pending"]

log = logging.getLogger("trionet.persist")

MAX_BATCH = 5000


class Pending:
    """A record on its way to the database, and what to do once it is there."""

    __slots__ = ("message", "notification", "target", "frame", "origin", "client_id", "done",
                 "persisted", "delivered", "duplicate_of", "reused", "receipt")

    def __init__(
        self,
        *,
        message: MessageRecord | None = None,
        notification: NotificationRecord | None = None,
        target: Any = None,
        frame: dict[str, Any] | None = None,
        origin: Any = None,
        client_id: str | None = None,
        done: trio.Event | None = None,
    ) -> None:
        self.message = message
        self.notification = notification
        self.target = target
        self.frame = frame
        self.origin = origin
        self.client_id = client_id
        self.done = done
        self.persisted = False
        #: set by :meth:`routed`, once the outcome of the commit is known and the frame is
        #: queued to its recipients
        self.delivered = False
        #: (id, created_at) of the message stored earlier with the same sender and client_id
        self.duplicate_of: tuple[int, str] | None = None
        #: the stored message under that pair is a different one: the client reused its
        #: ``client_id`` for another frame, which is refused (never acked as the original)
        self.reused = False
        #: the resend table's entry for this send, settled once it is delivered
        self.receipt: Receipt[Pending] | None = None

    def routed(self) -> None:
        """Mark the record delivered: its frame is queued to every recipient connection (and
        its ack to the sender's), or the record was dropped. Wakes whoever waits on ``done``."""
        if self.delivered:
            return
        self.delivered = True
        if self.receipt is not None:
            self.receipt.settle(self)
            self.receipt = None
        if self.done is not None:
            self.done.set()


class GroupCommitter:
    """The persister pump. ``deliver`` receives each committed (or given-up-on) batch and calls
    :meth:`Pending.routed` on each of its records once routed."""

    def __init__(
        self,
        persister: MessagePersister,
        deliver: Callable[[list[Pending]], Awaitable[None]],
        *,
        commit_timeout: float,
        retry_capacity: int,
        metrics: Metrics,
        queue_size: int = 8192,
    ) -> None:
        self._persister = persister
        self._deliver = deliver
        self._timeout = commit_timeout
        self._capacity = retry_capacity
        self._metrics = metrics
        self._send, self._recv = trio.open_memory_channel[Pending](queue_size)
        self._retry: deque[Pending] = deque()
        self._retry_wakeup = trio.Event()
        self._unconfirmed = 0  # records whose commit timed out and is still running
        self._inflight = 0  # commits running
        self._nursery: trio.Nursery | None = None
        #: a persister that can commit right away on the loop (SQLite) offers save_inline:
        #: None when it could not store now; a mapping (maybe empty) naming the messages that
        #: were resends of stored ones, as save() may, when it did
        self._save_inline: Callable[[Sequence[MessageRecord], Sequence[NotificationRecord]],
                                    object] | None = (
            persister.save_inline if isinstance(persister, InlineSaver) else None)

    @property
    def available(self) -> bool:
        """False while the database is failing and the retry buffer is full."""
        return len(self._retry) + self._unconfirmed < self._capacity

    @property
    def retry_depth(self) -> int:
        return len(self._retry)

    async def submit(self, pending: Pending) -> None:
        """Queue a record for the next commit (waits while the queue is full).

        With room in the queue this does not yield: a reader goes on to its next read, which
        yields (or waits) anyway, instead of one more scheduling round per message."""
        try:
            self._send.send_nowait(pending)
        except trio.WouldBlock:
            await self._send.send(pending)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._retry_loop)
            task_status.started()
            async for first in self._recv:
                # one scheduling round: readers that are ready to submit join this batch,
                # so under load a commit (and every recipient's write) carries more messages
                await trio.lowlevel.cancel_shielded_checkpoint()
                batch = [first]
                while len(batch) < MAX_BATCH:
                    try:
                        batch.append(self._recv.receive_nowait())
                    except trio.WouldBlock:
                        break
                await self._commit_and_deliver(batch)

    async def _commit_and_deliver(self, batch: list[Pending]) -> None:
        assert self._nursery is not None
        if self._save_inline is not None:  # a commit that cannot block: no task, no timer
            msgs, notes = _records(batch)
            started = trio.current_time()
            try:
                duplicates = self._save_inline(msgs, notes)
            except Exception:
                log.exception("commit of %d records failed; will retry", len(batch))
                self._metrics.persist_failures.inc()
                self._to_retry(batch)
                await self._finish(batch, False)
                return
            if duplicates is not None and duplicates is not False:  # stored (False: not)
                self._observe(started, len(batch))
                await self._flag_reused(_mark_duplicates(batch, duplicates))
                await self._finish(batch, True)
                return
        done = trio.Event()
        outcome: list[bool] = []
        self._inflight += 1
        self._nursery.start_soon(self._commit, batch, done, outcome)
        with trio.move_on_after(self._timeout):
            await done.wait()
        persisted = bool(outcome) and outcome[0]
        if not done.is_set():
            log.warning("commit of %d records still running after %.2fs; delivering unpersisted",
                        len(batch), self._timeout)
            self._metrics.persist_failures.inc()
            self._unconfirmed += len(batch)
            outcome.append(False)  # tells _commit it timed out
        await self._finish(batch, persisted)

    async def _finish(self, batch: list[Pending], persisted: bool) -> None:
        """Hand the batch on; ``deliver`` calls :meth:`Pending.routed` on each record once it
        has been routed to its recipients' connections."""
        for p in batch:
            p.persisted = persisted
        await self._deliver(batch)

    def _observe(self, started: float, records: int) -> None:
        self._metrics.commit_seconds.observe(trio.current_time() - started)
        self._metrics.batch_size.observe(records)

    def _to_retry(self, batch: Sequence[Pending]) -> None:
        self._retry.extend(batch)
        self._metrics.retry_depth.set(len(self._retry))
        self._retry_wakeup.set()

    async def _save(self, batch: Sequence[Pending]) -> None:
        started = trio.current_time()
        duplicates = await self._persister.save(*_records(batch))
        self._observe(started, len(batch))
        if duplicates:
            await self._flag_reused(_mark_duplicates(batch, duplicates))

    async def _flag_reused(self, marked: Sequence[Pending]) -> None:
        """Of the messages caught as copies of stored ones, flag those that are different
        messages under a reused ``client_id`` (rare: a lookup each)."""
        for p in marked:
            m = p.message
            assert m is not None and m.client_id is not None
            try:
                stored = await self._persister.find_by_client_id(m.sender_id, m.client_id)
            except Exception:
                log.exception("client_id look-up failed; treating %r as a resend", m.client_id)
                continue
            if stored is not None and record_fingerprint(stored) != record_fingerprint(m):
                p.reused = True

    async def _commit(self, batch: list[Pending], done: trio.Event, outcome: list[bool]) -> None:
        ok = False
        try:
            await self._save(batch)
            ok = True
        except Exception:
            log.exception("commit of %d records failed; will retry", len(batch))
            if not outcome:
                self._metrics.persist_failures.inc()
        finally:
            self._inflight -= 1
            timed_out = bool(outcome)
            if not timed_out:
                outcome.append(ok)
            else:
                self._unconfirmed -= len(batch)
            if not ok:
                self._to_retry(batch)
            done.set()

    async def _retry_loop(self) -> None:
        backoff = 0.05
        while True:
            await self._retry_wakeup.wait()
            self._retry_wakeup = trio.Event()
            while self._retry:
                chunk = [self._retry[i] for i in range(min(len(self._retry), 1000))]
                try:
                    await self._save(chunk)
                except Exception as exc:
                    log.warning("retry of %d records failed (%s); next try in %.2fs",
                                len(chunk), exc, backoff)
                    await trio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
                    continue
                backoff = 0.05
                for _ in chunk:
                    self._retry.popleft()
                self._metrics.retry_depth.set(len(self._retry))
                log.info("retry wrote %d records; %d left", len(chunk), len(self._retry))

    def idle(self) -> bool:
        """Nothing queued, committing or waiting for a retry."""
        stats = self._recv.statistics()
        return stats.current_buffer_used == 0 and self._inflight == 0 and not self._retry

    async def flush(self) -> bool:
        """Wait until everything submitted is written (the caller bounds the wait)."""
        while not self.idle():  # noqa: ASYNC110 (polls a few counters, bounded by the caller)
            await trio.sleep(0.01)
        return True


def _records(batch: Sequence[Pending]) -> tuple[list[MessageRecord], list[NotificationRecord]]:
    return ([p.message for p in batch if p.message is not None],
            [p.notification for p in batch if p.notification is not None])


Duplicates = Mapping[tuple[int, str], tuple[int, str]]


def _mark_duplicates(batch: Sequence[Pending], duplicates: object) -> list[Pending]:
    """Mark the messages the store caught as copies; returns them."""
    if not isinstance(duplicates, Mapping) or not duplicates:
        return []
    marked = []
    for p in batch:
        m = p.message
        if m is not None and m.client_id is not None:
            p.duplicate_of = duplicates.get((m.sender_id, m.client_id))
            if p.duplicate_of is not None:
                marked.append(p)
    return marked
