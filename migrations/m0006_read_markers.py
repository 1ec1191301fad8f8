"""Read markers: how far each user has read each private conversation and group.

One row per user and conversation (``kind`` "private" with the peer as ``target_id``, or
"group" with the group); ``event_id`` is an id of the message sequence, allocated when the
marker last moved, so a resume finds the markers that moved after its cursor: the user's own
(``read_markers_by_event``) and the peers' in the user's private conversations
(``read_markers_by_peer``). See trionet/store/sqlite/receipts.py.
"""

from __future__ import annotations

from typing import Any

STATEMENTS = [
    """
    CREATE TABLE read_markers (
        user_id INTEGER NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('private', 'group')),
        target_id INTEGER NOT NULL,
        last_read_id INTEGER NOT NULL,
        event_id INTEGER NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (user_id, kind, target_id)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX read_markers_by_event ON read_markers(user_id, event_id)",
    "CREATE INDEX read_markers_by_peer ON read_markers(target_id, event_id)"
    " WHERE kind = 'private'",
]


def migrate(db: Any) -> None:
    for statement in STATEMENTS:
        db.execute(statement)
