"""SQLite storage: connections, migrations and the queries each part needs."""

from __future__ import annotations

from .database import Database

__all__ = ["Database"]
