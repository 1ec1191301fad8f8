"""Resume reads a user's private messages through the conversation list.

The indexes of messages by recipient and by sender served only the replay plan; each stored
private message dirtied a page of each of them (two more scattered pages per message, about
half the cost of a commit in batches of 50 conversations). The plan now walks
``conversations_by_recency`` and ``messages_by_pair`` (see trionet/store/sqlite/messages.py,
``_REPLAY_PRIVATE``); every private message has had its two conversation rows since m0002.
"""

from __future__ import annotations

from typing import Any

STATEMENTS = [
    "DROP INDEX IF EXISTS messages_to_user",
    "DROP INDEX IF EXISTS messages_from_user",
]


def migrate(db: Any) -> None:
    for statement in STATEMENTS:
        db.execute(statement)
