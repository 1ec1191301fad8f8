"""Deleting an account: what honours an erasure request (``DELETE /api/server/users/{id}``).

:func:`delete_account` first makes the user unreachable (their sessions deleted, so no new
connection opens with them; every open connection, on every node, closed with 4001 and what
each node caches of them forgotten), then leaves their groups as leaving does (ownership
passes on; a group left empty is deleted) and declines their invites, erases the content of
every message they sent (kept, marked deleted, so the others' conversations keep their shape;
walked in chunks of ids, one short write transaction each), and last deletes the account with
its blocks, read markers, notifications and conversation list.
"""

from __future__ import annotations

from typing import Any, Protocol

import trio

from ..core.ids import IdAllocator, id_to_iso
from .inbox import KeyedLocks
from .manager import Manager

__all__ = ["ERASE_CHUNK", "ErasureServices", "delete_account"]

#: message ids walked per write transaction while erasing an account's messages
ERASE_CHUNK = 20_000


class ErasureServices(Protocol):
    store: Any  # the app's Store
    manager: Manager
    ids: IdAllocator
    invite_locks: KeyedLocks


async def delete_account(svc: ErasureServices, user_id: int) -> dict[str, int] | None:
    """Delete user ``user_id`` (None when there is none); returns counts by kind."""
    store = svc.store
    if await store.get_user(user_id) is None:
        return None
    await store.delete_user_sessions(user_id)
    closed = await svc.manager.user_deleted(user_id)
    mine, invites = await store.groups_of(user_id)
    for group in mine:
        group_id = int(group["id"])
        async with svc.invite_locks.hold(group_id):
            await store.leave(group_id, user_id)
        svc.manager.membership_changed(group_id)
    for invite in invites:
        group_id = int(invite["group_id"])
        async with svc.invite_locks.hold(group_id):
            await store.decline_invite(group_id, user_id)
    change_id = svc.ids.next()
    at = id_to_iso(change_id)
    erased = 0
    after: int | None = 0
    while after is not None:
        after, n = await store.erase_messages(user_id, after, ERASE_CHUNK, at=at,
                                              change_id=change_id)
        erased += n
        await trio.lowlevel.checkpoint()
    related = await store.block_relations(user_id)
    counts = await store.delete_account(user_id)
    svc.manager.blocks_changed(user_id, *related)
    await svc.manager.user_deleted(user_id)  # anything cached of them meanwhile goes too
    return {"connections_closed": closed, "groups_left": len(mine),
            "invites_declined": len(invites), "messages_erased": erased,
            "notifications_deleted": counts["notifications"],
            "read_markers_deleted": counts["read_markers"], "blocks_deleted": counts["blocks"],
            "conversations_deleted": counts["conversations"]}
