"""The store methods whose SQL is the same on both stores, written once.

Read markers (:mod:`.receipts`), edits and deletes (:mod:`.changes`), blocks (:mod:`.blocks`),
retention (:mod:`.retention`), account deletion (:mod:`.erasure`) and the webhook outbox
(:mod:`.outbox`) are plain functions over a connection with ``?`` placeholders. A store mixes
in :class:`SharedQueries` and says how to adapt its driver's connection (:meth:`_adapt`:
SQLite's as it is, psycopg's through :class:`~.receipts.QmarkConnection`); each method runs
its function in one read or one write transaction of the store's ``db``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..interfaces import MessageRecord
from . import blocks, changes, erasure, outbox, receipts, retention
from .records import ReadMarker, ReadState

__all__ = ["SharedQueries"]


def _run(conn: Any, adapt: Callable[[Any], Any], fn: Callable[..., Any], *args: Any) -> Any:
    return fn(adapt(conn), *args)


class SharedQueries:
    """Mixed into a store whose ``db`` has ``read(fn, *args)`` and ``write(fn, *args)``."""

    db: Any

    @staticmethod
    def _adapt(conn: Any) -> Any:
        return conn

    async def _read(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self.db.read(_run, self._adapt, fn, *args)

    async def _write(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self.db.write(_run, self._adapt, fn, *args)

    # -- read markers ---------------------------------------------------------------------

    async def mark_conversation_read(self, user_id: int, kind: str, target_id: int,
                                     up_to: int, *, event_id: int, at: str) -> ReadState:
        found: ReadState = await self._write(receipts.mark_read, user_id, kind, target_id,
                                             up_to, event_id, at)
        return found

    async def group_read_states(self, user_id: int,
                                group_ids: Sequence[int]) -> dict[int, tuple[int | None, int]]:
        if not group_ids:
            return {}
        found: dict[int, tuple[int | None, int]] = await self._read(
            receipts.group_read_states, user_id, group_ids)
        return found

    async def latest_in_groups(self, group_ids: Sequence[int],
                               before_id: int | None = None) -> dict[int, MessageRecord]:
        if not group_ids:
            return {}
        found: dict[int, MessageRecord] = await self._read(receipts.latest_in_groups,
                                                           group_ids, before_id)
        return found

    async def read_markers_since(self, user_id: int, since: int,
                                 limit: int) -> list[ReadMarker]:
        found: list[ReadMarker] = await self._read(receipts.markers_since, user_id, since,
                                                   limit)
        return found

    # -- edits and deletes ----------------------------------------------------------------

    async def message(self, message_id: int) -> MessageRecord | None:
        found: MessageRecord | None = await self._read(changes.message_by_id, message_id)
        return found

    async def group_owner(self, group_id: int) -> int | None:
        found: int | None = await self._read(changes.group_owner, group_id)
        return found

    async def edit_message(self, message_id: int, content: str, *, change_id: int,
                           at: str) -> bool:
        return bool(await self._write(changes.edit_message, message_id, content, change_id, at))

    async def delete_message(self, message_id: int, *, change_id: int, at: str) -> bool:
        return bool(await self._write(changes.delete_message, message_id, change_id, at))

    async def changed_since(self, user_id: int, since: int,
                            limit: int) -> list[tuple[int, int]]:
        found: list[tuple[int, int]] = await self._read(changes.changed_since, user_id, since,
                                                        limit)
        return found

    # -- blocks ---------------------------------------------------------------------------

    async def block(self, blocker_id: int, blocked_id: int, *, at: str) -> bool:
        return bool(await self._write(blocks.block, blocker_id, blocked_id, at))

    async def unblock(self, blocker_id: int, blocked_id: int) -> bool:
        return bool(await self._write(blocks.unblock, blocker_id, blocked_id))

    async def blocked_by(self, blocker_id: int) -> list[int]:
        found: list[int] = await self._read(blocks.blocked_by, blocker_id)
        return found

    async def block_relations(self, user_id: int) -> frozenset[int]:
        found: frozenset[int] = await self._read(blocks.relations, user_id)
        return found

    async def blocked_among(self, user_id: int, others: Sequence[int]) -> set[int]:
        if not others:
            return set()
        found: set[int] = await self._read(blocks.blocked_among, user_id, others)
        return found

    # -- retention ------------------------------------------------------------------------

    async def expire_messages(self, before_id: int, limit: int) -> int:
        return int(await self._write(retention.expire_messages, before_id, limit))

    async def expire_notifications(self, before_id: int, limit: int) -> int:
        return int(await self._write(retention.expire_notifications, before_id, limit))

    # -- account deletion -----------------------------------------------------------------

    async def erase_messages(self, user_id: int, after_id: int, chunk: int, *, at: str,
                             change_id: int) -> tuple[int | None, int]:
        found: tuple[int | None, int] = await self._write(
            erasure.erase_messages, user_id, after_id, chunk, at, change_id)
        return found

    async def delete_account(self, user_id: int) -> dict[str, int]:
        found: dict[str, int] = await self._write(erasure.delete_account, user_id)
        return found

    # -- the webhook outbox ---------------------------------------------------------------

    async def outbox_add(self, events: Sequence[tuple[int, str, int | None]], *, now: float,
                         bound: int) -> int:
        return int(await self._write(outbox.outbox_add, events, now, bound))

    async def outbox_claim(self, *, now: float, lease: float,
                           limit: int) -> list[tuple[int, str, int]]:
        found: list[tuple[int, str, int]] = await self._write(outbox.outbox_claim, now, lease,
                                                              limit)
        return found

    async def outbox_done(self, event_id: int) -> None:
        await self._write(outbox.outbox_done, event_id)

    async def outbox_retry(self, event_id: int, *, next_at: float) -> None:
        await self._write(outbox.outbox_retry, event_id, next_at)

    async def outbox_size(self) -> int:
        return int(await self._read(outbox.outbox_size))
