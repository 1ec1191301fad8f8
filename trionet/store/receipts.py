"""Read markers and unread counts: plain functions, the same SQL on both stores.

Each function takes a DB-API connection whose ``execute`` takes ``?`` placeholders: SQLite's
own, or PostgreSQL's through :class:`QmarkConnection` (the tables, columns and indexes are the
same on both: migrations m0006 and postgres/0002). Run them off the event loop, writes in
one transaction (each store's ``write``).

A marker is one row per user and conversation in ``read_markers``; it only moves forward
(the upsert's ``WHERE``), and each move takes a new ``event_id`` from the message id sequence.
Unread messages are the other side's messages above the user's marker, deleted ones aside,
counted on the indexes every history page walks (``messages_by_pair``, ``messages_by_group``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Protocol

from ..interfaces import MessageRecord
from .records import (
    MESSAGE_COLUMNS,
    Conversation,
    NotInConversation,
    ReadMarker,
    ReadState,
    row_to_message,
)

__all__ = [
    "UNREAD_CAP",
    "QmarkConnection",
    "group_read_states",
    "latest_in_groups",
    "mark_read",
    "markers_since",
    "with_read_states",
]


class _Connection(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Any: ...


class QmarkConnection:
    """A psycopg connection that takes ``?`` placeholders (none of these queries holds a
    literal question mark or percent sign)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> Any:
        return self._conn.execute(sql.replace("?", "%s"), params)


_IN_PRIVATE = ("SELECT 1 FROM messages WHERE id = ? AND kind = 'private'"
               " AND peer_lo = ? AND peer_hi = ?")
_IN_GROUP = "SELECT 1 FROM messages WHERE id = ? AND kind = 'group' AND group_id = ?"
#: unread messages are counted up to this many (a count at it means "this many or more"), so
#: a conversation never read costs a bounded walk of its index
UNREAD_CAP = 1000
_UNREAD_PRIVATE = ("SELECT count(*) FROM (SELECT 1 FROM messages WHERE kind = 'private'"
                   " AND peer_lo = ? AND peer_hi = ? AND id > ? AND sender_id = ?"
                   f" AND deleted_at IS NULL LIMIT {UNREAD_CAP}) AS unread")
_UNREAD_GROUP = ("SELECT count(*) FROM (SELECT 1 FROM messages WHERE kind = 'group'"
                 " AND group_id = ? AND id > ? AND sender_id != ? AND deleted_at IS NULL"
                 f" LIMIT {UNREAD_CAP}) AS unread")
#: most ids in one ``IN (...)`` list
_IN_CHUNK = 500
_MARKER = ("SELECT last_read_id FROM read_markers WHERE user_id = ? AND kind = ?"
           " AND target_id = ?")
_MOVE = (
    "INSERT INTO read_markers (user_id, kind, target_id, last_read_id, event_id, updated_at)"
    " VALUES (?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (user_id, kind, target_id) DO UPDATE SET"
    " last_read_id = excluded.last_read_id, event_id = excluded.event_id,"
    " updated_at = excluded.updated_at"
    " WHERE excluded.last_read_id > read_markers.last_read_id"
)
_COLUMNS = "user_id, kind, target_id, last_read_id, event_id, updated_at"


