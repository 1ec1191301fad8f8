"""Edit and delete: a sender changes what they said, and everyone who saw it sees the change.

:func:`edit_message` (the sender only, plain private and group messages) and
:func:`delete_message` (the sender, the group's owner for a group message, or an admin)
authorize the change, commit it to the store, and then send ``edited`` / ``deleted``
(:func:`trionet.core.frames.change_frame`) to the message's audience: both sides of a private
conversation, or every connection of the group's current accepted members, in either case
every connection but the one that asked. A message nobody may see is ``not_found`` to them,
whether it exists or not. A change that leaves the message as it is (a resend, the same
content, a message deleted already) is answered the same and delivered once.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

from ..core import protocol
from ..core.errors import ErrorCode, FrameError
from ..core.events import Delivery
from ..core.frames import change_frame
from ..core.ids import IdAllocator, id_to_iso
from ..core.routing import ConnRef, Target, ToGroup, ToUsers
from ..interfaces import MessageRecord
from ..store import ChangeStore
from .blocks import BlockCache
from .membership import MembershipCache
from .routequeue import RouteQueue

__all__ = ["ChangeServices", "delete_message", "edit_message"]


class ChangeServices(Protocol):
    """What an edit or a delete needs of the app's shared parts."""

    store: Any  # a ChangeStore (the app's Store)
    membership: MembershipCache
    blocks: BlockCache
    ids: IdAllocator
    routes: RouteQueue

    async def is_admin(self, user_id: int) -> bool: ...


async def _visible(svc: ChangeServices, user_id: int, record: MessageRecord) -> bool:
    if record.kind == "private":
        return user_id in (record.sender_id, record.recipient_id)
    assert record.group_id is not None
    members = await svc.membership.members(record.group_id)
    return members is not None and user_id in members


async def _audience(svc: ChangeServices, record: MessageRecord, origin: ConnRef | None) -> Target:
    if record.kind == "private":
        assert record.recipient_id is not None
        return ToUsers(frozenset((record.sender_id, record.recipient_id)), origin)
    assert record.group_id is not None
    members = await svc.membership.members(record.group_id) or frozenset()
    return ToGroup(record.group_id, members, origin)


def _not_found(message_id: int, client_id: str | None) -> FrameError:
    return FrameError(ErrorCode.NOT_FOUND, f"no message {message_id}", client_id)


async def _tell(svc: ChangeServices, record: MessageRecord, at: str,
                origin: ConnRef | None) -> None:
    frame = change_frame(record, at)
    await svc.routes.send([Delivery(await _audience(svc, record, origin),
                                    protocol.encode(frame), str(frame["type"]))])


async def edit_message(svc: ChangeServices, user_id: int, message_id: int, content: str, *,
                       origin: ConnRef | None = None, client_id: str | None = None) -> str:
    """Replace the content of ``user_id``'s message ``message_id``; returns the edit's time.

    Raises :class:`FrameError`: ``not_found`` (no such message the user may see, or it was
    deleted), ``forbidden`` (someone else's message, or an application-defined type),
    ``blocked`` (a private message, and the two block each other now).
    """
    store: ChangeStore = svc.store
    record = await store.message(message_id)
    if record is None or record.deleted or not await _visible(svc, user_id, record):
        raise _not_found(message_id, client_id)
    if record.sender_id != user_id:
        raise FrameError(ErrorCode.FORBIDDEN, "only its sender may edit a message", client_id)
    if record.subtype is not None:
        raise FrameError(ErrorCode.FORBIDDEN,
                         f"{record.subtype} messages cannot be edited", client_id)
    if record.recipient_id is not None and await svc.blocks.between(user_id,
                                                                    record.recipient_id):
        raise FrameError(ErrorCode.BLOCKED, f"you and user {record.recipient_id} cannot write"
                         " to each other (a block)", client_id)
    change_id = svc.ids.next()
    at = id_to_iso(change_id)
    if await store.edit_message(message_id, content, change_id=change_id, at=at):
        await _tell(svc, dataclasses.replace(record, content=content, edited_at=at), at, origin)
        return at
    current = await store.message(message_id)  # the same content, or deleted meanwhile
    if current is None or current.deleted:
        raise _not_found(message_id, client_id)
    return current.edited_at or current.created_at


async def delete_message(svc: ChangeServices, user_id: int, message_id: int, *,
                         origin: ConnRef | None = None, client_id: str | None = None) -> str:
    """Delete message ``message_id`` (its content is erased); returns the delete's time.

    Allowed to its sender, to the owner of its group, and to admins. Raises
    :class:`FrameError`: ``not_found`` (no such message the user may see), ``forbidden``.
    """
    store: ChangeStore = svc.store
    record = await store.message(message_id)
    if record is None:
        raise _not_found(message_id, client_id)
    admin = await svc.is_admin(user_id)
    if not admin and not await _visible(svc, user_id, record):
        raise _not_found(message_id, client_id)
    allowed = admin or record.sender_id == user_id or (
        record.group_id is not None and await store.group_owner(record.group_id) == user_id)
    if not allowed:
        raise FrameError(ErrorCode.FORBIDDEN, "only its sender, the group's owner or an admin"
                         " may delete a message", client_id)
    change_id = svc.ids.next()
    at = id_to_iso(change_id)
    if record.deleted or not await store.delete_message(message_id, change_id=change_id,
                                                         at=at):
        return at  # deleted already (a resend, or someone else first): nothing more to tell
    await _tell(svc, dataclasses.replace(record, content="", deleted=True), at, origin)
    return at
