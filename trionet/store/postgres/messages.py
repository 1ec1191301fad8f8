"""Messages and notifications: batch inserts, history pages and the resume replay.

A batch is one ``INSERT ... SELECT FROM unnest(...)`` per table, both in one statement (a
data-modifying ``WITH``), so saving a batch is one round trip and one transaction however many
records it holds, and the statement text never changes (psycopg prepares it once per
connection). ``ON CONFLICT DO NOTHING`` skips ids already stored and a second message under
one (sender, ``client_id``), as the SQLite store's ``INSERT OR IGNORE`` does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ...interfaces import MessageRecord, NotificationRecord
from ..records import MESSAGE_COLUMNS, Duplicates, row_to_message
from .database import Conn
from .text import clean, clean_or_none

__all__ = [
    "MESSAGE_COLUMNS",
    "REPLAY_MESSAGES_SQL",
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


#: of two messages under one (sender, client_id) in a batch the first is kept, as in SQLite:
#: rows are inserted in the batch's order (WITH ORDINALITY ... ORDER BY n)
_INSERT_BATCH = """
WITH stored AS (
    INSERT INTO messages (id, kind, sender_id, recipient_id, group_id, peer_lo, peer_hi,
                          content, client_id, created_at, subtype)
    SELECT m.id, m.kind, m.sender_id, m.recipient_id, m.group_id, m.peer_lo, m.peer_hi,
           m.content, m.client_id, m.created_at, m.subtype
    FROM unnest(%(m_id)s::bigint[], %(m_kind)s::text[], %(m_sender)s::bigint[],
                %(m_recipient)s::bigint[], %(m_group)s::bigint[], %(m_lo)s::bigint[],
                %(m_hi)s::bigint[], %(m_content)s::text[], %(m_client)s::text[],
                %(m_created)s::text[], %(m_subtype)s::text[])
        WITH ORDINALITY AS m(id, kind, sender_id, recipient_id, group_id, peer_lo, peer_hi,
                             content, client_id, created_at, subtype, n)
    ORDER BY m.n
    ON CONFLICT DO NOTHING
    RETURNING id
), noted AS (
    INSERT INTO notifications (id, user_id, subtype, message, payload, created_at)
    SELECT * FROM unnest(%(n_id)s::bigint[], %(n_user)s::bigint[], %(n_subtype)s::text[],
                         %(n_message)s::text[], %(n_payload)s::text[], %(n_created)s::text[])
    ON CONFLICT DO NOTHING
)
SELECT count(*) FROM stored
"""


def _batch_params(messages: Sequence[MessageRecord],
                  notifications: Sequence[NotificationRecord]) -> dict[str, list[Any]]:
    return {
        "m_id": [m.id for m in messages],
        "m_kind": [m.kind for m in messages],
        "m_sender": [m.sender_id for m in messages],
        "m_recipient": [m.recipient_id for m in messages],
        "m_group": [m.group_id for m in messages],
        "m_lo": [None if m.recipient_id is None else min(m.sender_id, m.recipient_id)
                 for m in messages],
        "m_hi": [None if m.recipient_id is None else max(m.sender_id, m.recipient_id)
                 for m in messages],
        "m_content": [clean(m.content) for m in messages],
        "m_client": [clean_or_none(m.client_id) for m in messages],
        "m_created": [m.created_at for m in messages],
        "m_subtype": [clean_or_none(m.subtype) for m in messages],
        "n_id": [n.id for n in notifications],
        "n_user": [n.user_id for n in notifications],
        "n_subtype": [clean(n.subtype) for n in notifications],
        "n_message": [clean(n.message) for n in notifications],
        "n_payload": [json.dumps(dict(n.payload)) for n in notifications],
        "n_created": [n.created_at for n in notifications],
    }


def insert_batch(conn: Conn, messages: Sequence[MessageRecord],
                 notifications: Sequence[NotificationRecord]) -> Duplicates:
    """Insert records in one statement; ids already stored are skipped, so a retried batch
    never duplicates. A message whose (sender, ``client_id``) was stored before under
    another id is not stored again: it is returned with the stored message's id and time."""
    if not messages and not notifications:
        return {}
    row = conn.execute(_INSERT_BATCH, _batch_params(messages, notifications)).fetchone()
    stored = 0 if row is None else int(row[0])
    if stored < len(messages):  # some were already there
        return _stored_under_other_ids(conn, messages)
    return {}


