"""Retention: deleting what is older than a horizon, in small batches (plain functions, the
same SQL on both stores, as :mod:`trionet.store.receipts`).

Ids grow with time (trionet.core.ids), so "older than the horizon" is "an id below the
horizon's id", walked on the primary key. A batch of messages takes the conversation rows whose
latest message it deletes with it (primary-key lookups: no index by latest message needed);
each batch is one short write transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

__all__ = ["expire_messages", "expire_notifications"]


class _Connection(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Any: ...


def expire_messages(conn: _Connection, before_id: int, limit: int) -> int:
    """Delete up to ``limit`` of the oldest messages below ``before_id`` (and the conversation
    rows whose latest message is below it); returns how many messages."""
    rows = conn.execute("SELECT id, sender_id, recipient_id FROM messages WHERE id < ?"
                        " ORDER BY id LIMIT ?", (before_id, limit)).fetchall()
    if not rows:
        return 0
    pairs = {(int(r[1]), int(r[2])) for r in rows if r[2] is not None}
    for a, b in pairs:
        conn.execute("DELETE FROM conversations WHERE ((user_id = ? AND peer_id = ?)"
                     " OR (user_id = ? AND peer_id = ?)) AND last_message_id < ?",
                     (a, b, b, a, before_id))
    last = int(rows[-1][0])
    conn.execute("DELETE FROM webhook_outbox WHERE message_id <= ?", (last,))
    cur = conn.execute("DELETE FROM messages WHERE id <= ? AND id < ?", (last, before_id))
    return int(cur.rowcount)


def expire_notifications(conn: _Connection, before_id: int, limit: int) -> int:
    """Delete up to ``limit`` of the oldest notifications below ``before_id``."""
    row = conn.execute("SELECT id FROM notifications WHERE id < ? ORDER BY id LIMIT 1 OFFSET ?",
                       (before_id, limit - 1)).fetchone()
    upto = before_id if row is None else int(row[0]) + 1
    cur = conn.execute("DELETE FROM notifications WHERE id < ?", (upto,))
    return int(cur.rowcount)
