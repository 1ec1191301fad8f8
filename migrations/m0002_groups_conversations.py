"""Groups and conversations for the HTTP API.

- ``group_members.accepted_at``: when a member accepted (owner hand-over picks the
  longest-standing accepted member); backfilled from ``created_at`` for accepted rows.
- ``conversations``: one row per user and peer of a private conversation, with the id of the
  latest message between them, kept by a trigger on ``messages`` so the conversation list and
  presence fan-out never scan message history. Backfilled from the existing messages.
"""

from __future__ import annotations

from typing import Any

_UPSERT = """
    INSERT INTO conversations (user_id, peer_id, last_message_id)
        VALUES ({user}, {peer}, NEW.id)
        ON CONFLICT (user_id, peer_id) DO UPDATE
        SET last_message_id = excluded.last_message_id
        WHERE excluded.last_message_id > conversations.last_message_id;
"""

STATEMENTS = [
    "ALTER TABLE group_members ADD COLUMN accepted_at TEXT",
    "UPDATE group_members SET accepted_at = created_at WHERE status = 'accepted'",
    "CREATE INDEX group_members_by_group ON group_members(group_id, status, accepted_at)",
    """
    CREATE TABLE conversations (
        user_id INTEGER NOT NULL,
        peer_id INTEGER NOT NULL,
        last_message_id INTEGER NOT NULL,
        PRIMARY KEY (user_id, peer_id)
    )
    """,
    "CREATE INDEX conversations_by_recency ON conversations(user_id, last_message_id)",
    """
    INSERT INTO conversations (user_id, peer_id, last_message_id)
        SELECT peer_lo, peer_hi, max(id) FROM messages
        WHERE kind = 'private' GROUP BY peer_lo, peer_hi
    """,
    """
    INSERT OR IGNORE INTO conversations (user_id, peer_id, last_message_id)
        SELECT peer_hi, peer_lo, max(id) FROM messages
        WHERE kind = 'private' GROUP BY peer_lo, peer_hi
    """,
    "CREATE TRIGGER conversations_on_private AFTER INSERT ON messages"
    " WHEN NEW.kind = 'private' BEGIN"
    + _UPSERT.format(user="NEW.peer_lo", peer="NEW.peer_hi")
    + _UPSERT.format(user="NEW.peer_hi", peer="NEW.peer_lo")
    + " END",
]


def migrate(db: Any) -> None:
    # one statement at a time (executescript would commit), so the migration stays atomic
    for statement in STATEMENTS:
        db.execute(statement)
