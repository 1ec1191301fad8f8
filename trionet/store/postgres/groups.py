"""Groups and their members: plain functions over a psycopg connection (run them off the loop).

The same rules as the SQLite store's (:mod:`trionet.store.sqlite.groups`), read there for
the why. Every function that changes a group runs in one :meth:`Database.write` transaction
and first locks the group's row (``FOR UPDATE``): operations on one group run one after the
other, so their checks hold until they commit, as under SQLite's single writer. A refused
operation raises :class:`GroupRefused`; the transaction is rolled back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...core.clock import now_iso
from ..records import GroupRefused, LeaveOutcome, Refusal
from . import accounts
from .database import Conn
from .notifications import drop_invite_notifications, mark_invite_read
from .text import clean

__all__ = [
    "accept_invite",
    "accepted_members",
    "create_group",
    "decline_invite",
    "delete_group",
    "group_details",
    "groups_of",
    "invite",
    "leave",
    "member_status",
    "remove_member",
    "rename",
    "upsert_group",
]

_GROUP_COLUMNS = "id, name, owner_id, created_at"


def _group_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    id_, name, owner_id, created_at = row[:4]
    return {"id": int(id_), "name": str(name),
            "owner_id": None if owner_id is None else int(owner_id),
            "created_at": str(created_at)}


def _get_group(conn: Conn, group_id: int, *, lock: bool) -> tuple[Any, ...] | None:
    sql = f"SELECT {_GROUP_COLUMNS} FROM groups WHERE id = %s"
    return conn.execute(sql + (" FOR UPDATE" if lock else ""), (group_id,)).fetchone()


def _require_group(conn: Conn, group_id: int, *, lock: bool = True) -> dict[str, Any]:
    row = _get_group(conn, group_id, lock=lock)
    if row is None:
        raise GroupRefused(Refusal.NO_GROUP, f"no group {group_id}")
    return _group_dict(row)


def member_status(conn: Conn, group_id: int, user_id: int) -> str | None:
    """``'accepted'``, ``'invited'`` or None."""
    row = conn.execute(
        "SELECT status FROM group_members WHERE group_id = %s AND user_id = %s",
        (group_id, user_id),
    ).fetchone()
    return None if row is None else str(row[0])


def _require_member(conn: Conn, group_id: int, user_id: int) -> None:
    if member_status(conn, group_id, user_id) != "accepted":
        raise GroupRefused(Refusal.NOT_MEMBER, f"you are not a member of group {group_id}")


def _require_owner(group: dict[str, Any], user_id: int) -> None:
    if group["owner_id"] != user_id:
        raise GroupRefused(Refusal.NOT_OWNER,
                           f"only the owner of group {group['id']} may do this")


def accepted_members(conn: Conn, group_id: int) -> frozenset[int] | None:
    """Ids of the group's accepted members; None when there is no such group (one query)."""
    rows = conn.execute(
        "SELECT m.user_id FROM groups g LEFT JOIN group_members m"
        " ON m.group_id = g.id AND m.status = 'accepted' WHERE g.id = %s",
        (group_id,),
    ).fetchall()
    if not rows:
        return None
    return frozenset(int(r[0]) for r in rows if r[0] is not None)


def create_group(conn: Conn, owner_id: int, name: str,
                 members: Sequence[int] = ()) -> dict[str, Any]:
    """Create a group owned by ``owner_id``, who becomes its first accepted member
    (``members`` join accepted too, invited by the owner)."""
    now = now_iso()
    name = clean(name)
    group_id = accounts.insert_with_next_id(
        conn, "groups", "name, owner_id, created_at", "%s, %s, %s", (name, owner_id, now))
    others = [uid for uid in dict.fromkeys(members) if uid != owner_id]
    conn.execute(
        "INSERT INTO group_members (group_id, user_id, status, invited_by, created_at,"
        " accepted_at)"
        " SELECT %s, uid, 'accepted', CASE WHEN uid = %s THEN NULL ELSE %s::bigint END, %s, %s"
        " FROM unnest(%s::bigint[]) WITH ORDINALITY AS m(uid, n) ORDER BY n",
        (group_id, owner_id, owner_id, now, now, [owner_id, *others]),
    )
    return {"id": group_id, "name": name, "owner_id": owner_id, "created_at": now}


