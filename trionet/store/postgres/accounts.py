"""Users and sessions: plain functions over a psycopg connection (run them off the loop).

Writes run inside one :meth:`Database.write` transaction. Usernames compare ignoring ASCII
case (``trionet_nocase``, the unique index ``users_username``), as the SQLite store's
``COLLATE NOCASE`` does. A user inserted with an explicit id moves ``users_id_seq`` past it,
so a later insert without one never picks a taken id.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import psycopg

from ...core.clock import now_iso
from ..records import PasswordAccount, UsernameTaken, UserRecord
from .database import Conn
from .text import clean

__all__ = [
    "USER_COLUMNS",
    "advance_sequence",
    "create_session",
    "create_user",
    "delete_session",
    "delete_user_sessions",
    "ensure_user",
    "get_user",
    "get_user_by_name",
    "list_users",
    "row_to_user",
    "session_user",
    "set_username",
    "users_by_ids",
]

USER_COLUMNS = "id, username, is_admin, password_hash, created_at"
#: the advisory lock held while a sequence is moved past an explicit id ("trnt", 2)
SEQUENCE_LOCK = (0x74726E74, 2)
_SEQUENCES = {"users": "users_id_seq", "groups": "groups_id_seq"}


def row_to_user(row: tuple[Any, ...]) -> UserRecord:
    id_, username, is_admin, password_hash, created_at = row
    return UserRecord(id=int(id_), username=str(username), is_admin=bool(is_admin),
                      password_hash=None if password_hash is None else str(password_hash),
                      created_at=str(created_at))


def advance_sequence(conn: Conn, table: str, taken: int) -> None:
    """Move ``table``'s id sequence past ``taken`` (an id just inserted explicitly), never
    back: the next id it hands out is above every explicit one, as SQLite's rowids are.

    ``setval`` is not transactional, so the check and the move run under an advisory lock
    (held to the end of the transaction): two transactions never move it in the wrong order.
    """
    seq = _SEQUENCES[table]
    behind = f"SELECT %s >= last_value + is_called::int FROM {seq}"
    row = conn.execute(behind, (taken,)).fetchone()
    if row is None or not row[0]:
        return
    conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", SEQUENCE_LOCK)
    conn.execute(
        f"SELECT setval(%s::regclass, %s) FROM {seq} WHERE %s >= last_value + is_called::int",
        (seq, taken, taken),
    )


def insert_with_next_id(conn: Conn, table: str, columns: str, marks: str,
                        params: tuple[Any, ...]) -> int:
    """Insert a row taking the sequence's next id; returns the id. An id taken meanwhile
    (inserted explicitly by a transaction not yet committed when the sequence moved) is
    skipped: the insert is tried with the next one."""
    while True:
        row = conn.execute(
            f"INSERT INTO {table} ({columns}) VALUES ({marks})"
            " ON CONFLICT (id) DO NOTHING RETURNING id",
            params,
        ).fetchone()
        if row is not None:
            return int(row[0])


def create_user(conn: Conn, username: str, password_hash: str | None, *,
                is_admin: bool = False, user_id: int | None = None) -> UserRecord:
    """Insert a user; raises :class:`UsernameTaken` on a duplicate name (or id)."""
    now = now_iso()
    name = clean(username)
    is_admin = bool(is_admin)
    try:
        if user_id is None:
            new_id = insert_with_next_id(
                conn, "users", "username, password_hash, is_admin, created_at", "%s, %s, %s, %s",
                (name, password_hash, is_admin, now))
        else:
            conn.execute(
                "INSERT INTO users (id, username, password_hash, is_admin, created_at)"
                " VALUES (%s, %s, %s, %s, %s)",
                (user_id, name, password_hash, is_admin, now),
            )
            advance_sequence(conn, "users", user_id)
            new_id = user_id
    except psycopg.errors.UniqueViolation:
        raise UsernameTaken(username) from None
    return UserRecord(id=new_id, username=name, is_admin=is_admin,
                      password_hash=password_hash, created_at=now)


def get_user(conn: Conn, user_id: int) -> UserRecord | None:
    row = conn.execute(f"SELECT {USER_COLUMNS} FROM users WHERE id = %s", (user_id,)).fetchone()
    return None if row is None else row_to_user(row)


def get_user_by_name(conn: Conn, username: str) -> UserRecord | None:
    row = conn.execute(
        f"SELECT {USER_COLUMNS} FROM users WHERE trionet_nocase(username) = trionet_nocase(%s)",
        (clean(username),),
    ).fetchone()
    return None if row is None else row_to_user(row)


def users_by_ids(conn: Conn, ids: Iterable[int]) -> list[UserRecord]:
    id_list = list(dict.fromkeys(ids))
    if not id_list:
        return []
    rows = conn.execute(
        f"SELECT {USER_COLUMNS} FROM users WHERE id = ANY(%s::bigint[]) ORDER BY id", (id_list,)
    )
    return [row_to_user(r) for r in rows]


def list_users(conn: Conn) -> list[UserRecord]:
    return [row_to_user(r) for r in conn.execute(f"SELECT {USER_COLUMNS} FROM users ORDER BY id")]


def _name_taken(conn: Conn, name: str) -> bool:
    return conn.execute(
        "SELECT 1 FROM users WHERE trionet_nocase(username) = trionet_nocase(%s)", (name,)
    ).fetchone() is not None


def ensure_user(conn: Conn, user_id: int) -> bool:
    """Make sure backend user ``user_id`` (first seen in a JWT) has a row; False when the id
    belongs to an account with a password, which a JWT must never adopt.

    A new row is named ``user<id>``, or ``user<id>-2`` (-3...) when that name is taken. A row
    or a name inserted meanwhile by another transaction is looked at again, not an error.
    """
    while True:
        row = conn.execute("SELECT password_hash FROM users WHERE id = %s", (user_id,)).fetchone()
        if row is not None:
            return row[0] is None
        name, n = f"user{user_id}", 1
        while _name_taken(conn, name):
            n += 1
            name = f"user{user_id}-{n}"
        inserted = conn.execute(
            "INSERT INTO users (id, username, password_hash, is_admin, created_at)"
            " VALUES (%s, %s, NULL, false, %s) ON CONFLICT DO NOTHING RETURNING id",
            (user_id, name, now_iso()),
        ).fetchone()
        if inserted is not None:
            advance_sequence(conn, "users", user_id)
            return True


def set_username(conn: Conn, user_id: int, username: str) -> bool:
    """Create or rename backend user ``user_id``; True when it was created.

    Raises :class:`PasswordAccount` when the id is an account with a password (never renamed
    or adopted), :class:`UsernameTaken` when another user has the name.
    """
    name = clean(username)
    try:
        while True:
            renamed = conn.execute(
                "UPDATE users SET username = %s WHERE id = %s AND password_hash IS NULL"
                " RETURNING id",
                (name, user_id),
            ).fetchone()
            if renamed is not None:
                return False
            if conn.execute("SELECT 1 FROM users WHERE id = %s", (user_id,)).fetchone():
                raise PasswordAccount(user_id)
            created = conn.execute(
                "INSERT INTO users (id, username, password_hash, is_admin, created_at)"
                " VALUES (%s, %s, NULL, false, %s) ON CONFLICT (id) DO NOTHING RETURNING id",
                (user_id, name, now_iso()),
            ).fetchone()
            if created is not None:
                advance_sequence(conn, "users", user_id)
                return True
            # another transaction created the id meanwhile: rename it (or refuse) instead
    except psycopg.errors.UniqueViolation:
        raise UsernameTaken(username) from None


def create_session(conn: Conn, token_hash: str, user_id: int, expires_at: float) -> None:
    conn.execute("DELETE FROM sessions WHERE expires_at < %s", (time.time(),))
    conn.execute(
        "INSERT INTO sessions (token_hash, user_id, created_at, expires_at)"
        " VALUES (%s, %s, %s, %s)",
        (token_hash, user_id, now_iso(), expires_at),
    )


def session_user(conn: Conn, token_hash: str) -> tuple[int, float] | None:
    """(user id, expiry) of a live session, or None."""
    row = conn.execute(
        "SELECT user_id, expires_at FROM sessions WHERE token_hash = %s AND expires_at > %s",
        (token_hash, time.time()),
    ).fetchone()
    return None if row is None else (int(row[0]), float(row[1]))


def delete_session(conn: Conn, token_hash: str) -> None:
    conn.execute("DELETE FROM sessions WHERE token_hash = %s", (token_hash,))


def delete_user_sessions(conn: Conn, user_id: int) -> None:
    conn.execute("DELETE FROM sessions WHERE user_id = %s", (user_id,))
