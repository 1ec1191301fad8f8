"""Retention: messages and notifications older than ``TRIONET_RETENTION_DAYS`` are deleted.

One task, :meth:`Retention.run`, sweeps every :data:`ROUND_SECONDS`: it deletes what lies
below the horizon (the id of "now minus the retention", ids growing with time) in batches of
:data:`BATCH` rows, one short write transaction each, pausing between batches so that the
committer's writes are never held up for long. History, conversations (a conversation goes
with its latest message), unread counts and replay reflect it: a resume from a cursor below
the horizon gets a ``sync_gap`` (:meth:`Retention.horizon`). Counted in
``trionet_retention_deleted_total{kind}``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import trio
from prometheus_client import Counter

from ..core.ids import id_at
from ..metrics import Metrics
from ..store import RetentionStore

__all__ = ["BATCH", "ROUND_SECONDS", "Retention"]

log = logging.getLogger("trionet.retention")

#: rows deleted per write transaction
BATCH = 500
#: pause between two batches of one sweep (other writers take the lock meanwhile)
PAUSE_SECONDS = 0.05
#: time between sweeps
ROUND_SECONDS = 60.0


class Retention:
    """Deletes what is older than ``days`` (0: nothing, ever)."""

    def __init__(self, store: RetentionStore, days: float, metrics: Metrics, *,
                 clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self.days = days
        self._clock = clock
        self.deleted = Counter("trionet_retention_deleted",
                               "Messages and notifications deleted for being older than the"
                               " retention", ["kind"], registry=metrics.registry)

    def horizon(self) -> int:
        """The smallest id still kept (0 while retention is off)."""
        if self.days <= 0:
            return 0
        return id_at(self._clock() - self.days * 86400)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        if self.days <= 0:
            return
        while True:
            try:
                await self.sweep()
            except Exception:  # a locked or failing database: the next round tries again
                log.exception("retention sweep failed")
            await trio.sleep(ROUND_SECONDS)

    async def sweep(self) -> dict[str, int]:
        """Delete everything below the horizon now; returns how many of each kind."""
        horizon = self.horizon()
        done = {"messages": 0, "notifications": 0}
        if not horizon:
            return done
        for kind, expire in (("messages", self._store.expire_messages),
                             ("notifications", self._store.expire_notifications)):
            while True:
                n = await expire(horizon, BATCH)
                done[kind] += n
                self.deleted.labels(kind).inc(n)
                if n < BATCH:
                    break
                await trio.sleep(PAUSE_SECONDS)
        if any(done.values()):
            log.info("retention: deleted %d messages and %d notifications older than %g days",
                     done["messages"], done["notifications"], self.days)
        return done
