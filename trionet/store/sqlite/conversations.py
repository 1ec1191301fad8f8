"""Conversations and the people related to a user (plain functions; run them off the loop).

The ``conversations`` table (migration m0002) is kept by a trigger on ``messages``: one row
per user and peer with the id of their latest private message, and (m0004) ``wrote``, set once
the user has sent the peer a message.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from ..records import Conversation
from .messages import MESSAGE_COLUMNS, row_to_message

_LAST_MESSAGE_COLS = ", ".join(f"m.{c}" for c in MESSAGE_COLUMNS)

__all__ = ["Conversation", "conversation_page", "related_users"]


def conversation_page(
    conn: sqlite3.Connection,
    user_id: int,
    *,
    limit: int,
    offset: int,
    before_id: int | None = None,
) -> list[Conversation]:
    """The user's conversations, most recent first.

    ``before_id`` keeps only conversations whose latest message id is below it.
    """
    where = "c.user_id = ?"
    params: list[object] = [user_id]
    if before_id is not None:
        where += " AND c.last_message_id < ?"
        params.append(before_id)
    rows = conn.execute(
        f"SELECT c.peer_id, u.username, {_LAST_MESSAGE_COLS}"
        " FROM conversations c JOIN messages m ON m.id = c.last_message_id"
        " LEFT JOIN users u ON u.id = c.peer_id"
        f" WHERE {where} ORDER BY c.last_message_id DESC LIMIT ? OFFSET ?",
        [*params, limit, offset],
    )
    return [
        Conversation(peer_id=int(r[0]), peer_username=None if r[1] is None else str(r[1]),
                     last_message=row_to_message(tuple(r)[2:]))
        for r in rows
    ]


def related_users(
    conn: sqlite3.Connection,
    user_id: int,
    *,
    wanted: Callable[[int], bool],
    limit: int,
) -> list[int]:
    """Up to ``limit`` users for whom ``wanted(id)`` holds among those related to ``user_id``
    (``user_id`` excluded): who share an accepted group with them, or have a private
    conversation with them in which **both** sides have written.

    A conversation only one side wrote to is no relation: otherwise one unsolicited message
    would let a stranger follow someone's online status. Both look-ups walk primary keys and
    indexes (``group_members_by_user``, then the ``conversations`` key from each side); it
    stops reading as soon as ``limit`` are found.
    """
    found: dict[int, None] = {}
    if limit <= 0:
        return []
    queries = (
        (
            "SELECT DISTINCT other.user_id FROM group_members mine"
            " JOIN group_members other ON other.group_id = mine.group_id"
            " WHERE mine.user_id = ? AND mine.status = 'accepted'"
            " AND other.status = 'accepted' AND other.user_id != ?",
            (user_id, user_id),
        ),
        (
            "SELECT mine.peer_id FROM conversations mine"
            " JOIN conversations theirs"
            "   ON theirs.user_id = mine.peer_id AND theirs.peer_id = mine.user_id"
            " WHERE mine.user_id = ? AND mine.peer_id != ? AND mine.wrote = 1"
            " AND theirs.wrote = 1",
            (user_id, user_id),
        ),
    )
    for sql, params in queries:
        for (uid,) in conn.execute(sql, params):
            uid = int(uid)
            if uid not in found and wanted(uid):
                found[uid] = None
                if len(found) >= limit:
                    return list(found)
    return list(found)
