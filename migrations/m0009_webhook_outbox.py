"""Webhooks: events for the backend wait here until it has taken them (at least once).

``id`` is the event's id (from the message id sequence: the deduplication key the backend
sees); ``next_at`` (Unix seconds) is when it is due: a sender claims due rows by pushing it
forward (a lease), and on a failure sets it to the retry time. ``message_id`` is the message a
``message.offline`` event carries: deleting, erasing or expiring the message deletes the event
too, so its content does not outlive it here. See trionet/store/outbox.py.
"""

from __future__ import annotations

from typing import Any

STATEMENTS = [
    """
    CREATE TABLE webhook_outbox (
        id INTEGER PRIMARY KEY,
        body TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at REAL NOT NULL,
        message_id INTEGER
    )
    """,
    "CREATE INDEX webhook_outbox_due ON webhook_outbox(next_at)",
    "CREATE INDEX webhook_outbox_by_message ON webhook_outbox(message_id)"
    " WHERE message_id IS NOT NULL",
]


def migrate(db: Any) -> None:
    for statement in STATEMENTS:
        db.execute(statement)
