"""Conversations and the people related to a user (plain functions; run them off the loop).

``conversations`` is kept by the ``conversations_on_private`` trigger on ``messages``
(migrations/postgres/0001_initial.sql): one row per user and peer with the id of their latest
private message, and ``wrote`` once the user has sent the peer a message.
"""

from __future__ import annotations

from collections.abc import Callable

from ..records import Conversation
from .database import Conn
from .messages import MESSAGE_COLUMNS, row_to_message

__all__ = ["conversation_page", "related_users"]

_LAST_MESSAGE_COLS = ", ".join(f"m.{c}" for c in MESSAGE_COLUMNS)

#: related users are read in pages of this many rows (at least ``2 * limit``), so a call
#: stops reading soon after it has found ``limit``
RELATED_PAGE = 200

_RELATED = (
    # who shares an accepted group with the user (group_members_by_user, then each group's
    # members by the primary key)
    "SELECT DISTINCT other.user_id FROM group_members mine"
    " JOIN group_members other ON other.group_id = mine.group_id"
    " WHERE mine.user_id = %(user)s AND mine.status = 'accepted'"
    " AND other.status = 'accepted' AND other.user_id != %(user)s"
    " ORDER BY other.user_id LIMIT %(limit)s OFFSET %(offset)s",
    # a private conversation in which both sides wrote (the conversations key, both ways)
    "SELECT mine.peer_id FROM conversations mine"
    " JOIN conversations theirs"
    "   ON theirs.user_id = mine.peer_id AND theirs.peer_id = mine.user_id"
    " WHERE mine.user_id = %(user)s AND mine.peer_id != %(user)s AND mine.wrote"
    " AND theirs.wrote ORDER BY mine.peer_id LIMIT %(limit)s OFFSET %(offset)s",
)


def conversation_page(conn: Conn, user_id: int, *, limit: int, offset: int,
                      before_id: int | None = None) -> list[Conversation]:
    """The user's conversations, most recent first; ``before_id`` keeps only those whose
    latest message id is below it."""
    where = "c.user_id = %s"
    params: list[object] = [user_id]
    if before_id is not None:
        where += " AND c.last_message_id < %s"
        params.append(before_id)
    rows = conn.execute(
        f"SELECT c.peer_id, u.username, {_LAST_MESSAGE_COLS}"
        " FROM conversations c JOIN messages m ON m.id = c.last_message_id"
        " LEFT JOIN users u ON u.id = c.peer_id"
        f" WHERE {where} ORDER BY c.last_message_id DESC LIMIT %s OFFSET %s",
        [*params, limit, offset],
    )
    return [
        Conversation(peer_id=int(r[0]), peer_username=None if r[1] is None else str(r[1]),
                     last_message=row_to_message(r[2:]))
        for r in rows
    ]


def related_users(conn: Conn, user_id: int, *, wanted: Callable[[int], bool],
                  limit: int) -> list[int]:
    """Up to ``limit`` users for whom ``wanted(id)`` holds among those related to ``user_id``
    (``user_id`` excluded): who share an accepted group with them, or have a private
    conversation with them in which **both** sides have written (see the SQLite store's)."""
    if limit <= 0:
        return []
    found: dict[int, None] = {}
    page = max(RELATED_PAGE, 2 * limit)
    for sql in _RELATED:
        offset = 0
        while True:
            rows = conn.execute(sql, {"user": user_id, "limit": page, "offset": offset})
            uids = [int(r[0]) for r in rows]
            for uid in uids:
                if uid not in found and wanted(uid):
                    found[uid] = None
                    if len(found) >= limit:
                        return list(found)
            if len(uids) < page:
                break
            offset += page
    return list(found)
