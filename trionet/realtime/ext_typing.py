"""``typing``: the worked example of a message type added through the extension mechanism.

A client tells the peer (``{"type":"typing","to":123}``) or a group's other members
(``{"type":"typing","group_id":"456"}``) that it is typing; they receive
``{"type":"typing","from":<sender>,"to"|"group_id":...,"timestamp":...}``. Ephemeral (never
stored), authorized like a private or group message, and limited to 2 per second per
connection. Enabled by default; ``docs/extending.md`` walks through it.
"""

from __future__ import annotations

from .messagetypes import BUILTIN_TYPES, Frame, GroupId, MessageType, UserId, to_user_or_group

__all__ = ["DEFAULT_TYPES", "TYPING", "TypingIn"]


class TypingIn(Frame, tag="typing"):
    """Exactly one of ``to`` (a user) and ``group_id`` (a group the sender belongs to)."""

    to: UserId | None = None
    group_id: GroupId | None = None


TYPING = MessageType(TypingIn, route=to_user_or_group(), persisted=False, rate=2.0)

#: what every app accepts unless told otherwise: the four built-in types and ``typing``
DEFAULT_TYPES: tuple[MessageType, ...] = (*BUILTIN_TYPES, TYPING)
