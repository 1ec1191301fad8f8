"""Notifications: stored through the committer, then routed like every committed record.

A caller of the committer, like a connection's reader: it allocates the ids, builds the
records and frames, submits them and waits until they are committed (or given up on) and
queued to every open connection of their users.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import trio

from ..core.frames import RESERVED_NOTIFICATION_KEYS, notification_frame
from ..core.ids import IdAllocator, id_to_iso
from ..core.routing import ToUsers
from ..interfaces import NotificationRecord
from .committer import GroupCommitter, Pending

__all__ = ["Notifier"]


def _ignore(user_ids: list[int]) -> None:
    pass


class Notifier:
    """``on_notified(user_ids)`` is called once a call's notifications are committed (the
    inbox pruner uses it)."""

    def __init__(
        self,
        committer: GroupCommitter,
        ids: IdAllocator,
        *,
        on_notified: Callable[[list[int]], None] = _ignore,
    ) -> None:
        self.committer = committer
        self.ids = ids
        self._on_notified = on_notified

    async def notify_many(
        self, user_ids: Iterable[int], subtype: str, message: str, payload: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Store one notification per user, committed together; returns their frames once
        each is queued to its user's connections. ``payload`` keys join each frame beside
        ``subtype`` and ``message``; they never replace ``type``, ``id``, ``subtype``,
        ``message`` or ``timestamp``."""
        extra = {k: v for k, v in payload.items() if k not in RESERVED_NOTIFICATION_KEYS}
        pendings: list[Pending] = []
        for uid in user_ids:
            nid = self.ids.next()
            record = NotificationRecord(
                id=nid, user_id=uid, subtype=subtype, message=message, created_at=id_to_iso(nid),
                payload=extra,
            )
            pending = Pending(notification=record, target=ToUsers((uid,)),
                              frame=notification_frame(record), done=trio.Event())
            pendings.append(pending)
            await self.committer.submit(pending)
        for pending in pendings:
            assert pending.done is not None
            await pending.done.wait()
        self._on_notified([p.notification.user_id for p in pendings if p.notification])
        return [p.frame for p in pendings if p.frame is not None]
