"""Blocks: plain functions, the same SQL on both stores (as :mod:`trionet.store.receipts`:
``?`` placeholders, PostgreSQL's through :class:`~trionet.store.receipts.QmarkConnection`).

A block is one row (blocker, blocked) and works both ways for messages, typing, invites and
presence; only the blocker can lift it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

__all__ = ["block", "blocked_among", "blocked_by", "relations", "unblock"]


class _Connection(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Any: ...


def block(conn: _Connection, blocker: int, blocked: int, at: str) -> bool:
    """Record the block; False when it was there already."""
    cur = conn.execute(
        "INSERT INTO blocks (blocker_id, blocked_id, created_at) VALUES (?, ?, ?)"
        " ON CONFLICT (blocker_id, blocked_id) DO NOTHING", (blocker, blocked, at))
    return int(cur.rowcount) == 1


def unblock(conn: _Connection, blocker: int, blocked: int) -> bool:
    cur = conn.execute("DELETE FROM blocks WHERE blocker_id = ? AND blocked_id = ?",
                       (blocker, blocked))
    return int(cur.rowcount) == 1


def blocked_by(conn: _Connection, blocker: int) -> list[int]:
    """Whom ``blocker`` blocks, by id."""
    rows = conn.execute("SELECT blocked_id FROM blocks WHERE blocker_id = ? ORDER BY blocked_id",
                        (blocker,)).fetchall()
    return [int(r[0]) for r in rows]


def relations(conn: _Connection, user_id: int) -> frozenset[int]:
    """Everyone ``user_id`` blocks or is blocked by."""
    rows = conn.execute(
        "SELECT blocked_id FROM blocks WHERE blocker_id = ?"
        " UNION SELECT blocker_id FROM blocks WHERE blocked_id = ?",
        (user_id, user_id)).fetchall()
    return frozenset(int(r[0]) for r in rows)


def blocked_among(conn: _Connection, user_id: int, others: Sequence[int]) -> set[int]:
    """Those of ``others`` who block ``user_id`` or whom it blocks."""
    found: set[int] = set()
    for start in range(0, len(others), 400):  # two IN lists of 400 per statement at most
        chunk = others[start:start + 400]
        marks = ", ".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT blocked_id FROM blocks WHERE blocker_id = ? AND blocked_id IN ({marks})"
            " UNION SELECT blocker_id FROM blocks WHERE blocked_id = ?"
            f" AND blocker_id IN ({marks})", (user_id, *chunk, user_id, *chunk)).fetchall()
        found.update(int(r[0]) for r in rows)
    return found