def groups_of(conn: Conn, user_id: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(groups the user is an accepted member of, pending invites), each by group id."""
    groups = [
        {**_group_dict(r), "member_count": int(r[5]), "joined_at": r[4]}
        for r in conn.execute(
            "SELECT g.id, g.name, g.owner_id, g.created_at, m.accepted_at,"
            " (SELECT count(*) FROM group_members c"
            "   WHERE c.group_id = g.id AND c.status = 'accepted') AS member_count"
            " FROM group_members m JOIN groups g ON g.id = m.group_id"
            " WHERE m.user_id = %s AND m.status = 'accepted' ORDER BY g.id",
            (user_id,),
        )
    ]
    invites = [
        {"group_id": int(r[0]), "group_name": str(r[1]),
         "invited_by": None if r[2] is None else int(r[2]), "invited_at": str(r[3])}
        for r in conn.execute(
            "SELECT g.id, g.name, m.invited_by, m.created_at"
            " FROM group_members m JOIN groups g ON g.id = m.group_id"
            " WHERE m.user_id = %s AND m.status = 'invited' ORDER BY g.id",
            (user_id,),
        )
    ]
    return groups, invites


def group_details(conn: Conn, group_id: int, viewer_id: int) -> dict[str, Any]:
    """The group with its accepted members and pending invitees (for accepted members only)."""
    group = _require_group(conn, group_id, lock=False)
    _require_member(conn, group_id, viewer_id)
    members = []
    invited = []
    for user_id, username, status, invited_by, created_at, accepted_at in conn.execute(
        "SELECT m.user_id, u.username, m.status, m.invited_by, m.created_at, m.accepted_at"
        " FROM group_members m LEFT JOIN users u ON u.id = m.user_id"
        " WHERE m.group_id = %s ORDER BY m.accepted_at NULLS FIRST, m.user_id",
        (group_id,),
    ):
        if status == "accepted":
            members.append({"user_id": int(user_id), "username": username,
                            "joined_at": accepted_at})
        else:
            invited.append({"user_id": int(user_id), "username": username,
                            "invited_by": None if invited_by is None else int(invited_by),
                            "invited_at": created_at})
    return {**group, "members": members, "invited": invited}


def invite(conn: Conn, group_id: int, inviter_id: int, invitee_id: int) -> str:
    """Record a pending invite; returns the group's name (see the SQLite store's)."""
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
        " VALUES (%s, %s, 'invited', %s, %s)",
        (group_id, invitee_id, inviter_id, now_iso()),
    )
    return str(group["name"])


def _pending_invite(conn: Conn, group_id: int, user_id: int) -> None:
    _require_group(conn, group_id)
    status = member_status(conn, group_id, user_id)
    if status == "accepted":
        raise GroupRefused(Refusal.ALREADY_MEMBER, f"you are already a member of group {group_id}")
    if status is None:
        raise GroupRefused(Refusal.NO_INVITE, f"you have no invite to group {group_id}")


def accept_invite(conn: Conn, group_id: int, user_id: int) -> None:
    """Turn the user's pending invite into an accepted membership; its notification is
    marked read."""
    _pending_invite(conn, group_id, user_id)
    conn.execute(
        "UPDATE group_members SET status = 'accepted', accepted_at = %s"
        " WHERE group_id = %s AND user_id = %s",
        (now_iso(), group_id, user_id),
    )
    mark_invite_read(conn, group_id, user_id)


def decline_invite(conn: Conn, group_id: int, user_id: int) -> None:
    """Delete the user's pending invite and its notification."""
    _pending_invite(conn, group_id, user_id)
    conn.execute("DELETE FROM group_members WHERE group_id = %s AND user_id = %s",
                 (group_id, user_id))
    drop_invite_notifications(conn, group_id, [user_id])


def _longest_standing(conn: Conn, group_id: int) -> int | None:
    row = conn.execute(
        "SELECT user_id FROM group_members WHERE group_id = %s AND status = 'accepted'"
        " ORDER BY accepted_at NULLS FIRST, user_id LIMIT 1",
        (group_id,),
    ).fetchone()
    return None if row is None else int(row[0])


def _delete(conn: Conn, group_id: int) -> None:
    """Delete the group, its memberships, and its pending invites with their notifications."""
    invitees = [int(r[0]) for r in conn.execute(
        "SELECT user_id FROM group_members WHERE group_id = %s AND status = 'invited'",
        (group_id,),
    )]
    drop_invite_notifications(conn, group_id, invitees)
    conn.execute("DELETE FROM groups WHERE id = %s", (group_id,))


