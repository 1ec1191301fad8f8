"""The ``trionet`` command: serve, migrate, manage users."""

from __future__ import annotations

import logging
import sqlite3
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click
import trio

from .core.errors import StoreUnavailable
from .settings import Settings, SettingsError

if TYPE_CHECKING:
    from .store import Store, UserRecord

__all__ = ["main"]

_DB_HELP = "Database: a SQLite file or a postgresql:// URL (TRIONET_DATABASE)."

T = TypeVar("T")


def _settings(**overrides: Any) -> Settings:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(f"configuration error: {exc}") from None
    return settings.replace(**{k: v for k, v in overrides.items() if v is not None})


def _with_store(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> tuple[T, list[str]]:
    """Open and migrate the store, run ``work`` on it, close it; returns what ``work``
    returned and the migrations applied just now. A store that cannot be used is one line."""
    from .store import open_store

    async def run() -> tuple[T, list[str]]:
        store = open_store(settings.database, synchronous=settings.db_synchronous)
        try:
            applied = await store.migrate()
            return await work(store), applied
        finally:
            await store.aclose()

    try:
        return trio.run(run)
    except (StoreUnavailable, RuntimeError, sqlite3.Error) as exc:
        cause = exc.__cause__ if isinstance(exc, StoreUnavailable) and exc.__cause__ else exc
        raise click.ClickException(f"database {settings.database}: {cause}") from None


async def _nothing(_store: Store) -> None:
    return None


@click.group()
@click.version_option(package_name="trionet")
def main() -> None:
    """trionet: real-time messaging server for social-network backends."""


@main.command()
@click.option("--host", help="Address to bind (TRIONET_HOST).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port to bind (TRIONET_PORT).")
@click.option("--db", "database", help=_DB_HELP)
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes sharing the port, each a node of the Redis backplane"
                   " (more than 1 needs TRIONET_REDIS_URL).")
@click.option("--worker-of", "supervisor", type=int, hidden=True,
              help="Serve as one of --workers N, started by the supervisor of this pid.")
def serve(host: str | None, port: int | None, database: str | None, workers: int,
          supervisor: int | None) -> None:
    """Run the server until SIGINT or SIGTERM: in this process, or in --workers N."""
    settings = _settings(host=host, port=port, database=database)
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from .app import create_app
    from .server import serve as run_server

    if workers > 1 and not settings.redis_url:
        raise click.ClickException(
            "configuration error: TRIONET_REDIS_URL: --workers N needs the Redis backplane"
            " (set TRIONET_REDIS_URL=redis://host:port/db): workers are separate processes")
    if supervisor is None:  # (the supervisor migrated already)
        _with_store(settings, _nothing)  # an unusable database is one line, not a failed start
    if workers > 1:
        from .supervisor import supervise

        try:
            code = trio.run(supervise, settings, workers)
        except OSError as exc:
            raise click.ClickException(
                f"cannot serve on {settings.host}:{settings.port}: {exc}") from None
        sys.exit(code)
    try:
        app = create_app(settings)
    except SettingsError as exc:  # e.g. a hypercorn without what trionet patches or reaches
        raise click.ClickException(f"configuration error: {exc}") from None

    async def main_task() -> None:
        if supervisor is None:
            await run_server(app, settings)
            return
        from .supervisor import stop_signal_or_orphaned

        await run_server(app, settings, reuse_port=True,
                         shutdown_trigger=lambda: stop_signal_or_orphaned(supervisor))

    try:
        trio.run(main_task)
    except OSError as exc:
        raise click.ClickException(f"cannot serve on {settings.host}:{settings.port}: {exc}") \
            from None


@main.command()
@click.option("--db", "database", help=_DB_HELP)
def migrate(database: str | None) -> None:
    """Apply pending database migrations (running it twice changes nothing)."""
    _none, applied = _with_store(_settings(database=database), _nothing)
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
@click.option("--db", "database", help=_DB_HELP)
def user_create(username: str, admin: bool, password_stdin: bool, database: str | None) -> None:
    """Create USERNAME (password from a prompt, or --password-stdin)."""
    from argon2 import PasswordHasher

    from .core.names import USERNAME_MAX, valid_username
    from .store import UsernameTaken

    settings = _settings(database=database)
    if not valid_username(username):
        raise click.ClickException(
            f"the username must be 1 to {USERNAME_MAX} letters, digits, '_', '.' or '-'"
        )
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not 8 <= len(password) <= 256:
        raise click.ClickException("the password must be at least 8 characters (at most 256)")
    hashed = PasswordHasher().hash(password)
    async def create(store: Store) -> UserRecord | None:
        try:
            return await store.create_user(username, hashed, is_admin=admin)
        except UsernameTaken:
            return None

    user, _applied = _with_store(settings, create)
    if user is None:
        raise click.ClickException(f"username {username!r} is taken")
    click.echo(f"created user {user.id} {username}{' (admin)' if admin else ''}")


@user.command("list")
@click.option("--db", "database", help=_DB_HELP)
def user_list(database: str | None) -> None:
    """List every user: id, username, admin flag."""
    async def listed(store: Store) -> list[UserRecord]:
        return await store.list_users()

    users, _applied = _with_store(_settings(database=database), listed)
    for u in users:
        click.echo(f"{u.id}\t{u.username}\t{'admin' if u.is_admin else ''}".rstrip())


