"""The ``trionet`` command: serve, migrate, manage users."""

from __future__ import annotations

import logging
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click
import trio

from .settings import Settings, SettingsError

if TYPE_CHECKING:
    from .storage import Database

__all__ = ["main"]


def _settings(**overrides: Any) -> Settings:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(f"configuration error: {exc}") from None
    return settings.replace(**{k: v for k, v in overrides.items() if v is not None})


@contextmanager
def _database(settings: Settings) -> Iterator[tuple[Database, list[str]]]:
    """The migrated database and the migrations applied just now; a database error is one
    clear line."""
    from .storage import Database

    db = Database(settings.database, synchronous=settings.db_synchronous)
    try:
        applied = db.migrate()
        yield db, applied
    except sqlite3.Error as exc:
        raise click.ClickException(f"database {settings.database}: {exc}") from None
    finally:
        db.close()


@click.group()
@click.version_option(package_name="trionet")
def main() -> None:
    """trionet: real-time messaging server for social-network backends."""


@main.command()
@click.option("--host", help="Address to bind (TRIONET_HOST).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port to bind (TRIONET_PORT).")
@click.option("--db", "database", help="SQLite database file (TRIONET_DATABASE).")
def serve(host: str | None, port: int | None, database: str | None) -> None:
    """Run the server in this process until SIGINT or SIGTERM."""
    settings = _settings(host=host, port=port, database=database)
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from .app import create_app
    from .server import serve as run_server

    with _database(settings):
        pass  # a database that cannot be opened is one line here, not a failed start-up
    app = create_app(settings)

    async def main_task() -> None:
        await run_server(app, settings)

    try:
        trio.run(main_task)
    except OSError as exc:
        raise click.ClickException(f"cannot serve on {settings.host}:{settings.port}: {exc}") \
            from None


@main.command()
@click.option("--db", "database", help="SQLite database file (TRIONET_DATABASE).")
def migrate(database: str | None) -> None:
    """Apply pending database migrations (running it twice changes nothing)."""
    with _database(_settings(database=database)) as (_db, applied):
        pass
    if applied:
        click.echo(f"applied {len(applied)} migration(s): {', '.join(applied)}")
    else:
        click.echo("database is up to date")


@main.group()
def user() -> None:
    """Create and list users."""


@user.command("create")
@click.argument("username")
@click.option("--admin", is_flag=True, help="Make the user an admin (may broadcast).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--db", "database", help="SQLite database file (TRIONET_DATABASE).")
def user_create(username: str, admin: bool, password_stdin: bool, database: str | None) -> None:
    """Create USERNAME (password from a prompt, or --password-stdin)."""
    from argon2 import PasswordHasher

    from .storage import accounts

    settings = _settings(database=database)
    if not accounts.valid_username(username):
        raise click.ClickException(
            f"the username must be 1 to {accounts.USERNAME_MAX} letters, digits, '_', '.' or '-'"
        )
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not 8 <= len(password) <= 256:
        raise click.ClickException("the password must be at least 8 characters (at most 256)")
    hashed = PasswordHasher().hash(password)
    with _database(settings) as (db, _applied):
        try:
            user = db.write_sync(accounts.create_user, username, hashed, is_admin=admin)
        except accounts.UsernameTaken:
            raise click.ClickException(f"username {username!r} is taken") from None
    click.echo(f"created user {user['id']} {username}{' (admin)' if admin else ''}")


@user.command("list")
@click.option("--db", "database", help="SQLite database file (TRIONET_DATABASE).")
def user_list(database: str | None) -> None:
    """List every user: id, username, admin flag."""
    from .storage import accounts

    with _database(_settings(database=database)) as (db, _applied):
        rows = accounts.list_users(db.connect())
    for row in rows:
        click.echo(f"{row['id']}\t{row['username']}\t{'admin' if row['is_admin'] else ''}".rstrip())


