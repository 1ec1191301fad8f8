"""The default :class:`~trionet.interfaces.GroupMemberFetcher` and
:class:`~trionet.interfaces.MessagePersister`, backed by trionet's SQLite database."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from ..interfaces import MessageRecord, NotificationRecord
from . import messages
from .database import Database

__all__ = ["SqliteGroups", "SqlitePersister"]


def _accepted(conn: sqlite3.Connection, group_id: int) -> frozenset[int] | None:
    if conn.execute("SELECT 1 FROM groups WHERE id = ?", (group_id,)).fetchone() is None:
        return None
    rows = conn.execute(
        "SELECT user_id FROM group_members WHERE group_id = ? AND status = 'accepted'",
        (group_id,),
    )
    return frozenset(int(r[0]) for r in rows)


class SqliteGroups:
    """Group membership from the ``groups`` and ``group_members`` tables."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def accepted_members(self, group_id: int) -> frozenset[int] | None:
        return await self._db.read(_accepted, group_id)


class SqlitePersister:
    """Messages and notifications in the SQLite database (one transaction per batch)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def save(
        self, messages_: Sequence[MessageRecord], notifications: Sequence[NotificationRecord]
    ) -> messages.Duplicates:
        return await self._db.write(messages.insert_batch, messages_, notifications)

    def save_inline(
        self, messages_: Sequence[MessageRecord], notifications: Sequence[NotificationRecord]
    ) -> messages.Duplicates | None:
        """:meth:`save` right now, if that cannot block the event loop; None when it could
        (the caller then uses :meth:`save`, in a worker thread, which also checkpoints)."""
        done, duplicates = self._db.try_write_inline(
            messages.insert_batch, messages_, notifications)
        return duplicates if done else None

    async def private_page(
        self, user_a: int, user_b: int, *, limit: int, offset: int, before_id: int | None
    ) -> list[MessageRecord]:
        return await self._db.read(
            messages.private_page, user_a, user_b, limit=limit, offset=offset, before_id=before_id
        )

    async def group_page(
        self, group_id: int, *, limit: int, offset: int, before_id: int | None
    ) -> list[MessageRecord]:
        return await self._db.read(
            messages.group_page, group_id, limit=limit, offset=offset, before_id=before_id
        )

    async def replay_sizes(
        self, user_id: int, *, since: int, since_notification: int | None, limit: int
    ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        return await self._db.read(
            messages.replay_sizes, user_id, since=since, since_notification=since_notification,
            limit=limit,
        )

    async def replay_page(
        self, user_id: int, message_ids: Sequence[int], notification_ids: Sequence[int]
    ) -> tuple[list[MessageRecord], list[NotificationRecord]]:
        return await self._db.read(messages.replay_page, user_id, message_ids, notification_ids)

    async def find_by_client_id(self, sender_id: int, client_id: str) -> MessageRecord | None:
        return await self._db.read(messages.find_by_client_id, sender_id, client_id)
