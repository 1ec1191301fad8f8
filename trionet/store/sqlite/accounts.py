"""Users and sessions: plain functions over a sqlite3 connection (run them off the loop)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from typing import Any

from ...core.clock import now_iso
from ...core.names import USERNAME_MAX, USERNAME_PATTERN, valid_username
from ..records import PasswordAccount, UsernameTaken

__all__ = [
    "USERNAME_MAX",
    "USERNAME_PATTERN",
    "create_session",
    "create_user",
    "delete_session",
    "delete_user_sessions",
    "ensure_user",
    "get_user",
    "get_user_by_name",
    "list_users",
    "PasswordAccount",
    "UsernameTaken",
    "public_user",
    "session_user",
    "set_username",
    "users_by_ids",
    "valid_username",
]

def public_user(row: sqlite3.Row) -> dict[str, Any]:
    """What other users may see of a user."""
    return {"id": row["id"], "username": row["username"]}


def create_user(
    conn: sqlite3.Connection,
    username: str,
    password_hash: str | None,
    *,
    is_admin: bool = False,
    user_id: int | None = None,
) -> dict[str, Any]:
    """Insert a user; raises :class:`UsernameTaken` on a duplicate name."""
    try:
        cur = conn.execute(
            "INSERT INTO users (id, username, password_hash, is_admin, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (user_id, username, password_hash, int(is_admin), now_iso()),
        )
    except sqlite3.IntegrityError:
        raise UsernameTaken(username) from None
    return {"id": cur.lastrowid if user_id is None else user_id, "username": username,
            "is_admin": is_admin}


def get_user(conn: sqlite3.Connection, user_id: int) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM users WHERE id = ?", (user_id,)
    ).fetchone()
    return row


def get_user_by_name(conn: sqlite3.Connection, username: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM users WHERE username = ?", (username,)
    ).fetchone()
    return row


def users_by_ids(conn: sqlite3.Connection, ids: Iterable[int]) -> list[sqlite3.Row]:
    id_list = list(dict.fromkeys(ids))
    if not id_list:
        return []
    marks = ",".join("?" * len(id_list))
    return list(conn.execute(f"SELECT * FROM users WHERE id IN ({marks}) ORDER BY id", id_list))


def list_users(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    return list(conn.execute("SELECT * FROM users ORDER BY id"))


def ensure_user(conn: sqlite3.Connection, user_id: int) -> bool:
    """Make sure backend user ``user_id`` (first seen in a JWT) has a row; False when the id
    belongs to an account with a password, which a JWT must never adopt.

    A new row is named ``user<id>``, or ``user<id>-2`` (-3...) when that name is taken.
    """
    row = conn.execute("SELECT password_hash FROM users WHERE id = ?", (user_id,)).fetchone()
    if row is not None:
        return row[0] is None
    name, n = f"user{user_id}", 1
    while conn.execute("SELECT 1 FROM users WHERE username = ?", (name,)).fetchone() is not None:
        n += 1
        name = f"user{user_id}-{n}"
    conn.execute(
        "INSERT INTO users (id, username, password_hash, is_admin, created_at)"
        " VALUES (?, ?, NULL, 0, ?)",
        (user_id, name, now_iso()),
    )
    return True


def set_username(conn: sqlite3.Connection, user_id: int, username: str) -> bool:
    """Create or rename backend user ``user_id``; True when it was created.

    Raises :class:`PasswordAccount` when the id is an account with a password (never renamed
    or adopted), :class:`UsernameTaken` when another user has the name.
    """
    try:
        cur = conn.execute(
            "UPDATE users SET username = ? WHERE id = ? AND password_hash IS NULL",
            (username, user_id),
        )
        if not cur.rowcount and conn.execute(
            "SELECT 1 FROM users WHERE id = ?", (user_id,)
        ).fetchone() is not None:
            raise PasswordAccount(user_id)
        if cur.rowcount:
            return False
        conn.execute(
            "INSERT INTO users (id, username, password_hash, is_admin, created_at)"
            " VALUES (?, ?, NULL, 0, ?)",
            (user_id, username, now_iso()),
        )
    except sqlite3.IntegrityError:
        raise UsernameTaken(username) from None
    return True


def create_session(
    conn: sqlite3.Connection, token_hash: str, user_id: int, expires_at: float
) -> None:
    conn.execute("DELETE FROM sessions WHERE expires_at < ?", (time.time(),))
    conn.execute(
        "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
        (token_hash, user_id, now_iso(), expires_at),
    )


def session_user(conn: sqlite3.Connection, token_hash: str) -> tuple[int, float] | None:
    """(user id, expiry) of a live session, or None."""
    row = conn.execute(
        "SELECT user_id, expires_at FROM sessions WHERE token_hash = ? AND expires_at > ?",
        (token_hash, time.time()),
    ).fetchone()
    return None if row is None else (int(row[0]), float(row[1]))


def delete_session(conn: sqlite3.Connection, token_hash: str) -> None:
    conn.execute("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))


def delete_user_sessions(conn: sqlite3.Connection, user_id: int) -> None:
    conn.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))
