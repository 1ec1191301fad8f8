"""Messages of application-defined persisted types: ``messages.subtype`` names the type
(NULL for plain private and group messages) and ``content`` then holds its JSON payload."""

from __future__ import annotations

from typing import Any


def migrate(db: Any) -> None:
    db.execute("ALTER TABLE messages ADD COLUMN subtype TEXT")
