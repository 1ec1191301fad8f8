"""Applies the PostgreSQL migrations (``migrations/postgres/NNNN_name.sql``, in name order).

Each applied file is recorded in ``trionet_migrations``. One run is one transaction that
first takes a transaction-level advisory lock, so processes starting together (several
workers, hosts, or ``trionet migrate`` beside a starting server) apply each file once, one
after the other, and a file that fails leaves none of its run behind.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
from psycopg.rows import TupleRow

from ...core.clock import now_iso

__all__ = [
    "MIGRATIONS_TABLE",
    "apply_migrations",
    "migration_files",
    "migrations_dir",
    "pending_migrations",
]

#: where applied migrations are recorded (name, applied_at)
MIGRATIONS_TABLE = "trionet_migrations"
#: the advisory lock a migration run holds (two int4 keys: "trnt", 1)
MIGRATION_LOCK = (0x74726E74, 1)


def migrations_dir() -> Path:
    """The folder of PostgreSQL migration files: inside the installed wheel (the
    ``migrations`` folder is force-included as ``trionet/_migrations``), or the checkout's."""
    packaged = Path(__file__).resolve().parents[2] / "_migrations" / "postgres"
    if packaged.is_dir():
        return packaged
    source = Path(__file__).resolve().parents[3] / "migrations" / "postgres"
    if source.is_dir():
        return source
    raise RuntimeError("trionet's PostgreSQL migrations are missing from this installation")


def migration_files() -> list[Path]:
    """Every migration file, in the order they apply."""
    return sorted(migrations_dir().glob("[0-9]*.sql"))


def _ensure_table(conn: psycopg.Connection[TupleRow]) -> None:
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE}"
        " (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
    )


def _applied(conn: psycopg.Connection[TupleRow]) -> set[str]:
    return {str(r[0]) for r in conn.execute(f"SELECT name FROM {MIGRATIONS_TABLE}")}


def pending_migrations(conn: psycopg.Connection[TupleRow]) -> list[str]:
    """Names of the migrations not yet applied (all of them on an empty database)."""
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (MIGRATIONS_TABLE,)).fetchone()
    done = _applied(conn) if exists and exists[0] else set()
    return [p.stem for p in migration_files() if p.stem not in done]


def apply_migrations(conn: psycopg.Connection[TupleRow]) -> list[str]:
    """Apply every pending migration in one transaction; returns their names (empty when up
    to date). ``conn`` must be idle (no transaction open)."""
    files = migration_files()
    applied: list[str] = []
    with conn.transaction():
        # waits for another migrator (bounded by the connection's lock_timeout)
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", MIGRATION_LOCK)
        _ensure_table(conn)
        done = _applied(conn)
        for path in files:
            if path.stem in done:
                continue
            conn.execute(path.read_text(encoding="utf-8"))  # several statements, no params
            conn.execute(
                f"INSERT INTO {MIGRATIONS_TABLE} (name, applied_at) VALUES (%s, %s)",
                (path.stem, now_iso()),
            )
            applied.append(path.stem)
    return applied
