"""JSON Schema of every WebSocket frame (``GET /schema/frames.json``).

Client frames are the schemas the server decodes them with: every registered
:class:`~trionet.realtime.messagetypes.MessageType` (an application's own included), ``ping``,
``read``, ``edit`` and ``delete``. Server frames are described by the structs below, one per
``type`` the server sends, and, for each application type, one derived from its client schema
(its payload fields, ``from``, ``to`` or ``group_id``, ``timestamp``, and ``id`` when it is
persisted). ``tests/test_frame_schema.py`` checks real frames of a live server against them.
"""

from __future__ import annotations

import typing
from typing import Any

import msgspec

from .messagetypes import (
    ROUTING_FIELDS,
    DeleteIn,
    EditIn,
    MessageTypes,
    PingIn,
    ReadIn,
)

__all__ = ["SERVER_FRAMES", "frame_schema"]

Id = typing.Annotated[int, msgspec.Meta(ge=0, le=2**53 - 1)]
Timestamp = typing.Annotated[str, msgspec.Meta(description="ISO 8601, UTC, milliseconds")]


class _Out(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, kw_only=True):
    pass


class _StoredOut(_Out):
    """A stored message as delivered, replayed and listed (``deleted``: without content)."""

    id: Id
    timestamp: Timestamp
    from_: Id = msgspec.field(name="from")
    content: str | None = None
    edited_at: Timestamp | None = None
    deleted: bool | None = None
    persisted: bool | None = None


class PrivateOut(_StoredOut, tag="private", kw_only=True):
    to: Id


class GroupOut(_StoredOut, tag="group", kw_only=True):
    group_id: Id


class BroadcastOut(_Out, tag="broadcast"):
    content: str
    timestamp: Timestamp
    from_: Id | None = msgspec.field(name="from")


class NotificationOut(msgspec.Struct, tag_field="type", tag="notification", kw_only=True):
    """Extra keys of the notification's payload come beside these."""

    id: Id
    subtype: str
    message: str
    timestamp: Timestamp
    persisted: bool | None = None


class AckOut(_Out, tag="ack"):
    client_id: str
    id: Id | None
    timestamp: Timestamp
    persisted: bool
    last_read_id: Id | None = None
    unread_count: int | None = None


class ErrorOut(_Out, tag="error"):
    code: str
    message: str
    client_id: str | None


class PongOut(_Out, tag="pong"):
    client_id: str | None


class SyncedOut(_Out, tag="synced"):
    last_id: Id
    last_notification_id: Id | None = None


class SyncGapOut(_Out, tag="sync_gap"):
    from_id: Id


class PresenceOut(_Out, tag="presence"):
    user_id: Id
    online: bool
    timestamp: Timestamp


class ReadOut(_Out, tag="read"):
    up_to: Id
    timestamp: Timestamp
    from_: Id = msgspec.field(name="from")
    to: Id | None = None
    group_id: Id | None = None


class EditedOut(_Out, tag="edited"):
    id: Id
    content: str
    edited_at: Timestamp
    from_: Id = msgspec.field(name="from")
    to: Id | None = None
    group_id: Id | None = None


class DeletedOut(_Out, tag="deleted"):
    id: Id
    timestamp: Timestamp
    to: Id | None = None
    group_id: Id | None = None


#: the server frames of the protocol itself
SERVER_FRAMES: tuple[type[Any], ...] = (
    PrivateOut, GroupOut, BroadcastOut, NotificationOut, AckOut, ErrorOut, PongOut, SyncedOut,
    SyncGapOut, PresenceOut, ReadOut, EditedOut, DeletedOut)
_BUILTIN = frozenset({"private", "group", "broadcast", "notification"})


def _delivered(name: str, schema: type[Any], persisted: bool) -> type[Any]:
    """The server frame of an application type: what its router delivers."""
    fields: list[Any] = []
    if persisted:
        fields.append(("id", Id))
    fields.append(("from_", Id, msgspec.field(name="from")))
    hints = typing.get_type_hints(schema, include_extras=True)
    for field in msgspec.structs.fields(schema):
        if field.name in ("client_id", "timestamp"):
            continue
        if field.name in ROUTING_FIELDS:
            fields.append((field.name, Id | None, None))
        else:
            fields.append((field.name, hints[field.name], field.default
                           if field.default is not msgspec.NODEFAULT else msgspec.NODEFAULT))
    fields.append(("timestamp", Timestamp))
    fields.append(("persisted", bool | None, None))
    return msgspec.defstruct(f"{schema.__name__.removesuffix('In')}Out", fields, bases=(_Out,),
                             tag=name,
                             kw_only=True)


def frame_schema(types: MessageTypes) -> dict[str, Any]:
    """The JSON Schema document: ``client`` and ``server``, each a ``oneOf`` by ``type``."""
    client = [m.schema for m in types.by_name.values()] + [PingIn, ReadIn, EditIn, DeleteIn]
    server = list(SERVER_FRAMES) + [
        _delivered(name, m.schema, m.persisted) for name, m in types.by_name.items()
        if name not in _BUILTIN]
    (client_schema, server_schema), components = msgspec.json.schema_components(
        [typing.Union[tuple(client)], typing.Union[tuple(server)]],  # noqa: UP007
        ref_template="#/$defs/{name}")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "/schema/frames.json",
        "title": "trionet WebSocket frames",
        "description": "Frames on GET /ws (docs/protocol.md): `client` what a client may send,"
                       " `server` what the server sends. Both are JSON objects tagged by `type`.",
        "$defs": components,
        "properties": {"client": client_schema, "server": server_schema},
    }
