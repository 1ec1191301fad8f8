"""Account deletion (the server API's ``DELETE /api/server/users/{id}``): plain functions,
the same SQL on both stores (as :mod:`trionet.store.receipts`).

The user's messages are erased, not removed (``content`` emptied, ``deleted_at`` set, as a
delete does), so the other side's conversations keep their shape; they are walked in chunks
of the primary key (:func:`erase_messages`), each one short write transaction, since no index
finds every message of a sender on every store. :func:`delete_account` then removes what
belongs to the user alone, in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

__all__ = ["delete_account", "erase_messages"]


class _Connection(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Any: ...


def erase_messages(conn: _Connection, user_id: int, after_id: int, chunk: int, at: str,
                   change_id: int) -> tuple[int | None, int]:
    """Erase the user's messages among the next ``chunk`` ids after ``after_id``; returns
    where the next chunk starts (None: that was the last) and how many were erased."""
    row = conn.execute("SELECT id FROM messages WHERE id > ? ORDER BY id LIMIT 1 OFFSET ?",
                       (after_id, chunk - 1)).fetchone()
    upto = None if row is None else int(row[0])
    sql = ("UPDATE messages SET content = '', deleted_at = ?, change_id = ?"
           " WHERE id > ? AND sender_id = ? AND deleted_at IS NULL")
    params: list[Any] = [at, change_id, after_id, user_id]
    if upto is not None:
        sql += " AND id <= ?"
        params.append(upto)
    return upto, int(conn.execute(sql, params).rowcount)


def delete_account(conn: _Connection, user_id: int) -> dict[str, int]:
    """Delete the user and everything that is theirs alone; returns counts by kind."""
    counts: dict[str, int] = {}
    # webhook events that carry their (now erased) messages
    conn.execute("DELETE FROM webhook_outbox WHERE message_id IN"
                 " (SELECT id FROM messages WHERE sender_id = ?)", (user_id,))
    for kind, sql, params in (
        ("notifications", "DELETE FROM notifications WHERE user_id = ?", (user_id,)),
        ("read_markers", "DELETE FROM read_markers WHERE user_id = ?"
         " OR (kind = 'private' AND target_id = ?)", (user_id, user_id)),
        ("blocks", "DELETE FROM blocks WHERE blocker_id = ? OR blocked_id = ?",
         (user_id, user_id)),
        ("conversations", "DELETE FROM conversations WHERE user_id = ?", (user_id,)),
        ("memberships", "DELETE FROM group_members WHERE user_id = ?", (user_id,)),
        ("sessions", "DELETE FROM sessions WHERE user_id = ?", (user_id,)),
        ("users", "DELETE FROM users WHERE id = ?", (user_id,)),
    ):
        counts[kind] = int(conn.execute(sql, params).rowcount)
    return counts
