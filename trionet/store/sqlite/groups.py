"""Groups and their members: plain functions over a sqlite3 connection (run them off the loop).

Every function that changes something is meant to run inside one ``Database.write``
transaction, so its checks and its changes are atomic. A refused operation raises
:class:`GroupRefused` with a :class:`Refusal` saying why; nothing has been changed then.

An invitee holds at most one ``group_invite`` notification per group: inviting deletes the
earlier one (its own is inserted after this transaction), and withdrawing, declining or
deleting the group deletes it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from ...core.clock import now_iso
from ..records import GroupRefused, LeaveOutcome, Refusal
from . import accounts
from .notifications import drop_invite_notifications, mark_invite_read

__all__ = [
    "GroupRefused",
    "LeaveOutcome",
    "Refusal",
    "accept_invite",
    "create_group",
    "decline_invite",
    "delete_group",
    "get_group",
    "group_details",
    "groups_of",
    "invite",
    "leave",
    "member_status",
    "remove_member",
    "rename",
    "upsert_group",
]


def _group_dict(row: sqlite3.Row) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "owner_id": row["owner_id"],
            "created_at": row["created_at"]}


def get_group(conn: sqlite3.Connection, group_id: int) -> sqlite3.Row | None:
    """The group's row, or None."""
    row: sqlite3.Row | None = conn.execute(
        "SELECT id, name, owner_id, created_at FROM groups WHERE id = ?", (group_id,)
    ).fetchone()
    return row


def _require_group(conn: sqlite3.Connection, group_id: int) -> sqlite3.Row:
    row = get_group(conn, group_id)
    if row is None:
        raise GroupRefused(Refusal.NO_GROUP, f"no group {group_id}")
    return row


def member_status(conn: sqlite3.Connection, group_id: int, user_id: int) -> str | None:
    """``'accepted'``, ``'invited'`` or None."""
    row = conn.execute(
        "SELECT status FROM group_members WHERE group_id = ? AND user_id = ?",
        (group_id, user_id),
    ).fetchone()
    return None if row is None else str(row[0])


def _require_member(conn: sqlite3.Connection, group_id: int, user_id: int) -> None:
    if member_status(conn, group_id, user_id) != "accepted":
        raise GroupRefused(Refusal.NOT_MEMBER, f"you are not a member of group {group_id}")


def _require_owner(conn: sqlite3.Connection, group: sqlite3.Row, user_id: int) -> None:
    if group["owner_id"] != user_id:
        raise GroupRefused(Refusal.NOT_OWNER,
                           f"only the owner of group {group['id']} may do this")


def create_group(
    conn: sqlite3.Connection, owner_id: int, name: str, members: Sequence[int] = ()
) -> dict[str, Any]:
    """Create a group owned by ``owner_id``, who becomes its first accepted member
    (``members`` join accepted too, invited by the owner)."""
    now = now_iso()
    cur = conn.execute(
        "INSERT INTO groups (name, owner_id, created_at) VALUES (?, ?, ?)", (name, owner_id, now)
    )
    group_id = int(cur.lastrowid or 0)
    conn.execute(
        "INSERT INTO group_members (group_id, user_id, status, invited_by, created_at,"
        " accepted_at) VALUES (?, ?, 'accepted', NULL, ?, ?)",
        (group_id, owner_id, now, now),
    )
    conn.executemany(
        "INSERT INTO group_members (group_id, user_id, status, invited_by, created_at,"
        " accepted_at) VALUES (?, ?, 'accepted', ?, ?, ?)",
        [(group_id, uid, owner_id, now, now) for uid in dict.fromkeys(members) if uid != owner_id],
    )
    return {"id": group_id, "name": name, "owner_id": owner_id, "created_at": now}