def _stored_under_other_ids(conn: Conn, messages: Sequence[MessageRecord]) -> Duplicates:
    asked = [m for m in messages if m.client_id is not None]
    if not asked:
        return {}
    rows = conn.execute(
        "SELECT m.sender_id, m.client_id, m.id, m.created_at FROM messages m"
        " JOIN unnest(%s::bigint[], %s::text[]) AS q(sender_id, client_id)"
        "   ON m.sender_id = q.sender_id AND m.client_id = q.client_id",
        ([m.sender_id for m in asked], [clean(m.client_id or "") for m in asked]),
    )
    found = {(int(s), str(c)): (int(i), str(t)) for s, c, i, t in rows}
    duplicates: Duplicates = {}
    for m in asked:
        assert m.client_id is not None
        hit = found.get((m.sender_id, clean(m.client_id)))
        if hit is not None and hit[0] != m.id:
            duplicates[(m.sender_id, m.client_id)] = hit
    return duplicates


def _page(conn: Conn, where: str, params: list[object], limit: int, offset: int,
          before_id: int | None) -> list[MessageRecord]:
    if before_id is not None:
        where += " AND id < %s"
        params.append(before_id)
    sql = f"SELECT {_MSG_COLS} FROM messages WHERE {where} ORDER BY id DESC LIMIT %s OFFSET %s"
    return [row_to_message(r) for r in conn.execute(sql, [*params, limit, offset])]


def private_page(conn: Conn, user_a: int, user_b: int, *, limit: int, offset: int,
                 before_id: int | None) -> list[MessageRecord]:
    lo, hi = min(user_a, user_b), max(user_a, user_b)
    return _page(conn, "kind = 'private' AND peer_lo = %s AND peer_hi = %s", [lo, hi], limit,
                 offset, before_id)


def group_page(conn: Conn, group_id: int, *, limit: int, offset: int,
               before_id: int | None) -> list[MessageRecord]:
    return _page(conn, "kind = 'group' AND group_id = %s", [group_id], limit, offset, before_id)


#: the replay plan's message half. Each walk goes backwards along an index and stops after
#: limit + 1 ids. Private messages: the newest limit + 1 conversations changed after the
#: cursor (conversations_by_recency; the newest limit + 1 private messages lie in those, as
#: each of their last messages is newer than any message of a conversation left out, and when
#: there are limit + 1 of them none is older than the oldest of those last messages), then
#: messages_by_pair once per conversation from that floor (the rows read are at most the
#: user's private messages since the floor; the replay needs no index of messages by
#: recipient or by sender, each of which costs every stored message an entry). Group messages:
#: messages_by_group once per group the user is an accepted member of (a LATERAL per group:
#: PostgreSQL would otherwise walk the primary key, filtering). Sizes are read for the chosen
#: ids only.
REPLAY_MESSAGES_SQL = """
SELECT id, octet_length(content) FROM messages WHERE id IN (
    SELECT id FROM (
        (SELECT p.id FROM (
            SELECT peer_id, min(last_message_id) OVER () AS oldest, count(*) OVER () AS found
            FROM (SELECT peer_id, last_message_id FROM conversations
                WHERE user_id = %(user)s AND last_message_id > %(since)s
                ORDER BY last_message_id DESC LIMIT %(n)s) AS top) AS c
            CROSS JOIN LATERAL (
                SELECT id FROM messages
                WHERE kind = 'private' AND peer_lo = least(%(user)s, c.peer_id)
                    AND peer_hi = greatest(%(user)s, c.peer_id)
                    AND id > CASE WHEN c.found = %(n)s THEN greatest(%(since)s, c.oldest - 1)
                                  ELSE %(since)s END
                ORDER BY id DESC LIMIT %(n)s) AS p
            ORDER BY p.id DESC LIMIT %(n)s)
        UNION
        (SELECT g.id FROM group_members gm
            CROSS JOIN LATERAL (
                SELECT id FROM messages
                WHERE kind = 'group' AND group_id = gm.group_id AND id > %(since)s
                ORDER BY id DESC LIMIT %(n)s) AS g
            WHERE gm.user_id = %(user)s AND gm.status = 'accepted'
            ORDER BY g.id DESC LIMIT %(n)s)
    ) AS newest ORDER BY id DESC LIMIT %(n)s
) ORDER BY id DESC
"""

