"""The SQLite store: connections, migrations and the queries each part needs."""

from __future__ import annotations

from .database import Database
from .store import SqliteStore

__all__ = ["Database", "SqliteStore"]