def groups_of(
    conn: sqlite3.Connection, user_id: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(groups the user is an accepted member of, pending invites), each by group id."""
    groups = [
        {**_group_dict(r), "member_count": r["member_count"], "joined_at": r["accepted_at"]}
        for r in conn.execute(
            "SELECT g.id, g.name, g.owner_id, g.created_at, m.accepted_at,"
            " (SELECT count(*) FROM group_members c"
            "   WHERE c.group_id = g.id AND c.status = 'accepted') AS member_count"
            " FROM group_members m JOIN groups g ON g.id = m.group_id"
            " WHERE m.user_id = ? AND m.status = 'accepted' ORDER BY g.id",
            (user_id,),
        )
    ]
    invites = [
        {"group_id": r["id"], "group_name": r["name"], "invited_by": r["invited_by"],
         "invited_at": r["created_at"]}
        for r in conn.execute(
            "SELECT g.id, g.name, m.invited_by, m.created_at"
            " FROM group_members m JOIN groups g ON g.id = m.group_id"
            " WHERE m.user_id = ? AND m.status = 'invited' ORDER BY g.id",
            (user_id,),
        )
    ]
    return groups, invites


def group_details(conn: sqlite3.Connection, group_id: int, viewer_id: int) -> dict[str, Any]:
    """The group with its accepted members and pending invitees (for accepted members only)."""
    group = _require_group(conn, group_id)
    _require_member(conn, group_id, viewer_id)
    members = []
    invited = []
    for r in conn.execute(
        "SELECT m.user_id, u.username, m.status, m.invited_by, m.created_at, m.accepted_at"
        " FROM group_members m LEFT JOIN users u ON u.id = m.user_id"
        " WHERE m.group_id = ? ORDER BY m.accepted_at, m.user_id",
        (group_id,),
    ):
        if r["status"] == "accepted":
            members.append({"user_id": r["user_id"], "username": r["username"],
                            "joined_at": r["accepted_at"]})
        else:
            invited.append({"user_id": r["user_id"], "username": r["username"],
                            "invited_by": r["invited_by"], "invited_at": r["created_at"]})
    return {**_group_dict(group), "members": members, "invited": invited}


def invite(conn: sqlite3.Connection, group_id: int, inviter_id: int, invitee_id: int) -> str:
    """Record a pending invite; returns the group's name.

    The inviter must be an accepted member; the invitee must exist and be neither a member
    nor already invited.
    """
    group = _require_group(conn, group_id)
    _require_member(conn, group_id, inviter_id)
    if accounts.get_user(conn, invitee_id) is None:
        raise GroupRefused(Refusal.NO_USER, f"no user {invitee_id}")
    status = member_status(conn, group_id, invitee_id)
    if status == "accepted":
        raise GroupRefused(Refusal.ALREADY_MEMBER,
                           f"user {invitee_id} is already a member of group {group_id}")
    if status == "invited":
        raise GroupRefused(Refusal.ALREADY_INVITED,
                           f"user {invitee_id} is already invited to group {group_id}")
    drop_invite_notifications(conn, group_id, [invitee_id])  # the new one comes after this
    conn.execute(
        "INSERT INTO group_members (group_id, user_id, status, invited_by, created_at)"
        " VALUES (?, ?, 'invited', ?, ?)",
        (group_id, invitee_id, inviter_id, now_iso()),
    )
    return str(group["name"])


def accept_invite(conn: sqlite3.Connection, group_id: int, user_id: int) -> None:
    """Turn the user's pending invite into an accepted membership; its notification is
    marked read."""
    _require_group(conn, group_id)
    status = member_status(conn, group_id, user_id)
    if status == "accepted":
        raise GroupRefused(Refusal.ALREADY_MEMBER, f"you are already a member of group {group_id}")
    if status is None:
        raise GroupRefused(Refusal.NO_INVITE, f"you have no invite to group {group_id}")
    conn.execute(
        "UPDATE group_members SET status = 'accepted', accepted_at = ?"
        " WHERE group_id = ? AND user_id = ?",
        (now_iso(), group_id, user_id),
    )
    mark_invite_read(conn, group_id, user_id)


def decline_invite(conn: sqlite3.Connection, group_id: int, user_id: int) -> None:
    """Delete the user's pending invite and its notification."""
    _require_group(conn, group_id)
    status = member_status(conn, group_id, user_id)
    if status == "accepted":
        raise GroupRefused(Refusal.ALREADY_MEMBER, f"you are already a member of group {group_id}")
    if status is None:
        raise GroupRefused(Refusal.NO_INVITE, f"you have no invite to group {group_id}")
    conn.execute("DELETE FROM group_members WHERE group_id = ? AND user_id = ?",
                 (group_id, user_id))
    drop_invite_notifications(conn, group_id, [user_id])


def _longest_standing(conn: sqlite3.Connection, group_id: int) -> int | None:
    row = conn.execute(
        "SELECT user_id FROM group_members WHERE group_id = ? AND status = 'accepted'"
        " ORDER BY accepted_at, user_id LIMIT 1",
        (group_id,),
    ).fetchone()
    return None if row is None else int(row[0])


def _invitees(conn: sqlite3.Connection, group_id: int) -> list[int]:
    return [int(r[0]) for r in conn.execute(
        "SELECT user_id FROM group_members WHERE group_id = ? AND status = 'invited'",
        (group_id,),
    )]


def _delete(conn: sqlite3.Connection, group_id: int) -> None:
    """Delete the group, its memberships, and its pending invites with their notifications."""
    drop_invite_notifications(conn, group_id, _invitees(conn, group_id))
    conn.execute("DELETE FROM groups WHERE id = ?", (group_id,))


def _after_departure(conn: sqlite3.Connection, group: sqlite3.Row, user_id: int) -> LeaveOutcome:
    successor = _longest_standing(conn, group["id"])
    if successor is None:
        _delete(conn, group["id"])
        return LeaveOutcome(new_owner=None, deleted=True)
    if group["owner_id"] == user_id:
        conn.execute("UPDATE groups SET owner_id = ? WHERE id = ?", (successor, group["id"]))
        return LeaveOutcome(new_owner=successor, deleted=False)
    return LeaveOutcome(new_owner=None, deleted=False)


def leave(conn: sqlite3.Connection, group_id: int, user_id: int) -> LeaveOutcome:
    """Remove an accepted member.

    An owner who leaves hands the group to the longest-standing accepted member; a group
    left without accepted members is deleted (pending invites with it).
    """
    group = _require_group(conn, group_id)
    _require_member(conn, group_id, user_id)
    conn.execute("DELETE FROM group_members WHERE group_id = ? AND user_id = ?",
                 (group_id, user_id))
    return _after_departure(conn, group, user_id)


def rename(conn: sqlite3.Connection, group_id: int, owner_id: int, name: str) -> dict[str, Any]:
    """Rename the group (owner only); returns the updated group."""
    group = _require_group(conn, group_id)
    _require_owner(conn, group, owner_id)
    conn.execute("UPDATE groups SET name = ? WHERE id = ?", (name, group_id))
    return {**_group_dict(group), "name": name}


def remove_member(
    conn: sqlite3.Connection, group_id: int, owner_id: int, user_id: int
) -> str:
    """Remove a member or withdraw an invite (owner only); returns the removed status.

    A withdrawn invite's notification is deleted with it.
    """
    group = _require_group(conn, group_id)
    _require_owner(conn, group, owner_id)
    if user_id == owner_id:
        raise GroupRefused(Refusal.OWNER_CANNOT,
                           "the owner cannot remove themselves; leave the group instead")
    status = member_status(conn, group_id, user_id)
    if status is None:
        raise GroupRefused(Refusal.NO_MEMBERSHIP,
                           f"user {user_id} is neither a member of nor invited to group {group_id}")
    conn.execute("DELETE FROM group_members WHERE group_id = ? AND user_id = ?",
                 (group_id, user_id))
    if status == "invited":  # a withdrawn invite takes its notification with it
        drop_invite_notifications(conn, group_id, [user_id])
    return status


def delete_group(conn: sqlite3.Connection, group_id: int, owner_id: int) -> None:
    """Delete the group and every membership and invite, with the pending invitees'
    invite notifications (owner only).

    Its messages stay in the database but no history endpoint serves them any more.
    """
    group = _require_group(conn, group_id)
    _require_owner(conn, group, owner_id)
    _delete(conn, group_id)


def upsert_group(
    conn: sqlite3.Connection,
    group_id: int,
    name: str,
    members: Sequence[tuple[int, str]],
    owner_id: int | None,
) -> bool:
    """Create or replace group ``group_id`` with exactly ``members`` ((user id, status) pairs).

    Unknown user ids get a ``user<id>`` row, as a JWT first seen does. Members who stay
    accepted keep their ``accepted_at``. Returns True when the group was created.
    """
    now = now_iso()
    wanted = sorted({*(m[0] for m in members), *([owner_id] if owner_id is not None else [])})
    for uid in wanted:
        accounts.ensure_user(conn, uid)
    found = {int(r[0]) for r in conn.execute(
        "SELECT id FROM users WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(wanted),)
    )}
    missing = [uid for uid in wanted if uid not in found]
    if missing:  # ensure_user could not create them: the name user<id> is taken
        raise GroupRefused(Refusal.NO_USER, f"cannot create users {missing}: name taken")
    created = get_group(conn, group_id) is None
    conn.execute(
        "INSERT INTO groups (id, name, owner_id, created_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET name = excluded.name, owner_id = excluded.owner_id",
        (group_id, name, owner_id, now),
    )
    conn.execute(
        "DELETE FROM group_members WHERE group_id = ?"
        " AND user_id NOT IN (SELECT value FROM json_each(?))",
        (group_id, json.dumps([uid for uid, _ in members])),
    )
    conn.executemany(
        "INSERT INTO group_members (group_id, user_id, status, invited_by, created_at,"
        " accepted_at) VALUES (?, ?, ?, NULL, ?, CASE WHEN ? = 'accepted' THEN ? END)"
        " ON CONFLICT (group_id, user_id) DO UPDATE SET status = excluded.status,"
        " accepted_at = CASE WHEN excluded.status = 'accepted'"
        "   THEN coalesce(group_members.accepted_at, excluded.accepted_at) END",
        [(group_id, uid, status, now, status, now) for uid, status in members],
    )
    return created
