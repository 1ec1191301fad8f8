"""Messages and notifications: batch inserts and history pages."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from ...interfaces import MessageRecord, NotificationRecord
from ..records import MESSAGE_COLUMNS, Duplicates, row_to_message

__all__ = [
    "MESSAGE_COLUMNS",
    "Duplicates",
    "find_by_client_id",
    "group_page",
    "insert_batch",
    "private_page",
    "replay_page",
    "replay_sizes",
    "row_to_message",
]

_MSG_COLS = ", ".join(MESSAGE_COLUMNS)




def insert_batch(
    conn: sqlite3.Connection,
    messages: Sequence[MessageRecord],
    notifications: Sequence[NotificationRecord],
) -> Duplicates:
    """Insert records; ids already stored are skipped, so a retried batch never duplicates.

    A message whose (sender, ``client_id``) was stored before under another id is not stored
    again: it is returned, with the stored message's id and time, so the caller can answer
    with the original ack instead of delivering a copy.
    """
    duplicates: Duplicates = {}
    if messages:
        # the cursor's rowcount counts the rows this insert stored, not the trigger's changes
        # to `conversations` (which total_changes would add in, hiding skipped rows)
        cur = conn.executemany(
            "INSERT OR IGNORE INTO messages (id, kind, sender_id, recipient_id, group_id,"
            " peer_lo, peer_hi, content, client_id, created_at, subtype)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    m.id, m.kind, m.sender_id, m.recipient_id, m.group_id,
                    None if m.recipient_id is None else min(m.sender_id, m.recipient_id),
                    None if m.recipient_id is None else max(m.sender_id, m.recipient_id),
                    m.content, m.client_id, m.created_at, m.subtype,
                )
                for m in messages
            ],
        )
        if cur.rowcount < len(messages):  # some were already there
            duplicates = _stored_under_other_ids(conn, messages)
    if notifications:
        conn.executemany(
            "INSERT OR IGNORE INTO notifications (id, user_id, subtype, message, payload,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (n.id, n.user_id, n.subtype, n.message, json.dumps(dict(n.payload)), n.created_at)
                for n in notifications
            ],
        )
    return duplicates


def _stored_under_other_ids(
    conn: sqlite3.Connection, messages: Sequence[MessageRecord]
) -> Duplicates:
    found: Duplicates = {}
    for m in messages:
        if m.client_id is None:
            continue
        row = conn.execute(
            "SELECT id, created_at FROM messages WHERE sender_id = ? AND client_id = ?",
            (m.sender_id, m.client_id),
        ).fetchone()
        if row is not None and int(row[0]) != m.id:
            found[(m.sender_id, m.client_id)] = (int(row[0]), str(row[1]))
    return found


def _page(
    conn: sqlite3.Connection,
    where: str,
    params: list[object],
    limit: int,
    offset: int,
    before_id: int | None,
) -> list[MessageRecord]:
    if before_id is not None:
        where += " AND id < ?"
        params.append(before_id)
    sql = f"SELECT {_MSG_COLS} FROM messages WHERE {where} ORDER BY id DESC LIMIT ? OFFSET ?"
    return [row_to_message(r) for r in conn.execute(sql, [*params, limit, offset])]


def private_page(
    conn: sqlite3.Connection,
    user_a: int,
    user_b: int,
    *,
    limit: int,
    offset: int,
    before_id: int | None,
) -> list[MessageRecord]:
    lo, hi = min(user_a, user_b), max(user_a, user_b)
    return _page(
        conn, "kind = 'private' AND peer_lo = ? AND peer_hi = ?", [lo, hi], limit, offset,
        before_id,
    )


def group_page(
    conn: sqlite3.Connection, group_id: int, *, limit: int, offset: int, before_id: int | None
) -> list[MessageRecord]:
    return _page(conn, "kind = 'group' AND group_id = ?", [group_id], limit, offset, before_id)


#: the messages a user may see: private to or from it, of groups it is an accepted member of
_VISIBLE = ("(kind = 'private' AND (recipient_id = ? OR sender_id = ?)) OR (kind = 'group' AND"
            " group_id IN (SELECT group_id FROM group_members WHERE user_id = ?"
            " AND status = 'accepted'))")


#: the private half of the replay plan, through the conversation list instead of an index of
#: messages by recipient and one by sender (each stored message would otherwise dirty one more
#: page of each: they were half the cost of a commit). The newest limit + 1 private messages
#: of a user lie in at most limit + 1 conversations, those with the newest last messages
#: (each of those last messages is newer than any message of a conversation left out), and
#: when there are that many, none is older than the oldest of those last messages (they are
#: limit + 1 distinct messages of the user). So the plan takes the newest limit + 1
#: conversations changed after ``since`` (conversations_by_recency), then the newest limit + 1
#: messages of each after ``since`` and not before that floor (messages_by_pair, backwards):
#: the rows read are at most the user's private messages since the floor, and at most
#: (limit + 1) squared. Parameters: user, since, n, n, user, user, since, n, n.
_REPLAY_PRIVATE = (
    "SELECT * FROM (WITH c AS (SELECT peer_id, last_message_id FROM conversations"
    " WHERE user_id = ? AND last_message_id > ? ORDER BY last_message_id DESC LIMIT ?),"
    " f AS (SELECT CASE WHEN count(*) = ? THEN min(last_message_id) ELSE 0 END AS floor"
    " FROM c)"
    " SELECT m.id FROM c, f, messages AS m WHERE m.id IN (SELECT id FROM messages"
    " WHERE kind = 'private' AND peer_lo = min(?, c.peer_id) AND peer_hi = max(?, c.peer_id)"
    " AND id > max(?, f.floor - 1) ORDER BY id DESC LIMIT ?) ORDER BY m.id DESC LIMIT ?)"
)


def replay_sizes(
    conn: sqlite3.Connection,
    user_id: int,
    *,
    since: int,
    since_notification: int | None,
    limit: int,
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """``(id, bytes stored)`` of the newest ``limit`` + 1 messages addressed to ``user_id``
    after ``since`` (private to or from it, groups it is an accepted member of) and of its
    notifications after ``since_notification``, each newest first. No content is returned."""
    # each branch stops after the newest limit + 1 ids (index walks, not the whole history);
    # sizes are then computed for those rows only
    group = ("SELECT * FROM (SELECT id FROM messages WHERE kind = 'group' AND id > ? AND"
             " group_id IN (SELECT group_id FROM group_members WHERE user_id = ?"
             " AND status = 'accepted') ORDER BY id DESC LIMIT ?)")
    newest = f"{_REPLAY_PRIVATE} UNION {group} ORDER BY id DESC LIMIT ?"
    sql = (f"SELECT id, length(CAST(content AS BLOB)) FROM messages WHERE id IN ({newest})"
           " ORDER BY id DESC")
    n = limit + 1
    msgs = [
        (int(r[0]), int(r[1]))
        for r in conn.execute(sql, (user_id, since, n, n, user_id, user_id, since, n, n,
                                    since, user_id, n, n))
    ]
    notes: list[tuple[int, int]] = []
    if since_notification is not None:
        notes = [
            (int(r[0]), int(r[1]))
            for r in conn.execute(
                "SELECT id, length(CAST(message AS BLOB)) + length(CAST(payload AS BLOB))"
                " FROM notifications WHERE user_id = ? AND id > ? ORDER BY id DESC LIMIT ?",
                (user_id, since_notification, n),
            )
        ]
    return msgs, notes


def replay_page(
    conn: sqlite3.Connection,
    user_id: int,
    message_ids: Sequence[int],
    notification_ids: Sequence[int],
) -> tuple[list[MessageRecord], list[NotificationRecord]]:
    """The messages (that ``user_id`` may see) and notifications (its own) with these ids,
    each in ascending id order; primary-key lookups, one page of a replay."""
    msgs: list[MessageRecord] = []
    if message_ids:
        marks = ", ".join("?" * len(message_ids))
        msgs = [
            row_to_message(r)
            for r in conn.execute(
                f"SELECT {_MSG_COLS} FROM messages WHERE id IN ({marks}) AND ({_VISIBLE})"
                " ORDER BY id",
                (*message_ids, user_id, user_id, user_id),
            )
        ]
    notes: list[NotificationRecord] = []
    if notification_ids:
        marks = ", ".join("?" * len(notification_ids))
        notes = [
            NotificationRecord(
                id=int(r[0]), user_id=user_id, subtype=str(r[1]), message=str(r[2]),
                payload=json.loads(r[3]), created_at=str(r[4]),
            )
            for r in conn.execute(
                "SELECT id, subtype, message, payload, created_at FROM notifications"
                f" WHERE id IN ({marks}) AND user_id = ? ORDER BY id",
                (*notification_ids, user_id),
            )
        ]
    return msgs, notes


def find_by_client_id(
    conn: sqlite3.Connection, sender_id: int, client_id: str
) -> MessageRecord | None:
    """The message ``sender_id`` sent with ``client_id``, if stored."""
    row = conn.execute(
        f"SELECT {_MSG_COLS} FROM messages WHERE sender_id = ? AND client_id = ?",
        (sender_id, client_id),
    ).fetchone()
    return None if row is None else row_to_message(row)