def _pair(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a <= b else (b, a)


def _one(conn: _Connection, sql: str, params: Sequence[Any]) -> Any:
    row = conn.execute(sql, params).fetchone()
    return None if row is None else row[0]


def _unread(conn: _Connection, user_id: int, kind: str, target_id: int, after: int) -> int:
    if kind == "private":
        lo, hi = _pair(user_id, target_id)
        if lo == hi:
            return 0  # notes to oneself: nothing in them is someone else's
        return int(_one(conn, _UNREAD_PRIVATE, (lo, hi, after, target_id)))
    return int(_one(conn, _UNREAD_GROUP, (target_id, after, user_id)))


def _marker(conn: _Connection, user_id: int, kind: str, target_id: int) -> int | None:
    found = _one(conn, _MARKER, (user_id, kind, target_id))
    return None if found is None else int(found)


def mark_read(conn: _Connection, user_id: int, kind: str, target_id: int, up_to: int,
              event_id: int, at: str) -> ReadState:
    """Move the user's marker in a conversation (``kind`` "private" with the peer's id, or
    "group") to ``up_to``, unless it is there or further already. Raises
    :class:`NotInConversation` when ``up_to`` is not a message of that conversation."""
    if kind == "private":
        found = _one(conn, _IN_PRIVATE, (up_to, *_pair(user_id, target_id)))
    else:
        found = _one(conn, _IN_GROUP, (up_to, target_id))
    if found is None:
        raise NotInConversation(f"message {up_to} is not in this conversation")
    moved = conn.execute(_MOVE, (user_id, kind, target_id, up_to, event_id, at)).rowcount == 1
    last = _marker(conn, user_id, kind, target_id)
    assert last is not None
    return ReadState(last, _unread(conn, user_id, kind, target_id, last), moved)


def _markers_of(conn: _Connection, user_id: int, kind: str,
                targets: Sequence[int]) -> dict[int, int]:
    """The user's markers in these conversations (one query), by target."""
    found: dict[int, int] = {}
    for start in range(0, len(targets), _IN_CHUNK):
        chunk = targets[start:start + _IN_CHUNK]
        marks = ", ".join("?" * len(chunk))
        rows = conn.execute(
            "SELECT target_id, last_read_id FROM read_markers WHERE user_id = ? AND kind = ?"
            f" AND target_id IN ({marks})", (user_id, kind, *chunk)).fetchall()
        found.update((int(r[0]), int(r[1])) for r in rows)
    return found


def with_read_states(conn: _Connection, user_id: int,
                     page: Sequence[Conversation]) -> list[Conversation]:
    """A page of the user's private conversations with both markers and the unread count."""
    peers = [c.peer_id for c in page]
    mine = _markers_of(conn, user_id, "private", peers)
    theirs: dict[int, int] = {}
    if peers:
        marks = ", ".join("?" * len(peers))
        theirs = {int(r[0]): int(r[1]) for r in conn.execute(
            "SELECT user_id, last_read_id FROM read_markers WHERE kind = 'private'"
            f" AND target_id = ? AND user_id IN ({marks})", (user_id, *peers)).fetchall()}
    return [dataclasses.replace(
        conv, last_read_id=mine.get(conv.peer_id), peer_read_id=theirs.get(conv.peer_id),
        unread_count=_unread(conn, user_id, "private", conv.peer_id, mine.get(conv.peer_id, 0)))
        for conv in page]


def group_read_states(conn: _Connection, user_id: int,
                      group_ids: Sequence[int]) -> dict[int, tuple[int | None, int]]:
    """Per group: (the user's marker, the others' messages above it)."""
    mine = _markers_of(conn, user_id, "group", group_ids)
    return {gid: (mine.get(gid), _unread(conn, user_id, "group", gid, mine.get(gid, 0)))
            for gid in group_ids}


def markers_since(conn: _Connection, user_id: int, since: int, limit: int) -> list[ReadMarker]:
    """The markers that moved after ``since`` which the user's connections show: the user's
    own, and the peers' in the user's private conversations; the newest ``limit``, oldest
    first."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM ("
        f" SELECT {_COLUMNS} FROM read_markers WHERE user_id = ? AND event_id > ?"
        " UNION ALL"
        f" SELECT {_COLUMNS} FROM read_markers WHERE kind = 'private' AND target_id = ?"
        " AND event_id > ? AND user_id != ?"
        ") AS moved ORDER BY event_id DESC LIMIT ?",
        (user_id, since, user_id, since, user_id, limit),
    ).fetchall()
    markers = [ReadMarker(reader_id=int(r[0]), kind=str(r[1]), target_id=int(r[2]),
                          up_to=int(r[3]), event_id=int(r[4]), updated_at=str(r[5]))
               for r in rows]
    markers.reverse()
    return markers


def latest_in_groups(conn: _Connection, group_ids: Sequence[int],
                     before_id: int | None) -> dict[int, MessageRecord]:
    """Each group's newest message (below ``before_id``, when given), by group; a group
    without one is left out. One query per chunk of groups, on ``messages_by_group``."""
    found: dict[int, MessageRecord] = {}
    below = "" if before_id is None else " AND id < ?"
    for start in range(0, len(group_ids), _IN_CHUNK):
        chunk = list(group_ids[start:start + _IN_CHUNK])
        marks = ", ".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT {', '.join(MESSAGE_COLUMNS)} FROM messages WHERE id IN"
            f" (SELECT max(id) FROM messages WHERE kind = 'group' AND group_id IN ({marks})"
            f"{below} GROUP BY group_id)",
            (*chunk, *(() if before_id is None else (before_id,)))).fetchall()
        for row in rows:
            record = row_to_message(tuple(row))
            assert record.group_id is not None
            found[record.group_id] = record
    return found
