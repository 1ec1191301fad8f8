"""``conversations.wrote``: 1 when ``user_id`` has sent ``peer_id`` a private message.

Presence events go only to peers of a conversation in which both sides have written, so an
unsolicited message never subscribes a stranger to someone's online status. The trigger of
m0002 is replaced by one that also sets ``wrote`` on the sender's row; existing rows are
backfilled from the stored messages (one pass over them).
"""

from __future__ import annotations

from typing import Any

STATEMENTS = [
    "ALTER TABLE conversations ADD COLUMN wrote INTEGER NOT NULL DEFAULT 0",
    """
    UPDATE conversations SET wrote = 1 WHERE (user_id, peer_id) IN (
        SELECT DISTINCT sender_id, recipient_id FROM messages
        WHERE kind = 'private' AND recipient_id IS NOT NULL
    )
    """,
    "DROP TRIGGER conversations_on_private",
    # the sender's row: the latest message id, and `wrote` (even for a message older than
    # the latest, as a retried batch may be); then the recipient's row, as m0002 kept it
    """
    CREATE TRIGGER conversations_on_private AFTER INSERT ON messages
    WHEN NEW.kind = 'private' BEGIN
        INSERT INTO conversations (user_id, peer_id, last_message_id, wrote)
            VALUES (NEW.sender_id, NEW.recipient_id, NEW.id, 1)
            ON CONFLICT (user_id, peer_id) DO UPDATE
            SET last_message_id = max(conversations.last_message_id,
                                      excluded.last_message_id),
                wrote = 1
            WHERE excluded.last_message_id > conversations.last_message_id
                OR conversations.wrote = 0;
        INSERT INTO conversations (user_id, peer_id, last_message_id, wrote)
            VALUES (NEW.recipient_id, NEW.sender_id, NEW.id, 0)
            ON CONFLICT (user_id, peer_id) DO UPDATE
            SET last_message_id = excluded.last_message_id
            WHERE excluded.last_message_id > conversations.last_message_id;
    END
    """,
]


def migrate(db: Any) -> None:
    # one statement at a time (executescript would commit), so the migration stays atomic
    for statement in STATEMENTS:
        db.execute(statement)
