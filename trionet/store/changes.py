"""Edits and deletes of stored messages: plain functions, the same SQL on both stores.

As :mod:`trionet.store.receipts`: each function takes a DB-API connection with ``?``
placeholders (SQLite's own, PostgreSQL's through
:class:`~trionet.store.receipts.QmarkConnection`); the columns are migrations m0007 and
postgres/0003. An edit replaces ``content`` and sets ``edited_at``; a delete erases
``content`` (``""``) and sets ``deleted_at``; both record the change's id (``change_id``, from
the message id sequence), which a resume looks up (``messages_changed``). A deleted message
changes no more, and a change that would leave the row as it is changes nothing, so a resent
edit or delete is never delivered twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ..interfaces import MessageRecord
from .records import MESSAGE_COLUMNS, row_to_message

__all__ = ["changed_since", "delete_message", "edit_message", "group_owner", "message_by_id"]

_COLUMNS = ", ".join(MESSAGE_COLUMNS)
#: the messages a user may see: their private ones, and those of their groups
_VISIBLE = ("(kind = 'private' AND (recipient_id = ? OR sender_id = ?)) OR (kind = 'group' AND"
            " group_id IN (SELECT group_id FROM group_members WHERE user_id = ?"
            " AND status = 'accepted'))")


class _Connection(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Any: ...


def message_by_id(conn: _Connection, message_id: int) -> MessageRecord | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM messages WHERE id = ?",
                       (message_id,)).fetchone()
    return None if row is None else row_to_message(row)


def group_owner(conn: _Connection, group_id: int) -> int | None:
    row = conn.execute("SELECT owner_id FROM groups WHERE id = ?", (group_id,)).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def edit_message(conn: _Connection, message_id: int, content: str, change_id: int,
                 at: str) -> bool:
    """Replace a message's content (not a deleted one's); False when nothing changed."""
    cur = conn.execute(
        "UPDATE messages SET content = ?, edited_at = ?, change_id = ?"
        " WHERE id = ? AND deleted_at IS NULL AND content != ?",
        (content, at, change_id, message_id, content))
    return int(cur.rowcount) == 1


def delete_message(conn: _Connection, message_id: int, change_id: int, at: str) -> bool:
    """Erase a message's content and mark it deleted; False when it was already."""
    cur = conn.execute(
        "UPDATE messages SET content = '', deleted_at = ?, change_id = ?"
        " WHERE id = ? AND deleted_at IS NULL", (at, change_id, message_id))
    conn.execute("DELETE FROM webhook_outbox WHERE message_id = ?", (message_id,))
    return int(cur.rowcount) == 1


def changed_since(conn: _Connection, user_id: int, since: int,
                  limit: int) -> list[tuple[int, int]]:
    """(message id, change id) of the messages the user may see whose last change came after
    ``since``; the newest ``limit`` changes, oldest first (the replay reads the messages
    themselves a page at a time)."""
    rows = conn.execute(
        f"SELECT id, change_id FROM messages WHERE change_id > ? AND ({_VISIBLE})"
        " ORDER BY change_id DESC LIMIT ?",
        (since, user_id, user_id, user_id, limit)).fetchall()
    changed = [(int(r[0]), int(r[1])) for r in rows]
    changed.reverse()
    return changed
