"""Notifications: pages, unread counts and read marks (plain functions; run them off the loop).

Rows are inserted by the committer (``messages.insert_batch``); this module only reads them
and marks them read, always for one user, so a caller can never touch another user's rows.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from ..clock import now_iso
from ..frames import notification_frame
from ..interfaces import NotificationRecord

__all__ = ["mark_read", "notification_page", "row_to_item", "unread_count"]

def row_to_item(row: sqlite3.Row) -> dict[str, Any]:
    """A stored notification as the live frame had it, plus ``read`` (bool)."""
    try:
        payload = json.loads(row["payload"] or "{}")
    except ValueError:
        payload = {}
    record = NotificationRecord(
        id=row["id"], user_id=row["user_id"], subtype=row["subtype"], message=row["message"],
        created_at=row["created_at"], payload=payload if isinstance(payload, dict) else {},
    )
    item = notification_frame(record)
    item.pop("read", None)
    item["read"] = row["read_at"] is not None
    return item


def notification_page(
    conn: sqlite3.Connection,
    user_id: int,
    *,
    limit: int,
    offset: int,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    """The user's notifications, newest first."""
    where = "user_id = ?"
    params: list[object] = [user_id]
    if before_id is not None:
        where += " AND id < ?"
        params.append(before_id)
    rows = conn.execute(
        "SELECT id, user_id, subtype, message, payload, read_at, created_at FROM notifications"
        f" WHERE {where} ORDER BY id DESC LIMIT ? OFFSET ?",
        [*params, limit, offset],
    )
    return [row_to_item(r) for r in rows]


def unread_count(conn: sqlite3.Connection, user_id: int) -> int:
    """How many of the user's notifications are unread."""
    row = conn.execute(
        "SELECT count(*) FROM notifications WHERE user_id = ? AND read_at IS NULL", (user_id,)
    ).fetchone()
    return int(row[0])


def mark_read(conn: sqlite3.Connection, user_id: int, ids: Sequence[int] | None = None) -> int:
    """Mark the user's notifications read: all of them, or those of ``ids`` that are theirs.

    Ids of other users' notifications are ignored. Returns how many changed from unread.
    """
    now = now_iso()
    if ids is None:
        cur = conn.execute(
            "UPDATE notifications SET read_at = ? WHERE user_id = ? AND read_at IS NULL",
            (now, user_id),
        )
    else:
        if not ids:
            return 0
        cur = conn.execute(
            "UPDATE notifications SET read_at = ? WHERE user_id = ? AND read_at IS NULL"
            " AND id IN (SELECT value FROM json_each(?))",
            (now, user_id, json.dumps(list(ids))),
        )
    return int(cur.rowcount)
