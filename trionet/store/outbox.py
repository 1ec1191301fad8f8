"""The webhook outbox: plain functions, the same SQL on both stores (as
:mod:`trionet.store.receipts`). Events wait in ``webhook_outbox`` until the backend took them.

A sender claims the due rows (``next_at`` at or before now) by moving their ``next_at`` a lease
ahead in the same transaction, so two senders (two nodes) never take the same row at once, and
a sender that dies lets its rows come due again when the lease ends (at least once).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

__all__ = ["outbox_add", "outbox_claim", "outbox_done", "outbox_retry", "outbox_size"]


class _Connection(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Any: ...


def outbox_add(conn: _Connection, events: Sequence[tuple[int, str, int | None]], now: float,
               bound: int) -> int:
    """Add events (id, JSON body, the message it carries or None), due now; past ``bound``
    rows the oldest go. Returns how many were dropped for the bound."""
    for event_id, body, message_id in events:
        conn.execute("INSERT INTO webhook_outbox (id, body, attempts, next_at, message_id)"
                     " VALUES (?, ?, 0, ?, ?) ON CONFLICT (id) DO NOTHING",
                     (event_id, body, now, message_id))
    size = int(conn.execute("SELECT count(*) FROM webhook_outbox").fetchone()[0])
    if size <= bound:
        return 0
    row = conn.execute("SELECT id FROM webhook_outbox ORDER BY id LIMIT 1 OFFSET ?",
                       (size - bound,)).fetchone()
    cur = conn.execute("DELETE FROM webhook_outbox WHERE id < ?", (int(row[0]),))
    return int(cur.rowcount)


def outbox_claim(conn: _Connection, now: float, lease: float,
                 limit: int) -> list[tuple[int, str, int]]:
    """Take up to ``limit`` due events, oldest first, for ``lease`` seconds: (id, body, the
    attempt this is)."""
    rows = conn.execute("SELECT id, body, attempts FROM webhook_outbox WHERE next_at <= ?"
                        " ORDER BY id LIMIT ?", (now, limit)).fetchall()
    claimed = []
    for event_id, body, attempts in rows:
        cur = conn.execute("UPDATE webhook_outbox SET next_at = ?, attempts = attempts + 1"
                           " WHERE id = ? AND next_at <= ?", (now + lease, event_id, now))
        if int(cur.rowcount) == 1:  # not taken by another sender meanwhile
            claimed.append((int(event_id), str(body), int(attempts) + 1))
    return claimed


def outbox_done(conn: _Connection, event_id: int) -> None:
    conn.execute("DELETE FROM webhook_outbox WHERE id = ?", (event_id,))


def outbox_retry(conn: _Connection, event_id: int, next_at: float) -> None:
    conn.execute("UPDATE webhook_outbox SET next_at = ? WHERE id = ?", (next_at, event_id))


def outbox_size(conn: _Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM webhook_outbox").fetchone()[0])
