"""Loads the migration files and applies them with sqlite-utils ``Migrations``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import sqlite_utils
from sqlite_utils.migrations import Migrations

__all__ = ["apply_migrations", "migrations_dir", "pending_migrations"]

MIGRATION_SET = "trionet"


def migrations_dir() -> Path:
    """The folder of migration files: inside the installed wheel, or the source checkout's."""
    packaged = Path(__file__).resolve().parents[2] / "_migrations"
    if packaged.is_dir():
        return packaged
    source = Path(__file__).resolve().parents[3] / "migrations"
    if source.is_dir():
        return source
    raise RuntimeError("trionet's migrations are missing from this installation")


def _load() -> Migrations:
    migrations = Migrations(MIGRATION_SET)
    for path in sorted(migrations_dir().glob("m[0-9]*.py")):
        spec = importlib.util.spec_from_file_location(f"trionet_migration_{path.stem}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        migrations(name=path.stem)(module.migrate)
    return migrations


def pending_migrations(db: sqlite_utils.Database) -> list[str]:
    """Names of the migrations not yet applied to ``db``."""
    return [m.name for m in _load().pending(db)]


def apply_migrations(db: sqlite_utils.Database) -> list[str]:
    """Apply every pending migration; returns their names (empty when up to date).

    One transaction holding the database's write lock: processes starting together
    (several workers, or ``trionet migrate`` beside a starting server) apply each migration
    once, and when one fails none of this run's migrations is kept.
    """
    migrations = _load()
    db.conn.execute("BEGIN IMMEDIATE")  # waits for another migrator (busy timeout)
    try:
        pending = [m.name for m in migrations.pending(db)]
        migrations.apply(db)  # each migration in a savepoint of this transaction
    except BaseException:
        if db.conn.in_transaction:
            db.conn.execute("ROLLBACK")
        raise
    db.conn.execute("COMMIT")
    return pending
