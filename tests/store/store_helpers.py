"""Records, shortcuts and PostgreSQL test databases for the Store conformance suite (see
conftest.py for how the databases are made)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import TupleRow

from trionet.interfaces import MessageRecord, NotificationRecord
from trionet.store import Store

#: every test's bound, seconds (PostgreSQL calls are network round trips in threads)
TIMEOUT = 15


def at(n: int) -> str:
    """A distinct ISO timestamp per ``n``, in order (as the server writes them)."""
    return f"2026-01-02T03:{n // 60000 % 60:02d}:{n // 1000 % 60:02d}.{n % 1000:03d}Z"


def private(id_: int, sender: int, to: int, content: str = "hi", *,
            client_id: str | None = None, subtype: str | None = None) -> MessageRecord:
    return MessageRecord(id=id_, kind="private", sender_id=sender, recipient_id=to,
                         content=content, created_at=at(id_), client_id=client_id,
                         subtype=subtype)


def in_group(id_: int, sender: int, group: int, content: str = "hi", *,
             client_id: str | None = None) -> MessageRecord:
    return MessageRecord(id=id_, kind="group", sender_id=sender, group_id=group,
                         content=content, created_at=at(id_), client_id=client_id)


def note(id_: int, user: int, subtype: str = "test", message: str = "m",
         payload: Mapping[str, Any] | None = None) -> NotificationRecord:
    return NotificationRecord(id=id_, user_id=user, subtype=subtype, message=message,
                              created_at=at(id_), payload=dict(payload or {}))


def invite_note(id_: int, user: int, group: int) -> NotificationRecord:
    """The notification the HTTP API sends with an invite."""
    return note(id_, user, "group_invite", f"You were invited to join group {group}",
                {"group_id": group, "group_name": f"g{group}", "invited_by": 1})


async def make_users(store: Store, *names: str) -> list[int]:
    return [(await store.create_user(name, None)).id for name in names]


async def ids_of_page(store: Store, user: int, **kw: Any) -> list[int]:
    return [n["id"] for n in await store.notification_page(user, **{"limit": 100, "offset": 0,
                                                                   **kw})]


# -- PostgreSQL test databases -----------------------------------------------------------

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
#: every table the store keeps (emptied between tests; trionet_migrations is kept)
TABLES = ("users", "sessions", "groups", "group_members", "messages", "notifications",
          "conversations", "read_markers", "blocks", "webhook_outbox")


def admin_url() -> str:
    return os.environ.get("TRIONET_TEST_POSTGRES", DEFAULT_ADMIN_URL)


def database_url(name: str) -> str:
    """The admin URL with its database replaced by ``name``."""
    parts = urlsplit(admin_url())
    if parts.scheme not in ("postgresql", "postgres"):
        raise pytest.UsageError("TRIONET_TEST_POSTGRES must be a postgresql:// URL")
    return urlunsplit(parts._replace(path="/" + name))


def admin_connection() -> psycopg.Connection[TupleRow]:
    try:
        return psycopg.connect(admin_url(), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at TRIONET_TEST_POSTGRES={admin_url()!r}: {exc}"
            "\n(start it, or point TRIONET_TEST_POSTGRES at a server whose role may CREATE"
            " DATABASE; these tests are never skipped)",
            pytrace=False,
        )


def create_database(prefix: str = "trionet_test") -> str:
    name = f"{prefix}_{secrets.token_hex(6)}"
    with admin_connection() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} ENCODING 'UTF8' TEMPLATE template0")
                     .format(sql.Identifier(name)))
    return name


def drop_database(name: str) -> None:
    with admin_connection() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                     .format(sql.Identifier(name)))


def empty_tables(url: str) -> None:
    """Empty every table of a migrated test database (a test starts clean)."""
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
            sql.SQL(", ").join(sql.Identifier(t) for t in TABLES)))
