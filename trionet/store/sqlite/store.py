"""The SQLite :class:`~trionet.store.interface.Store`: one file, one process, no set-up.

Each method runs one of the plain query functions of this package off the event loop (reads
on a small pool of reader connections, writes one at a time on the writer connection).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

import trio

from ...core.errors import StoreUnavailable
from ...interfaces import MessageRecord, NotificationRecord
from .. import receipts
from ..records import Conversation, LeaveOutcome, UserRecord
from ..shared import SharedQueries
from . import accounts, conversations, groups, messages, notifications
from .database import Database

__all__ = ["SqliteStore"]


def _user(row: sqlite3.Row | None) -> UserRecord | None:
    if row is None:
        return None
    return UserRecord(id=int(row["id"]), username=str(row["username"]),
                      is_admin=bool(row["is_admin"]), password_hash=row["password_hash"],
                      created_at=str(row["created_at"]))


def _users(rows: Sequence[sqlite3.Row]) -> list[UserRecord]:
    return [u for u in map(_user, rows) if u is not None]


def _accepted(conn: sqlite3.Connection, group_id: int) -> frozenset[int] | None:
    if conn.execute("SELECT 1 FROM groups WHERE id = ?", (group_id,)).fetchone() is None:
        return None
    rows = conn.execute(
        "SELECT user_id FROM group_members WHERE group_id = ? AND status = 'accepted'",
        (group_id,),
    )
    return frozenset(int(r[0]) for r in rows)


def _ping(conn: sqlite3.Connection) -> None:
    conn.execute("SELECT 1 FROM users LIMIT 1").fetchall()


def _max_id(conn: sqlite3.Connection) -> int:
    row = conn.execute(
        "SELECT max(coalesce((SELECT max(id) FROM messages), 0),"
        " coalesce((SELECT max(id) FROM notifications), 0))"
    ).fetchone()
    return int(row[0] or 0)


def _prune(conn: sqlite3.Connection, user_ids: Sequence[int], bound: int) -> int:
    return sum(notifications.prune_inbox(conn, uid, bound) for uid in user_ids)


def _create_user(conn: sqlite3.Connection, username: str, password_hash: str | None,
                 is_admin: bool, user_id: int | None) -> UserRecord:
    created = accounts.create_user(conn, username, password_hash, is_admin=is_admin,
                                   user_id=user_id)
    found = _user(accounts.get_user(conn, int(created["id"])))
    assert found is not None
    return found


def _conversation_page(conn: sqlite3.Connection, user_id: int, *, limit: int, offset: int,
                       before_id: int | None) -> list[Conversation]:
    page = conversations.conversation_page(conn, user_id, limit=limit, offset=offset,
                                           before_id=before_id)
    return receipts.with_read_states(conn, user_id, page)


#: most records a batch may hold to be committed on the event loop (about 2.5 ms of it)
INLINE_MAX_ROWS = 200


class SqliteStore(SharedQueries):
    """Everything trionet keeps, in one SQLite file (see :class:`Database`)."""

    kind = "sqlite"
    db: Database

    def __init__(self, path: str, *, synchronous: str = "NORMAL") -> None:
        self.db = Database(path, synchronous=synchronous)

    @property
    def path(self) -> str:
        return self.db.path

    # -- lifecycle ------------------------------------------------------------------------

    async def migrate(self) -> list[str]:
        try:
            return await trio.to_thread.run_sync(self.db.migrate)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"database unavailable: {exc}") from exc

    async def max_id(self) -> int:
        return await self.db.read(_max_id)

    async def ping(self) -> None:
        await self.db.read(_ping)

    async def aclose(self) -> None:
        await self.db.aclose()

    # -- accounts -------------------------------------------------------------------------

    async def create_user(self, username: str, password_hash: str | None, *,
                          is_admin: bool = False, user_id: int | None = None) -> UserRecord:
        return await self.db.write(_create_user, username, password_hash, is_admin, user_id)

    async def get_user(self, user_id: int) -> UserRecord | None:
        return _user(await self.db.read(accounts.get_user, user_id))

    async def get_user_by_name(self, username: str) -> UserRecord | None:
        return _user(await self.db.read(accounts.get_user_by_name, username))

    async def users_by_ids(self, ids: Sequence[int]) -> list[UserRecord]:
        return _users(await self.db.read(accounts.users_by_ids, ids))

    async def list_users(self) -> list[UserRecord]:
        return _users(await self.db.read(accounts.list_users))

    async def ensure_backend_user(self, user_id: int) -> bool:
        return await self.db.write(accounts.ensure_user, user_id)

    async def set_backend_username(self, user_id: int, username: str) -> bool:
        return await self.db.write(accounts.set_username, user_id, username)

    async def create_session(self, token_hash: str, user_id: int, expires_at: float) -> None:
        await self.db.write(accounts.create_session, token_hash, user_id, expires_at)

    async def session_user(self, token_hash: str) -> tuple[int, float] | None:
        return await self.db.read(accounts.session_user, token_hash)

    async def delete_session(self, token_hash: str) -> None:
        await self.db.write(accounts.delete_session, token_hash)

    async def delete_user_sessions(self, user_id: int) -> None:
        await self.db.write(accounts.delete_user_sessions, user_id)

    # -- groups ---------------------------------------------------------------------------

    async def accepted_members(self, group_id: int) -> frozenset[int] | None:
        return await self.db.read(_accepted, group_id)

    async def create_group(self, owner_id: int, name: str,
                           members: Sequence[int] = ()) -> dict[str, Any]:
        return await self.db.write(groups.create_group, owner_id, name, members)

    async def groups_of(self, user_id: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return await self.db.read(groups.groups_of, user_id)

    async def group_details(self, group_id: int, viewer_id: int) -> dict[str, Any]:
        return await self.db.read(groups.group_details, group_id, viewer_id)

    async def invite(self, group_id: int, inviter_id: int, invitee_id: int) -> str:
        return await self.db.write(groups.invite, group_id, inviter_id, invitee_id)

    async def accept_invite(self, group_id: int, user_id: int) -> None:
        await self.db.write(groups.accept_invite, group_id, user_id)

    async def decline_invite(self, group_id: int, user_id: int) -> None:
        await self.db.write(groups.decline_invite, group_id, user_id)

    async def leave(self, group_id: int, user_id: int) -> LeaveOutcome:
        return await self.db.write(groups.leave, group_id, user_id)

    async def rename(self, group_id: int, owner_id: int, name: str) -> dict[str, Any]:
        return await self.db.write(groups.rename, group_id, owner_id, name)

    async def remove_member(self, group_id: int, owner_id: int, user_id: int) -> str:
        return await self.db.write(groups.remove_member, group_id, owner_id, user_id)

    async def delete_group(self, group_id: int, owner_id: int) -> None:
        await self.db.write(groups.delete_group, group_id, owner_id)

    async def upsert_group(self, group_id: int, name: str, members: Sequence[tuple[int, str]],
                           owner_id: int | None) -> bool:
        return await self.db.write(groups.upsert_group, group_id, name, members, owner_id)

    # -- messages -------------------------------------------------------------------------

    async def save(
        self, messages_: Sequence[MessageRecord], notifications_: Sequence[NotificationRecord]
    ) -> messages.Duplicates:
        return await self.db.write(messages.insert_batch, messages_, notifications_)

    async def run_checkpoints(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Checkpoint the log in the background for the inline commits (run by the app's
        services; see :meth:`Database.run_checkpoints`)."""
        await self.db.run_checkpoints(task_status=task_status)

    def save_inline(
        self, messages_: Sequence[MessageRecord], notifications_: Sequence[NotificationRecord]
    ) -> messages.Duplicates | None:
        """:meth:`save` right now, if that cannot block the event loop; None when it could
        (the caller then uses :meth:`save`, in a worker thread, which also checkpoints).

        Only batches of at most :data:`INLINE_MAX_ROWS` records: a commit on the loop costs
        about 13 us a row, and a 5,000-row batch stalled it for 60-75 ms."""
        if len(messages_) + len(notifications_) > INLINE_MAX_ROWS:
            return None
        done, duplicates = self.db.try_write_inline(
            messages.insert_batch, messages_, notifications_)
        return duplicates if done else None

    async def private_page(
        self, user_a: int, user_b: int, *, limit: int, offset: int, before_id: int | None
    ) -> list[MessageRecord]:
        return await self.db.read(
            messages.private_page, user_a, user_b, limit=limit, offset=offset, before_id=before_id
        )

    async def group_page(
        self, group_id: int, *, limit: int, offset: int, before_id: int | None
    ) -> list[MessageRecord]:
        return await self.db.read(
            messages.group_page, group_id, limit=limit, offset=offset, before_id=before_id
        )

    async def replay_sizes(
        self, user_id: int, *, since: int, since_notification: int | None, limit: int
    ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        return await self.db.read(
            messages.replay_sizes, user_id, since=since, since_notification=since_notification,
            limit=limit,
        )

    async def replay_page(
        self, user_id: int, message_ids: Sequence[int], notification_ids: Sequence[int]
    ) -> tuple[list[MessageRecord], list[NotificationRecord]]:
        return await self.db.read(messages.replay_page, user_id, message_ids, notification_ids)

    async def find_by_client_id(self, sender_id: int, client_id: str) -> MessageRecord | None:
        return await self.db.read(messages.find_by_client_id, sender_id, client_id)

    async def conversation_page(self, user_id: int, *, limit: int, offset: int,
                                before_id: int | None = None) -> list[Conversation]:
        return await self.db.read(_conversation_page, user_id, limit=limit, offset=offset,
                                  before_id=before_id)

    async def related_users(self, user_id: int, *, wanted: Callable[[int], bool],
                            limit: int) -> list[int]:
        return await self.db.read(conversations.related_users, user_id, wanted=wanted,
                                  limit=limit)

    # -- notifications --------------------------------------------------------------------

    async def notification_page(self, user_id: int, *, limit: int, offset: int,
                                before_id: int | None = None) -> list[dict[str, Any]]:
        return await self.db.read(notifications.notification_page, user_id, limit=limit,
                                  offset=offset, before_id=before_id)

    async def unread_count(self, user_id: int) -> int:
        return await self.db.read(notifications.unread_count, user_id)

    async def mark_read(self, user_id: int, ids: Sequence[int] | None = None) -> int:
        return await self.db.write(notifications.mark_read, user_id, ids)

    async def inbox_sizes(self, user_ids: Sequence[int]) -> dict[int, int]:
        return await self.db.read(notifications.inbox_sizes, user_ids)

    async def over_bound(self, bound: int, *, after: int, limit: int) -> list[int]:
        return await self.db.read(notifications.over_bound, bound, after=after, limit=limit)

    async def prune_inboxes(self, user_ids: Sequence[int], bound: int) -> int:
        if not user_ids:
            return 0
        return await self.db.write(_prune, user_ids, bound)
