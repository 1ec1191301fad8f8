"""Edit and delete: when a message was last edited, when it was deleted (its content is then
erased), and the id of its last change (``change_id``, from the message id sequence), so a
resume finds the messages changed after its cursor (``messages_changed``: only changed
messages are in it). See trionet/store/changes.py.
"""

from __future__ import annotations

from typing import Any

STATEMENTS = [
    "ALTER TABLE messages ADD COLUMN edited_at TEXT",
    "ALTER TABLE messages ADD COLUMN deleted_at TEXT",
    "ALTER TABLE messages ADD COLUMN change_id INTEGER",
    "CREATE INDEX messages_changed ON messages(change_id) WHERE change_id IS NOT NULL",
]


def migrate(db: Any) -> None:
    for statement in STATEMENTS:
        db.execute(statement)
