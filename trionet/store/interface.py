"""The Store: every read and write trionet makes, as one set of ``typing.Protocol``s.

Two implementations pass the same conformance suite (``tests/store/``): SQLite
(:mod:`trionet.store.sqlite`, the embedded default) and PostgreSQL
(:mod:`trionet.store.postgres`, for several processes and hosts). Nothing outside them imports
a database driver or writes SQL; callers get plain records (:mod:`trionet.store.records`,
:mod:`trionet.interfaces`), never driver rows. Every method may raise
:class:`~trionet.errors.StoreUnavailable` when the database is locked, busy or unreachable.

The message part is the seed's :class:`~trionet.interfaces.MessagePersister` and the group
part includes :class:`~trionet.interfaces.GroupMemberFetcher`, so a store serves as both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from ..interfaces import MessagePersister, MessageRecord, NotificationRecord
from .records import Conversation, LeaveOutcome, ReadMarker, ReadState, UserRecord

__all__ = [
    "AccountStore",
    "BlockStore",
    "ChangeStore",
    "ErasureStore",
    "GroupStore",
    "InlineSaver",
    "MessageStore",
    "NotificationStore",
    "OutboxStore",
    "ReceiptStore",
    "RetentionStore",
    "Store",
]


class AccountStore(Protocol):
    """Users and sessions."""

    async def create_user(self, username: str, password_hash: str | None, *,
                          is_admin: bool = False, user_id: int | None = None) -> UserRecord:
        """Insert a user (the next free id unless ``user_id``); raises
        :class:`~trionet.store.records.UsernameTaken` on a duplicate name or id."""
        ...

    async def get_user(self, user_id: int) -> UserRecord | None: ...

    async def get_user_by_name(self, username: str) -> UserRecord | None: ...

    async def users_by_ids(self, ids: Sequence[int]) -> list[UserRecord]:
        """The users that exist among ``ids``, by id."""
        ...

    async def list_users(self) -> list[UserRecord]:
        """Every user, by id."""
        ...

    async def ensure_backend_user(self, user_id: int) -> bool:
        """Give backend user ``user_id`` (first seen in a JWT) a row named ``user<id>`` (or
        ``user<id>-2``... when taken); False when the id is an account with a password."""
        ...

    async def set_backend_username(self, user_id: int, username: str) -> bool:
        """Create or rename backend user ``user_id``; True when created. Raises
        :class:`~trionet.store.records.PasswordAccount` for an account with a password and
        :class:`~trionet.store.records.UsernameTaken` for a name held by another user."""
        ...

    async def create_session(self, token_hash: str, user_id: int, expires_at: float) -> None:
        """Store a session (and drop expired ones)."""
        ...

    async def session_user(self, token_hash: str) -> tuple[int, float] | None:
        """(user id, expiry) of a live session, or None."""
        ...

    async def delete_session(self, token_hash: str) -> None: ...

    async def delete_user_sessions(self, user_id: int) -> None: ...


class GroupStore(Protocol):
    """Groups, memberships and invites. Refusals raise
    :class:`~trionet.store.records.GroupRefused` and change nothing."""

    async def accepted_members(self, group_id: int) -> frozenset[int] | None:
        """Ids of the group's accepted members; None when the group does not exist."""
        ...

    async def create_group(self, owner_id: int, name: str,
                           members: Sequence[int] = ()) -> dict[str, Any]:
        """A new group owned by ``owner_id``, who is its first accepted member (``members``
        join accepted too); returns ``{"id", "name", "owner_id", "created_at"}``."""
        ...

    async def groups_of(self, user_id: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(groups the user is an accepted member of, their pending invites)."""
        ...

    async def group_details(self, group_id: int, viewer_id: int) -> dict[str, Any]:
        """The group with its members and invitees (for accepted members only)."""
        ...

    async def invite(self, group_id: int, inviter_id: int, invitee_id: int) -> str:
        """Invite a user (replacing an earlier invite notification); returns the group name."""
        ...

    async def accept_invite(self, group_id: int, user_id: int) -> None:
        """Accept a pending invite; its notification is marked read."""
        ...

    async def decline_invite(self, group_id: int, user_id: int) -> None:
        """Delete a pending invite and its notification."""
        ...

    async def leave(self, group_id: int, user_id: int) -> LeaveOutcome: ...

    async def rename(self, group_id: int, owner_id: int, name: str) -> dict[str, Any]: ...

    async def remove_member(self, group_id: int, owner_id: int, user_id: int) -> str:
        """Remove a member or withdraw an invite (owner only); returns the removed status."""
        ...

    async def delete_group(self, group_id: int, owner_id: int) -> None: ...

    async def upsert_group(self, group_id: int, name: str, members: Sequence[tuple[int, str]],
                           owner_id: int | None) -> bool:
        """Create or replace a group with exactly ``members``; True when created."""
        ...


class MessageStore(MessagePersister, Protocol):
    """Messages: the seed's persister, plus the conversation list and presence relations."""

    async def conversation_page(self, user_id: int, *, limit: int, offset: int,
                                before_id: int | None = None) -> list[Conversation]:
        """The user's private conversations, most recent first, with both read markers and
        the unread count."""
        ...

    async def related_users(self, user_id: int, *, wanted: Callable[[int], bool],
                            limit: int) -> list[int]:
        """Up to ``limit`` users for whom ``wanted(id)`` holds among those who share an
        accepted group with ``user_id`` or a conversation both sides have written in.
        ``wanted`` may be called from a worker thread."""
        ...


class NotificationStore(Protocol):
    """The notification inbox (rows are inserted by :meth:`MessagePersister.save`)."""

    async def notification_page(self, user_id: int, *, limit: int, offset: int,
                                before_id: int | None = None) -> list[dict[str, Any]]:
        """The user's notifications, newest first, each as its frame plus ``read``."""
        ...

    async def unread_count(self, user_id: int) -> int: ...

    async def mark_read(self, user_id: int, ids: Sequence[int] | None = None) -> int:
        """Mark all (or those of ``ids`` that are the user's) read; returns how many."""
        ...

    async def inbox_sizes(self, user_ids: Sequence[int]) -> dict[int, int]: ...

    async def over_bound(self, bound: int, *, after: int, limit: int) -> list[int]:
        """Up to ``limit`` users above ``after`` (by id) holding more than ``bound``."""
        ...

    async def prune_inboxes(self, user_ids: Sequence[int], bound: int) -> int:
        """Keep at most ``bound`` notifications per user (oldest read first, then oldest
        unread); returns how many were deleted."""
        ...


class OutboxStore(Protocol):
    """The webhook outbox: events for the backend, kept until it took them."""

    async def outbox_add(self, events: Sequence[tuple[int, str, int | None]], *, now: float,
                         bound: int) -> int:
        """Add (id, JSON body, the message it carries or None) events, due ``now``; returns
        how many of the oldest were dropped to keep at most ``bound``. Deleting, erasing or
        expiring a message deletes the events that carry it."""
        ...

    async def outbox_claim(self, *, now: float, lease: float,
                           limit: int) -> list[tuple[int, str, int]]:
        """Take up to ``limit`` due events for ``lease`` seconds: (id, body, attempt)."""
        ...

    async def outbox_done(self, event_id: int) -> None: ...

    async def outbox_retry(self, event_id: int, *, next_at: float) -> None: ...

    async def outbox_size(self) -> int: ...


class ErasureStore(Protocol):
    """Deleting an account (an erasure request)."""

    async def erase_messages(self, user_id: int, after_id: int, chunk: int, *, at: str,
                             change_id: int) -> tuple[int | None, int]:
        """Erase (empty and mark deleted) the user's messages among the next ``chunk`` ids
        after ``after_id``; returns where the next chunk starts (None: done) and how many."""
        ...

    async def delete_account(self, user_id: int) -> dict[str, int]:
        """Delete the user, their sessions, memberships, blocks, read markers, notifications
        and conversation list; returns how many rows of each."""
        ...


class RetentionStore(Protocol):
    """Deleting what is older than the retention horizon, a small batch at a time."""

    async def expire_messages(self, before_id: int, limit: int) -> int:
        """Delete up to ``limit`` of the oldest messages with an id below ``before_id`` (and
        the conversations whose latest message they were); returns how many messages."""
        ...

    async def expire_notifications(self, before_id: int, limit: int) -> int:
        """Delete up to ``limit`` of the oldest notifications below ``before_id``."""
        ...


class BlockStore(Protocol):
    """Who blocks whom (a block works both ways; only its blocker lifts it)."""

    async def block(self, blocker_id: int, blocked_id: int, *, at: str) -> bool:
        """Record a block; False when it was there already."""
        ...

    async def unblock(self, blocker_id: int, blocked_id: int) -> bool: ...

    async def blocked_by(self, blocker_id: int) -> list[int]:
        """Whom the user blocks, by id."""
        ...

    async def block_relations(self, user_id: int) -> frozenset[int]:
        """Everyone the user blocks or is blocked by."""
        ...

    async def blocked_among(self, user_id: int, others: Sequence[int]) -> set[int]:
        """Those of ``others`` who block the user or whom the user blocks."""
        ...


class ChangeStore(Protocol):
    """Edits and deletes of stored messages."""

    async def message(self, message_id: int) -> MessageRecord | None:
        """One message by id, whoever may see it (None when there is none)."""
        ...

    async def group_owner(self, group_id: int) -> int | None: ...

    async def edit_message(self, message_id: int, content: str, *, change_id: int,
                           at: str) -> bool:
        """Replace the content of a message that is not deleted, recorded under
        ``change_id``; False when nothing changed (deleted, or the same content)."""
        ...

    async def delete_message(self, message_id: int, *, change_id: int, at: str) -> bool:
        """Erase a message's content and mark it deleted; False when it was already."""
        ...

    async def changed_since(self, user_id: int, since: int,
                            limit: int) -> list[tuple[int, int]]:
        """(message id, last change id) of the messages the user may see changed after
        ``since`` (by change id); the newest ``limit``, oldest first."""
        ...


class ReceiptStore(Protocol):
    """Read markers: how far each user has read each private conversation and group."""

    async def mark_conversation_read(self, user_id: int, kind: str, target_id: int,
                                     up_to: int, *, event_id: int, at: str) -> ReadState:
        """Move the user's marker in a conversation (``kind`` "private" with the peer's id as
        ``target_id``, or "group") forward to ``up_to`` (a smaller one changes nothing); the
        move is recorded under ``event_id``. Raises
        :class:`~trionet.store.records.NotInConversation` when ``up_to`` is not a message of
        that conversation."""
        ...

    async def group_read_states(self, user_id: int,
                                group_ids: Sequence[int]) -> dict[int, tuple[int | None, int]]:
        """Per group: (the user's marker or None, the others' messages above it)."""
        ...

    async def latest_in_groups(self, group_ids: Sequence[int],
                               before_id: int | None = None) -> dict[int, MessageRecord]:
        """Each group's newest message (below ``before_id``), by group id; groups without
        one are left out."""
        ...

    async def read_markers_since(self, user_id: int, since: int,
                                 limit: int) -> list[ReadMarker]:
        """The markers moved after ``since`` (by ``event_id``) that the user's connections
        show: their own and their peers' in their private conversations; the newest
        ``limit``, oldest first."""
        ...


@runtime_checkable
class InlineSaver(Protocol):
    """A persister that can sometimes commit right away on the event loop (SQLite)."""

    def save_inline(
        self, messages: Sequence[MessageRecord], notifications: Sequence[NotificationRecord]
    ) -> Mapping[tuple[int, str], tuple[int, str]] | None:
        """:meth:`MessagePersister.save` now, if that cannot block the loop; None when it
        could (the caller then calls ``save``)."""
        ...


class Store(AccountStore, GroupStore, MessageStore, NotificationStore, ReceiptStore, ChangeStore,
            BlockStore, RetentionStore, ErasureStore, OutboxStore, Protocol):
    """Everything trionet keeps. Open one with :func:`trionet.store.open_store`."""

    #: "sqlite" or "postgresql"
    kind: str

    async def migrate(self) -> list[str]:
        """Apply pending migrations (safe when several processes start at once); returns
        the names applied."""
        ...

    async def max_id(self) -> int:
        """The highest message or notification id stored (0 when none)."""
        ...

    async def ping(self) -> None:
        """Return when the store answers a trivial query; raise
        :class:`~trionet.errors.StoreUnavailable` when it does not."""
        ...

    async def aclose(self) -> None:
        """Wait for running calls, then close every connection."""
        ...
