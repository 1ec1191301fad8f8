"""Read markers: a user says how far they have read a conversation, over HTTP
(``POST /api/conversations/read``) or the WebSocket (a ``read`` frame), and the connections
that show it hear about it.

:func:`mark_read` checks the reader may read the conversation (a private one with a user that
exists, or a group they are an accepted member of), moves their marker in the store (committed
before anyone hears of it; markers only move forward) and, when it moved, sends a ``read``
frame: in a private conversation to the peer (the read receipt) and to the reader's other
connections; in a group to the reader's other connections only (their badges). The same frame
is replayed to a resuming connection for every marker that moved after its cursor
(:func:`read_frame`).
"""

from __future__ import annotations

from typing import Any, Protocol

from ..core import protocol
from ..core.errors import ErrorCode, FrameError
from ..core.events import Delivery
from ..core.ids import IdAllocator, id_to_iso
from ..core.routing import ConnRef, ToUsers, private_target
from ..store import NotInConversation, ReadMarker, ReadState, ReceiptStore
from .blocks import BlockCache
from .membership import MembershipCache
from .routequeue import RouteQueue

__all__ = ["ReadServices", "mark_read", "read_frame"]


class ReadServices(Protocol):
    """What a read needs of the app's shared parts."""

    store: Any  # a ReceiptStore (the app's Store)
    membership: MembershipCache
    blocks: BlockCache
    ids: IdAllocator
    routes: RouteQueue

    async def user_exists(self, user_id: int) -> bool: ...


def read_frame(marker: ReadMarker) -> dict[str, Any]:
    """The ``read`` frame of a marker: ``to`` the peer (private) or ``group_id``."""
    scope = "to" if marker.kind == "private" else "group_id"
    return {"type": "read", "from": marker.reader_id, scope: marker.target_id,
            "up_to": marker.up_to, "timestamp": marker.updated_at}


async def mark_read(svc: ReadServices, reader_id: int, *, to: int | None, group_id: int | None,
                    up_to: int, origin: ConnRef | None = None,
                    client_id: str | None = None) -> tuple[ReadState, str]:
    """Move ``reader_id``'s marker in the private conversation with ``to`` or in group
    ``group_id`` (exactly one) to message ``up_to``; returns the marker's state and the
    read's timestamp. ``origin``, the connection that sent the read, does not hear of it.

    Raises :class:`FrameError`: ``invalid_message`` (neither or both of ``to`` and
    ``group_id``), ``unknown_user``, ``not_member`` (also for a group that does not exist) and
    ``not_found`` (``up_to`` is not a message of that conversation).
    """
    if (to is None) == (group_id is None):
        raise FrameError(ErrorCode.INVALID_MESSAGE, "give exactly one of `to` and `group_id`",
                         client_id)
    if to is not None:
        if not await svc.user_exists(to):
            raise FrameError(ErrorCode.UNKNOWN_USER, f"no user {to}", client_id)
        kind, target_id = "private", to
    else:
        assert group_id is not None
        members = await svc.membership.members(group_id)
        if members is None or reader_id not in members:
            raise FrameError(ErrorCode.NOT_MEMBER, f"you are not a member of group {group_id}",
                             client_id)
        kind, target_id = "group", group_id
    event_id = svc.ids.next()
    at = id_to_iso(event_id)
    store: ReceiptStore = svc.store
    try:
        state = await store.mark_conversation_read(reader_id, kind, target_id, up_to,
                                                   event_id=event_id, at=at)
    except NotInConversation:
        raise FrameError(ErrorCode.NOT_FOUND, f"message {up_to} is not in this conversation",
                         client_id) from None
    if state.moved:
        marker = ReadMarker(reader_id, kind, target_id, state.last_read_id, event_id, at)
        if kind == "private" and not await svc.blocks.between(reader_id, target_id):
            audience: ToUsers = private_target(reader_id, target_id, origin)
        else:  # a group, or a peer blocked either way: the reader's own tabs only
            audience = ToUsers((reader_id,), origin)
        await svc.routes.send([Delivery(audience, protocol.encode(read_frame(marker)), "read")])
    return state, at