def leave(conn: Conn, group_id: int, user_id: int) -> LeaveOutcome:
    """Remove an accepted member. An owner who leaves hands the group to the
    longest-standing accepted member; a group left without accepted members is deleted."""
    group = _require_group(conn, group_id)
    _require_member(conn, group_id, user_id)
    conn.execute("DELETE FROM group_members WHERE group_id = %s AND user_id = %s",
                 (group_id, user_id))
    successor = _longest_standing(conn, group_id)
    if successor is None:
        _delete(conn, group_id)
        return LeaveOutcome(new_owner=None, deleted=True)
    if group["owner_id"] == user_id:
        conn.execute("UPDATE groups SET owner_id = %s WHERE id = %s", (successor, group_id))
        return LeaveOutcome(new_owner=successor, deleted=False)
    return LeaveOutcome(new_owner=None, deleted=False)


def rename(conn: Conn, group_id: int, owner_id: int, name: str) -> dict[str, Any]:
    """Rename the group (owner only); returns the updated group."""
    group = _require_group(conn, group_id)
    _require_owner(group, owner_id)
    name = clean(name)
    conn.execute("UPDATE groups SET name = %s WHERE id = %s", (name, group_id))
    return {**group, "name": name}


def remove_member(conn: Conn, group_id: int, owner_id: int, user_id: int) -> str:
    """Remove a member or withdraw an invite (owner only); returns the removed status.
    A withdrawn invite's notification is deleted with it."""
    group = _require_group(conn, group_id)
    _require_owner(group, owner_id)
    if user_id == owner_id:
        raise GroupRefused(Refusal.OWNER_CANNOT,
                           "the owner cannot remove themselves; leave the group instead")
    status = member_status(conn, group_id, user_id)
    if status is None:
        raise GroupRefused(Refusal.NO_MEMBERSHIP,
                           f"user {user_id} is neither a member of nor invited to group {group_id}")
    conn.execute("DELETE FROM group_members WHERE group_id = %s AND user_id = %s",
                 (group_id, user_id))
    if status == "invited":
        drop_invite_notifications(conn, group_id, [user_id])
    return status


def delete_group(conn: Conn, group_id: int, owner_id: int) -> None:
    """Delete the group and every membership and invite, with the pending invitees' invite
    notifications (owner only). Its messages stay."""
    group = _require_group(conn, group_id)
    _require_owner(group, owner_id)
    _delete(conn, group_id)


def upsert_group(conn: Conn, group_id: int, name: str, members: Sequence[tuple[int, str]],
                 owner_id: int | None) -> bool:
    """Create or replace group ``group_id`` with exactly ``members`` ((user id, status)
    pairs). Unknown user ids get a ``user<id>`` row; members who stay accepted keep their
    ``accepted_at``. Returns True when the group was created."""
    now = now_iso()
    name = clean(name)
    wanted = sorted({*(m[0] for m in members), *([owner_id] if owner_id is not None else [])})
    for uid in wanted:  # in id order, so concurrent upserts insert users in one order
        accounts.ensure_user(conn, uid)
    found = {int(r[0]) for r in conn.execute(
        "SELECT id FROM users WHERE id = ANY(%s::bigint[])", (wanted,))}
    missing = [uid for uid in wanted if uid not in found]
    if missing:
        raise GroupRefused(Refusal.NO_USER, f"cannot create users {missing}: name taken")
    row = conn.execute(
        "INSERT INTO groups AS g (id, name, owner_id, created_at) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (id) DO UPDATE SET name = excluded.name, owner_id = excluded.owner_id"
        " RETURNING (xmax = 0)",
        (group_id, name, owner_id, now),
    ).fetchone()
    created = bool(row and row[0])
    if created:
        accounts.advance_sequence(conn, "groups", group_id)
    conn.execute(
        "DELETE FROM group_members WHERE group_id = %s AND NOT (user_id = ANY(%s::bigint[]))",
        (group_id, [uid for uid, _ in members]),
    )
    # one row at a time (in one pipelined round trip), so a user listed twice ends as the
    # SQLite store leaves it: each later entry updates the row the earlier one wrote
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO group_members AS gm (group_id, user_id, status, invited_by,"
            " created_at, accepted_at)"
            " VALUES (%s, %s, %s, NULL, %s, CASE WHEN %s = 'accepted' THEN %s END)"
            " ON CONFLICT (group_id, user_id) DO UPDATE SET status = excluded.status,"
            " accepted_at = CASE WHEN excluded.status = 'accepted'"
            "   THEN coalesce(gm.accepted_at, excluded.accepted_at) END",
            [(group_id, uid, status, now, status, now) for uid, status in members],
        )
    return created
