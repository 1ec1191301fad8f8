"""What every store hands back and raises: plain records, never driver rows.

Records that travel further (messages, notifications) live in :mod:`trionet.interfaces`,
because custom persisters exchange them too; these are the store's own.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..interfaces import MessageRecord

__all__ = [
    "MESSAGE_COLUMNS",
    "Conversation",
    "Duplicates",
    "NotInConversation",
    "ReadMarker",
    "ReadState",
    "GroupRefused",
    "LeaveOutcome",
    "PasswordAccount",
    "Refusal",
    "StoreUnavailable",
    "UserRecord",
    "UsernameTaken",
    "row_to_message",
]

from ..core.errors import StoreUnavailable


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A user as stored. ``password_hash`` is None for backend users (JWT, server API)."""

    id: int
    username: str
    is_admin: bool
    password_hash: str | None
    created_at: str

    def public(self) -> dict[str, Any]:
        """What other users may see of a user."""
        return {"id": self.id, "username": self.username}

    def own(self) -> dict[str, Any]:
        """What a user sees of themselves."""
        return {"id": self.id, "username": self.username, "is_admin": self.is_admin}


class UsernameTaken(Exception):
    """The username is already in use."""


class PasswordAccount(Exception):
    """The user id belongs to an account with a password (registered, or made by the CLI):
    trionet is its identity source, so the backend's ids (JWT ``sub``, the server API) may
    neither adopt nor rename it."""


class Refusal(enum.StrEnum):
    """Why a group operation was refused."""

    NO_GROUP = "no_group"  #: the group does not exist
    NO_USER = "no_user"  #: the user does not exist
    NOT_MEMBER = "not_member"  #: the caller is not an accepted member
    NOT_OWNER = "not_owner"  #: only the owner may do this
    NO_INVITE = "no_invite"  #: the caller has no pending invite to this group
    NO_MEMBERSHIP = "no_membership"  #: the target user is neither a member nor invited
    ALREADY_MEMBER = "already_member"  #: the user is already an accepted member
    ALREADY_INVITED = "already_invited"  #: the user already has a pending invite
    OWNER_CANNOT = "owner_cannot"  #: the owner cannot remove themselves (leave instead)


class GroupRefused(Exception):
    """A group operation was refused; the store is unchanged."""

    def __init__(self, reason: Refusal, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class LeaveOutcome:
    """What leaving did: the new owner (if ownership moved) and whether the group is gone."""

    new_owner: int | None
    deleted: bool


@dataclass(frozen=True, slots=True)
class Conversation:
    """A peer the user has private messages with, and the latest of those messages."""

    peer_id: int
    peer_username: str | None
    last_message: MessageRecord
    #: the user's read marker in it (None before their first read)
    last_read_id: int | None = None
    #: the peer's read marker in it (None before the peer's first read)
    peer_read_id: int | None = None
    #: the peer's messages newer than the user's marker
    unread_count: int = 0


@dataclass(frozen=True, slots=True)
class ReadMarker:
    """How far a user has read one conversation. ``kind`` is "private" (``target_id`` is the
    peer) or "group" (the group); ``event_id`` is the id allocated when it last moved (ids
    share one sequence with messages, so a replay from a cursor finds the markers that moved
    after it)."""

    reader_id: int
    kind: str
    target_id: int
    up_to: int
    event_id: int
    updated_at: str


@dataclass(frozen=True, slots=True)
class ReadState:
    """A user's marker in a conversation after a read, the unread messages left after it,
    and whether this read moved it (markers only move forward)."""

    last_read_id: int
    unread_count: int
    moved: bool


class NotInConversation(LookupError):
    """The message a read names is not a message of that conversation."""


#: the columns of ``messages`` that :func:`row_to_message` reads, in its order (every store
#: selects them under these names)
MESSAGE_COLUMNS = ("id", "kind", "sender_id", "recipient_id", "group_id", "content", "client_id",
                   "created_at", "subtype", "edited_at", "deleted_at")

#: (sender id, client id) -> (id, created_at) of the message stored first under that pair
Duplicates = dict[tuple[int, str], tuple[int, str]]


def row_to_message(row: Sequence[Any]) -> MessageRecord:
    """A message read as :data:`MESSAGE_COLUMNS`, from any store's driver row."""
    (id_, kind, sender, recipient, group, content, client_id, created, subtype, edited,
     deleted) = tuple(row)
    return MessageRecord(
        id=int(id_),
        kind=str(kind),
        sender_id=int(sender),
        recipient_id=None if recipient is None else int(recipient),
        group_id=None if group is None else int(group),
        content=str(content),
        client_id=None if client_id is None else str(client_id),
        created_at=str(created),
        subtype=None if subtype is None else str(subtype),
        edited_at=None if edited is None else str(edited),
        deleted=deleted is not None,
    )