#: the replay plan's notification half (notifications_by_user, backwards)
REPLAY_NOTIFICATIONS_SQL = (
    "SELECT id, octet_length(message) + octet_length(payload) FROM notifications"
    " WHERE user_id = %s AND id > %s ORDER BY id DESC LIMIT %s"
)

#: the messages a user may see: private to or from it, of groups it is an accepted member of
_VISIBLE = ("(kind = 'private' AND (recipient_id = %(user)s OR sender_id = %(user)s))"
            " OR (kind = 'group' AND group_id IN (SELECT group_id FROM group_members"
            " WHERE user_id = %(user)s AND status = 'accepted'))")


def replay_sizes(conn: Conn, user_id: int, *, since: int, since_notification: int | None,
                 limit: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """``(id, bytes stored)`` of the newest ``limit`` + 1 messages addressed to ``user_id``
    after ``since`` and of its notifications after ``since_notification``, each newest
    first. No content is returned."""
    n = limit + 1
    msgs = [(int(i), int(s)) for i, s in
            conn.execute(REPLAY_MESSAGES_SQL, {"user": user_id, "since": since, "n": n})]
    notes: list[tuple[int, int]] = []
    if since_notification is not None:
        notes = [(int(i), int(s)) for i, s in
                 conn.execute(REPLAY_NOTIFICATIONS_SQL, (user_id, since_notification, n))]
    return msgs, notes


def replay_page(conn: Conn, user_id: int, message_ids: Sequence[int],
                notification_ids: Sequence[int]
                ) -> tuple[list[MessageRecord], list[NotificationRecord]]:
    """The messages (that ``user_id`` may see) and notifications (its own) with these ids,
    each in ascending id order (primary-key look-ups)."""
    msgs: list[MessageRecord] = []
    if message_ids:
        msgs = [
            row_to_message(r)
            for r in conn.execute(
                f"SELECT {_MSG_COLS} FROM messages WHERE id = ANY(%(ids)s::bigint[])"
                f" AND ({_VISIBLE}) ORDER BY id",
                {"ids": list(message_ids), "user": user_id},
            )
        ]
    notes: list[NotificationRecord] = []
    if notification_ids:
        notes = [
            NotificationRecord(
                id=int(r[0]), user_id=user_id, subtype=str(r[1]), message=str(r[2]),
                payload=json.loads(r[3]), created_at=str(r[4]),
            )
            for r in conn.execute(
                "SELECT id, subtype, message, payload, created_at FROM notifications"
                " WHERE id = ANY(%s::bigint[]) AND user_id = %s ORDER BY id",
                (list(notification_ids), user_id),
            )
        ]
    return msgs, notes


def find_by_client_id(conn: Conn, sender_id: int, client_id: str) -> MessageRecord | None:
    """The message ``sender_id`` sent with ``client_id``, if stored."""
    row = conn.execute(
        f"SELECT {_MSG_COLS} FROM messages WHERE sender_id = %s AND client_id = %s",
        (sender_id, clean(client_id)),
    ).fetchone()
    return None if row is None else row_to_message(row)


def max_id(conn: Conn) -> int:
    """The highest message or notification id stored (0 when none)."""
    row = conn.execute(
        "SELECT greatest((SELECT max(id) FROM messages), (SELECT max(id) FROM notifications), 0)"
    ).fetchone()
    return 0 if row is None else int(row[0])
