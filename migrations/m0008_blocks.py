"""Blocking: who blocks whom. One row per (blocker, blocked); ``blocks_by_blocked`` finds who
blocks a user (a block works both ways: neither may write to the other). See
trionet/store/blocks.py.
"""

from __future__ import annotations

from typing import Any

STATEMENTS = [
    """
    CREATE TABLE blocks (
        blocker_id INTEGER NOT NULL,
        blocked_id INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (blocker_id, blocked_id)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX blocks_by_blocked ON blocks(blocked_id, blocker_id)",
]


def migrate(db: Any) -> None:
    for statement in STATEMENTS:
        db.execute(statement)
