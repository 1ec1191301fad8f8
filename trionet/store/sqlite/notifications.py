"""Notifications: pages, unread counts and read marks (plain functions; run them off the loop).

Rows are inserted by the committer (``messages.insert_batch``); this module reads them, marks
them read, and deletes them (an invite's superseded notification, an inbox over its bound),
always for one user, so a caller can never touch another user's rows.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from ...core.clock import now_iso
from ...core.frames import INVITE_SUBTYPE, notification_frame
from ...interfaces import NotificationRecord

__all__ = [
    "INVITE_SUBTYPE",
    "drop_invite_notifications",
    "inbox_sizes",
    "mark_invite_read",
    "mark_read",
    "notification_page",
    "over_bound",
    "prune_inbox",
    "row_to_item",
    "unread_count",
]


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


def mark_invite_read(conn: sqlite3.Connection, group_id: int, user_id: int) -> int:
    """Mark read the user's unread ``group_invite`` notifications of ``group_id`` (the invite
    was answered); returns how many changed."""
    cur = conn.execute(
        "UPDATE notifications SET read_at = ? WHERE user_id = ? AND read_at IS NULL"
        " AND subtype = ? AND json_extract(payload, '$.group_id') = ?",
        (now_iso(), user_id, INVITE_SUBTYPE, group_id),
    )
    return int(cur.rowcount)


def drop_invite_notifications(
    conn: sqlite3.Connection, group_id: int, user_ids: Sequence[int]
) -> int:
    """Delete the ``group_invite`` notifications of ``group_id`` held by ``user_ids``.

    Run in the transaction that re-invites, withdraws, declines or deletes, before the new
    invite's notification (if any) is submitted: it can only remove earlier ones. Walks each
    user's rows by the ``notifications_by_user`` index (bounded by the inbox size).
    """
    if not user_ids:
        return 0
    cur = conn.execute(
        "DELETE FROM notifications WHERE user_id IN (SELECT value FROM json_each(?))"
        " AND subtype = ? AND json_extract(payload, '$.group_id') = ?",
        (json.dumps(list(user_ids)), INVITE_SUBTYPE, group_id),
    )
    return int(cur.rowcount)


def inbox_sizes(conn: sqlite3.Connection, user_ids: Sequence[int]) -> dict[int, int]:
    """How many notifications each of ``user_ids`` holds (users holding none are left out).

    Counts entries of the ``notifications_by_user`` index only (it covers the query).
    """
    if not user_ids:
        return {}
    rows = conn.execute(
        "SELECT user_id, count(*) FROM notifications"
        " WHERE user_id IN (SELECT value FROM json_each(?)) GROUP BY user_id",
        (json.dumps(list(user_ids)),),
    )
    return {int(uid): int(n) for uid, n in rows}


def over_bound(conn: sqlite3.Connection, bound: int, *, after: int, limit: int) -> list[int]:
    """Up to ``limit`` ids of users above ``after`` holding more than ``bound`` notifications,
    in id order (a full pass over the ``notifications_by_user`` index, in pages)."""
    rows = conn.execute(
        "SELECT user_id FROM notifications WHERE user_id > ? GROUP BY user_id"
        " HAVING count(*) > ? ORDER BY user_id LIMIT ?",
        (after, bound, limit),
    )
    return [int(r[0]) for r in rows]


def prune_inbox(conn: sqlite3.Connection, user_id: int, bound: int) -> int:
    """Keep at most ``bound`` of the user's notifications (``bound`` 0: keep all).

    The oldest read ones go first, then, if still over, the oldest unread. Returns how many
    were deleted. Each step walks one index in id order (``notifications_by_user``, then the
    partial ``notifications_unread``) and stops after the rows it deletes.
    """
    if bound <= 0:
        return 0
    (held,) = conn.execute(
        "SELECT count(*) FROM notifications WHERE user_id = ?", (user_id,)
    ).fetchone()
    excess = int(held) - bound
    if excess <= 0:
        return 0
    deleted = 0
    for read in ("read_at IS NOT NULL", "read_at IS NULL"):
        cur = conn.execute(
            "DELETE FROM notifications WHERE id IN (SELECT id FROM notifications"
            f" WHERE user_id = ? AND {read} ORDER BY id LIMIT ?)",
            (user_id, excess - deleted),
        )
        deleted += int(cur.rowcount)
        if deleted >= excess:
            break
    return deleted
