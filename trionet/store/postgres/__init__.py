"""The PostgreSQL store: a pool of psycopg connections run in worker threads, migrations
from ``migrations/postgres/``, and the queries each part needs (install
``trionet[postgres]``)."""

from __future__ import annotations

from .database import Database
from .store import PostgresStore

__all__ = ["Database", "PostgresStore"]
