"""Server frames built from stored records: one shape for live delivery, replay and history."""

from __future__ import annotations

import json
from typing import Any

from ..interfaces import MessageRecord, NotificationRecord

__all__ = ["INVITE_SUBTYPE", "RESERVED_NOTIFICATION_KEYS", "change_frame", "message_frame",
           "notification_frame"]

#: the subtype of the notification ``POST /api/groups/invite`` sends
INVITE_SUBTYPE = "group_invite"

#: payload keys that never override a notification frame's own fields
RESERVED_NOTIFICATION_KEYS = frozenset({"type", "id", "subtype", "message", "timestamp"})


def message_frame(record: MessageRecord) -> dict[str, Any]:
    """The frame of a stored message (``type`` and ``id`` first): ``private`` or ``group``,
    or an application-defined persisted type with its payload fields; an edited one has
    ``edited_at``; a deleted one has ``deleted: true`` and no content."""
    if record.deleted:
        frame = {"type": record.subtype or record.kind, "id": record.id,
                 "from": record.sender_id}
        if record.kind == "group":
            frame["group_id"] = record.group_id
        else:
            frame["to"] = record.recipient_id
        frame["deleted"] = True
        frame["timestamp"] = record.created_at
        return frame
    if record.edited_at is not None:
        frame = _stored_frame(record)
        frame["edited_at"] = record.edited_at
        return frame
    return _stored_frame(record)


def _stored_frame(record: MessageRecord) -> dict[str, Any]:
    if record.subtype is not None:
        frame: dict[str, Any] = {"type": record.subtype, "id": record.id,
                                 "from": record.sender_id}
        if record.kind == "group":
            frame["group_id"] = record.group_id
        else:
            frame["to"] = record.recipient_id
        payload = json.loads(record.content)
        if isinstance(payload, dict):
            for key, value in payload.items():
                frame.setdefault(key, value)
        frame["timestamp"] = record.created_at
        return frame
    if record.kind == "group":
        return {"type": "group", "id": record.id, "from": record.sender_id,
                "group_id": record.group_id, "content": record.content,
                "timestamp": record.created_at}
    return {"type": "private", "id": record.id, "from": record.sender_id,
            "to": record.recipient_id, "content": record.content,
            "timestamp": record.created_at}


def notification_frame(record: NotificationRecord) -> dict[str, Any]:
    """The ``notification`` frame: payload keys beside the reserved fields (``type`` first)."""
    frame: dict[str, Any] = {"type": "notification", "id": record.id}
    for key, value in record.payload.items():
        if key not in RESERVED_NOTIFICATION_KEYS:
            frame[key] = value
    frame["subtype"] = record.subtype
    frame["message"] = record.message
    frame["timestamp"] = record.created_at
    return frame


def change_frame(record: MessageRecord, at: str) -> dict[str, Any]:
    """The frame of a message's last change (``at``): ``edited``, with its new content, or
    ``deleted``. Its ``id`` (the message's) is not its second key: a change is not a message a
    resume deduplicates by id (trionet.core.resume.frame_id)."""
    scope = ("group_id", record.group_id) if record.kind == "group" else ("to", record.recipient_id)
    if record.deleted:
        return {"type": "deleted", scope[0]: scope[1], "id": record.id, "timestamp": at}
    return {"type": "edited", "from": record.sender_id, "id": record.id, scope[0]: scope[1],
            "content": record.content, "edited_at": at}
