"""The parts a deployment can replace, as ``typing.Protocol``s, and the records they exchange.

Pass your own implementations to :func:`trionet.create_app`::

    app = create_app(settings, resolver=MySessions(), groups=MyGroups(), persister=MyStore())
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "GroupMemberFetcher",
    "Handshake",
    "Identity",
    "MessagePersister",
    "NotificationRecord",
    "MessageRecord",
    "SessionResolver",
]


@dataclass(frozen=True, slots=True)
class Handshake:
    """What a resolver sees of an HTTP request or a WebSocket handshake."""

    headers: Mapping[str, str]
    cookies: Mapping[str, str]
    remote_addr: str | None = None


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated user.

    ``session_key`` names the session the credential belongs to (sockets opened with it are
    closed when it ends); ``expires_at`` (Unix seconds) is when the credential stops being valid.
    """

    user_id: int
    session_key: str | None = None
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """A private or group message as stored. ``id`` is allocated by the server."""

    id: int
    kind: str  # "private" | "group"
    sender_id: int
    content: str
    created_at: str
    recipient_id: int | None = None
    group_id: int | None = None
    client_id: str | None = None
    #: an application-defined persisted type (see trionet.messagetypes); ``content`` then
    #: holds its payload as JSON. None for plain private and group messages.
    subtype: str | None = None
    #: when its sender last edited it (None: never)
    edited_at: str | None = None
    #: deleted: its content is erased (``""``), the record stays so conversations hold together
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class NotificationRecord:
    """A notification as stored; ``payload`` keys are merged into the live frame."""

    id: int
    user_id: int
    subtype: str
    message: str
    created_at: str
    payload: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class SessionResolver(Protocol):
    """Turns a request or handshake into the user it is authenticated as."""

    async def resolve(self, handshake: Handshake) -> Identity | None:
        """The caller's identity, or None when it presents no valid credential."""
        ...


@runtime_checkable
class GroupMemberFetcher(Protocol):
    """The source of truth for group membership."""

    async def accepted_members(self, group_id: int) -> frozenset[int] | None:
        """Ids of the group's accepted members; None when the group does not exist."""
        ...


@runtime_checkable
class MessagePersister(Protocol):
    """Stores messages and notifications, and pages message history."""

    async def save(
        self, messages: Sequence[MessageRecord], notifications: Sequence[NotificationRecord]
    ) -> Mapping[tuple[int, str], tuple[int, str]] | None:
        """Store everything in one transaction. Saving a record whose id exists is a no-op.

        May return, for messages whose (sender id, ``client_id``) was already stored under
        another id, that id and its ``created_at``: those are answered with the original ack
        and not delivered again. Another save may start before this one returns (after a
        commit timeout), so it must be safe to run concurrently.
        """
        ...

    async def private_page(
        self, user_a: int, user_b: int, *, limit: int, offset: int, before_id: int | None
    ) -> list[MessageRecord]:
        """Messages between two users, newest first."""
        ...

    async def group_page(
        self, group_id: int, *, limit: int, offset: int, before_id: int | None
    ) -> list[MessageRecord]:
        """Messages of one group, newest first."""
        ...

    async def replay_sizes(
        self, user_id: int, *, since: int, since_notification: int | None, limit: int
    ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Plan a resuming client's replay: ``(id, size)`` of up to ``limit`` + 1 of the newest
        messages addressed to ``user_id`` with an id above ``since`` (private to or from it,
        groups it is an accepted member of), and of its notifications above
        ``since_notification`` (none when None), each newest first.

        ``size`` is what the record holds in bytes: a message's ``content`` UTF-8 encoded, a
        notification's ``message`` plus its ``payload`` as JSON. This runs on every resume
        before anything is read: it should read ids and sizes only, never the contents, and
        stop after ``limit`` + 1 rows of each kind.
        """
        ...

    async def replay_page(
        self, user_id: int, message_ids: Sequence[int], notification_ids: Sequence[int]
    ) -> tuple[list[MessageRecord], list[NotificationRecord]]:
        """The messages and notifications with these ids (from :meth:`replay_sizes` for
        ``user_id``, a page of at most a few dozen), each in ascending id order.

        Ids no longer stored, and records ``user_id`` may not see (any more), are left out.
        The replay reads and writes one page at a time, so this is what one resuming
        connection holds in memory.
        """
        ...

    async def find_by_client_id(self, sender_id: int, client_id: str) -> MessageRecord | None:
        """The stored message ``sender_id`` sent with ``client_id`` (idempotent resend)."""
        ...
