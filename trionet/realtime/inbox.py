"""Notification inboxes: a bound per user, and one pending invite notification per group.

:class:`InboxPruner` keeps every user's inbox at ``Settings.notification_inbox`` rows at
most. Nothing runs on the notification path but :meth:`InboxPruner.touched`, which adds the
recipients to a bounded set; one task, :meth:`InboxPruner.run`, a moment later counts their
rows by index (a read), and prunes the users over the bound in small write transactions
(oldest read notifications first, then the oldest unread).

The bound: **at most ``notification_inbox`` notifications per user, enforced within a few
seconds** of each notification's commit (about half a second on an idle server; an inbox may
hold more in between). When more users are touched than the set holds (``max_pending``), or a
round fails, the next round sweeps every inbox instead, so the bound holds then too.

:class:`KeyedLocks` serialises the invite changes of one group with the commit of the
invite's notification, so a withdraw, decline or re-invite always finds (and removes) the
notification of the invite before it: an inbox never holds two invite notifications of one
group.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Hashable, Iterable
from contextlib import asynccontextmanager

import trio

from ..store import NotificationStore

__all__ = ["InboxPruner", "KeyedLocks"]

log = logging.getLogger("trionet.inbox")


class InboxPruner:
    """Prunes the inboxes of recently notified users. Feed :meth:`touched`; start :meth:`run`.

    ``bound`` 0 keeps every notification (the pruner then does nothing).
    """

    #: pause after a failed round (the database locked or failing) before the next one
    RETRY_SECONDS = 5.0

    def __init__(
        self,
        store: NotificationStore,
        *,
        bound: int,
        delay: float = 0.5,
        max_pending: int = 10_000,
        users_per_write: int = 50,
    ) -> None:
        self._store = store
        self.bound = bound
        self._delay = delay
        self._max_pending = max_pending
        self._users_per_write = users_per_write
        self._pending: set[int] = set()
        #: more users were touched than the set holds: sweep every inbox next round
        self._overflow = False
        self._wakeup = trio.Event()
        #: notifications deleted so far
        self.pruned = 0

    def touched(self, user_ids: Iterable[int]) -> None:
        """Note users who just received notifications (cheap: a set insert each)."""
        if self.bound <= 0:
            return
        for uid in user_ids:
            if len(self._pending) >= self._max_pending and uid not in self._pending:
                self._overflow = True
                break
            self._pending.add(uid)
        self._wakeup.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Prune touched inboxes until cancelled."""
        task_status.started()
        if self.bound <= 0:
            await trio.sleep_forever()
        while True:
            await self._wakeup.wait()
            await trio.sleep(self._delay)  # let a burst of notifications gather
            self._wakeup = trio.Event()
            try:
                await self.prune_now()
            except Exception:  # a failed round must not stop pruning (or the server)
                log.exception("pruning notification inboxes failed; sweeping all of them soon")
                self._overflow = True  # the round's users are forgotten: sweep every inbox
                self._wakeup.set()
                await trio.sleep(self.RETRY_SECONDS)

    async def prune_now(self) -> int:
        """Prune the inboxes touched so far (every inbox after an overflow); returns how many
        notifications were deleted."""
        users, self._pending = sorted(self._pending), set()
        overflow, self._overflow = self._overflow, False
        deleted = 0
        step = self._users_per_write
        for start in range(0, len(users), step):
            chunk = users[start:start + step]
            sizes = await self._store.inbox_sizes(chunk)
            deleted += await self._prune([u for u, n in sizes.items() if n > self.bound])
        if overflow:
            after = 0
            while True:
                over = await self._store.over_bound(self.bound, after=after, limit=step)
                if not over:
                    break
                deleted += await self._prune(over)
                after = over[-1]
        self.pruned += deleted
        return deleted

    async def _prune(self, users: list[int]) -> int:
        if not users:
            return 0
        return await self._store.prune_inboxes(users, self.bound)


class _Entry:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = trio.Lock()
        self.users = 0  # holding or waiting


class KeyedLocks:
    """A :class:`trio.Lock` per key, kept only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, _Entry] = {}

    @asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        """Hold the lock of ``key`` for the block."""
        entry = self._locks.get(key)
        if entry is None:
            entry = self._locks[key] = _Entry()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)
