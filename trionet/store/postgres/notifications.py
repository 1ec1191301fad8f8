"""Notifications: pages, unread counts and read marks (plain functions; run them off the loop).

As the SQLite store's (:mod:`trionet.store.sqlite.notifications`): rows are inserted by
``messages.insert_batch``, read, marked read and deleted here, always for one user. Payloads
are JSON text; the invite look-ups parse them only for ``group_invite`` rows (the ``CASE``),
so an odd payload elsewhere can never fail a statement.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ...core.clock import now_iso
from ...core.frames import INVITE_SUBTYPE, notification_frame
from ...interfaces import NotificationRecord
from .database import Conn

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

#: the payload's ``group_id`` of an invite notification when it is a JSON number (as SQLite's
#: ``json_extract(payload, '$.group_id') = ?`` matches), else NULL
_INVITE_GROUP = (
    "(CASE WHEN subtype = 'group_invite' THEN"
    " (CASE WHEN json_typeof(payload::json -> 'group_id') = 'number'"
    "  THEN (payload::json ->> 'group_id')::numeric END) END)"
)


def row_to_item(row: tuple[Any, ...]) -> dict[str, Any]:
    """A stored notification as the live frame had it, plus ``read`` (bool)."""
    id_, user_id, subtype, message, payload_text, read_at, created_at = row
    try:
        payload = json.loads(payload_text or "{}")
    except ValueError:
        payload = {}
    record = NotificationRecord(
        id=int(id_), user_id=int(user_id), subtype=str(subtype), message=str(message),
        created_at=str(created_at), payload=payload if isinstance(payload, dict) else {},
    )
    item = notification_frame(record)
    item.pop("read", None)
    item["read"] = read_at is not None
    return item


def notification_page(conn: Conn, user_id: int, *, limit: int, offset: int,
                      before_id: int | None = None) -> list[dict[str, Any]]:
    """The user's notifications, newest first."""
    where = "user_id = %s"
    params: list[object] = [user_id]
    if before_id is not None:
        where += " AND id < %s"
        params.append(before_id)
    rows = conn.execute(
        "SELECT id, user_id, subtype, message, payload, read_at, created_at FROM notifications"
        f" WHERE {where} ORDER BY id DESC LIMIT %s OFFSET %s",
        [*params, limit, offset],
    )
    return [row_to_item(r) for r in rows]


def unread_count(conn: Conn, user_id: int) -> int:
    row = conn.execute(
        "SELECT count(*) FROM notifications WHERE user_id = %s AND read_at IS NULL", (user_id,)
    ).fetchone()
    return 0 if row is None else int(row[0])


def mark_read(conn: Conn, user_id: int, ids: Sequence[int] | None = None) -> int:
    """Mark the user's notifications read: all, or those of ``ids`` that are theirs; returns
    how many changed from unread."""
    now = now_iso()
    if ids is None:
        cur = conn.execute(
            "UPDATE notifications SET read_at = %s WHERE user_id = %s AND read_at IS NULL",
            (now, user_id),
        )
    else:
        if not ids:
            return 0
        cur = conn.execute(
            "UPDATE notifications SET read_at = %s WHERE user_id = %s AND read_at IS NULL"
            " AND id = ANY(%s::bigint[])",
            (now, user_id, list(ids)),
        )
    return int(cur.rowcount)


def mark_invite_read(conn: Conn, group_id: int, user_id: int) -> int:
    """Mark read the user's unread ``group_invite`` notifications of ``group_id``."""
    cur = conn.execute(
        "UPDATE notifications SET read_at = %s WHERE user_id = %s AND read_at IS NULL"
        f" AND subtype = %s AND {_INVITE_GROUP} = %s",
        (now_iso(), user_id, INVITE_SUBTYPE, group_id),
    )
    return int(cur.rowcount)


def drop_invite_notifications(conn: Conn, group_id: int, user_ids: Sequence[int]) -> int:
    """Delete the ``group_invite`` notifications of ``group_id`` held by ``user_ids`` (walks
    each user's rows by ``notifications_by_user``)."""
    if not user_ids:
        return 0
    cur = conn.execute(
        "DELETE FROM notifications WHERE user_id = ANY(%s::bigint[])"
        f" AND subtype = %s AND {_INVITE_GROUP} = %s",
        (list(user_ids), INVITE_SUBTYPE, group_id),
    )
    return int(cur.rowcount)


def inbox_sizes(conn: Conn, user_ids: Sequence[int]) -> dict[int, int]:
    """How many notifications each of ``user_ids`` holds (users holding none left out)."""
    if not user_ids:
        return {}
    rows = conn.execute(
        "SELECT user_id, count(*) FROM notifications WHERE user_id = ANY(%s::bigint[])"
        " GROUP BY user_id",
        (list(user_ids),),
    )
    return {int(uid): int(n) for uid, n in rows}


def over_bound(conn: Conn, bound: int, *, after: int, limit: int) -> list[int]:
    """Up to ``limit`` ids of users above ``after`` holding more than ``bound``, in id order."""
    rows = conn.execute(
        "SELECT user_id FROM notifications WHERE user_id > %s GROUP BY user_id"
        " HAVING count(*) > %s ORDER BY user_id LIMIT %s",
        (after, bound, limit),
    )
    return [int(r[0]) for r in rows]


def prune_inbox(conn: Conn, user_id: int, bound: int) -> int:
    """Keep at most ``bound`` of the user's notifications (``bound`` 0: keep all): the oldest
    read ones go first, then the oldest unread. Returns how many were deleted."""
    if bound <= 0:
        return 0
    row = conn.execute(
        "SELECT count(*) FROM notifications WHERE user_id = %s", (user_id,)
    ).fetchone()
    excess = (0 if row is None else int(row[0])) - bound
    if excess <= 0:
        return 0
    deleted = 0
    for read in ("read_at IS NOT NULL", "read_at IS NULL"):
        cur = conn.execute(
            "DELETE FROM notifications WHERE id IN (SELECT id FROM notifications"
            f" WHERE user_id = %s AND {read} ORDER BY id LIMIT %s)",
            (user_id, excess - deleted),
        )
        deleted += int(cur.rowcount)
        if deleted >= excess:
            break
    return deleted


def prune_inboxes(conn: Conn, user_ids: Sequence[int], bound: int) -> int:
    return sum(prune_inbox(conn, uid, bound) for uid in user_ids)
