"""The PostgreSQL :class:`~trionet.store.interface.Store`: one database shared by several
trionet processes and hosts.

Each method runs one of the plain query functions of this package in a worker thread on a
pooled connection (see :class:`Database`); the semantics are the SQLite store's, checked by
the same conformance suite (``tests/store/``). There is no ``save_inline``: every commit is a
network round trip, so the committer always calls :meth:`PostgresStore.save`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ...interfaces import MessageRecord, NotificationRecord
from .. import receipts
from ..records import Conversation, LeaveOutcome, UserRecord
from ..shared import SharedQueries
from . import accounts, conversations, groups, messages, notifications
from .database import Conn, Database
from .text import clean

__all__ = ["PostgresStore"]


def _ping(conn: Conn) -> None:
    conn.execute("SELECT 1 FROM users LIMIT 1").fetchall()


def _conversation_page(conn: Conn, user_id: int, *, limit: int, offset: int,
                       before_id: int | None) -> list[Conversation]:
    page = conversations.conversation_page(conn, user_id, limit=limit, offset=offset,
                                           before_id=before_id)
    return receipts.with_read_states(receipts.QmarkConnection(conn), user_id, page)


class PostgresStore(SharedQueries):
    """Everything trionet keeps, in a PostgreSQL database (``postgresql://user@host/db``).

    No connection is made until the first call (or :meth:`migrate`). ``pool_size`` bounds
    the connections (and the calls running at once); ``lock_timeout`` how long a statement
    waits for a lock another session holds, ``statement_timeout`` how long one may run, and
    ``connect_timeout`` how long a call waits for a connection: past each, the call raises
    :class:`~trionet.errors.StoreUnavailable`. A ``lock_timeout`` or ``statement_timeout``
    given in the URL (``?options=-c%20statement_timeout%3D120s``) wins over the argument.
    """

    kind = "postgresql"
    db: Database
    #: the shared queries take ``?`` placeholders (trionet.store.shared)
    _adapt = staticmethod(receipts.QmarkConnection)

    def __init__(self, url: str, *, pool_size: int = 8, lock_timeout: float = 5.0,
                 statement_timeout: float = 30.0, connect_timeout: float = 5.0) -> None:
        self.db = Database(url, pool_size=pool_size, lock_timeout=lock_timeout,
                           statement_timeout=statement_timeout, connect_timeout=connect_timeout)

    @property
    def url(self) -> str:
        return self.db.url

    # -- lifecycle ------------------------------------------------------------------------

    async def migrate(self) -> list[str]:
        return await self.db.migrate()

    async def max_id(self) -> int:
        return await self.db.read(messages.max_id)

    async def ping(self) -> None:
        await self.db.read(_ping)

    async def aclose(self) -> None:
        await self.db.aclose()

    # -- accounts -------------------------------------------------------------------------

    async def create_user(self, username: str, password_hash: str | None, *,
                          is_admin: bool = False, user_id: int | None = None) -> UserRecord:
        return await self.db.write(accounts.create_user, username, password_hash,
                                   is_admin=is_admin, user_id=user_id)

    async def get_user(self, user_id: int) -> UserRecord | None:
        return await self.db.read(accounts.get_user, user_id)

    async def get_user_by_name(self, username: str) -> UserRecord | None:
        return await self.db.read(accounts.get_user_by_name, username)

    async def users_by_ids(self, ids: Sequence[int]) -> list[UserRecord]:
        return await self.db.read(accounts.users_by_ids, ids)

    async def list_users(self) -> list[UserRecord]:
        return await self.db.read(accounts.list_users)

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
        return await self.db.read(groups.accepted_members, group_id)

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
        if not messages_ and not notifications_:
            return {}
        return await self.db.write(messages.insert_batch, messages_, notifications_)

    async def private_page(
        self, user_a: int, user_b: int, *, limit: int, offset: int, before_id: int | None
    ) -> list[MessageRecord]:
        return await self.db.read(messages.private_page, user_a, user_b, limit=limit,
                                  offset=offset, before_id=before_id)

    async def group_page(
        self, group_id: int, *, limit: int, offset: int, before_id: int | None
    ) -> list[MessageRecord]:
        return await self.db.read(messages.group_page, group_id, limit=limit, offset=offset,
                                  before_id=before_id)

    async def replay_sizes(
        self, user_id: int, *, since: int, since_notification: int | None, limit: int
    ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        return await self.db.read(messages.replay_sizes, user_id, since=since,
                                  since_notification=since_notification, limit=limit)

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

    async def edit_message(self, message_id: int, content: str, *, change_id: int,
                           at: str) -> bool:
        # stored as every message is on PostgreSQL (a NUL cannot be)
        return await super().edit_message(message_id, clean(content), change_id=change_id,
                                          at=at)

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
        return await self.db.write(notifications.prune_inboxes, user_ids, bound)
