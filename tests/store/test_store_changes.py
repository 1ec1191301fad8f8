"""Store conformance: edits and deletes of messages (each test runs against every store)."""

from __future__ import annotations

import dataclasses

import trio
from store_helpers import TIMEOUT, in_group, make_users, private

from trionet.store import Store


async def test_an_edit_replaces_the_content_once_and_a_delete_erases_it(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        original = private(1, 1, 2, "helo")
        await store.save([original, private(2, 1, 2, "other")], [])
        assert await store.message(1) == original
        assert await store.message(99) is None
        assert await store.edit_message(1, "hello", change_id=10, at="t10")
        assert not await store.edit_message(1, "hello", change_id=11, at="t11")  # the same
        edited = dataclasses.replace(original, content="hello", edited_at="t10")
        assert await store.message(1) == edited
        page = await store.private_page(2, 1, limit=10, offset=0, before_id=None)
        assert page[1] == edited
        assert await store.delete_message(1, change_id=12, at="t12")
        assert not await store.delete_message(1, change_id=13, at="t13")
        assert not await store.edit_message(1, "back", change_id=14, at="t14")
        gone = await store.message(1)
        assert gone is not None and gone.deleted and gone.content == ""
        assert gone.edited_at == "t10" and gone.created_at == original.created_at


async def test_changed_since_lists_what_the_user_may_see_by_last_change(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        await make_users(store, "u1", "u2", "u3")
        gid = (await store.create_group(1, "g", [2]))["id"]
        await store.save([private(1, 1, 2), private(2, 1, 3), in_group(3, 1, gid),
                          private(4, 2, 1)], [])
        await store.edit_message(1, "a", change_id=20, at="t20")
        await store.edit_message(2, "b", change_id=21, at="t21")  # not user 2's
        await store.delete_message(3, change_id=22, at="t22")
        await store.edit_message(4, "c", change_id=23, at="t23")
        assert await store.changed_since(2, 0, 10) == [(1, 20), (3, 22), (4, 23)]
        assert [m for m, _ in await store.changed_since(2, 20, 10)] == [3, 4]
        assert [m for m, _ in await store.changed_since(2, 0, 2)] == [3, 4]  # the newest
        assert [m for m, _ in await store.changed_since(3, 0, 10)] == [2]
        await store.edit_message(1, "again", change_id=30, at="t30")
        assert await store.changed_since(2, 23, 10) == [(1, 30)]
        assert await store.group_owner(gid) == 1
        assert await store.group_owner(gid + 100) is None


async def test_erasing_an_account_walks_the_ids_in_chunks_and_keeps_the_rows(
    store: Store
) -> None:
    with trio.fail_after(TIMEOUT):
        uid, other = await make_users(store, "gone", "stays")
        await store.save([private(i, uid if i % 2 else other, other if i % 2 else uid, f"m{i}")
                          for i in range(1, 8)], [])
        after: int | None = 0
        erased, chunks = 0, 0
        while after is not None:
            after, n = await store.erase_messages(uid, after, 3, at="t", change_id=50)
            erased, chunks = erased + n, chunks + 1
        assert (erased, chunks) == (4, 3)  # ids 1, 3, 5, 7, in chunks of three ids
        page = await store.private_page(uid, other, limit=10, offset=0, before_id=None)
        assert [(m.id, m.deleted, m.content) for m in page] == [
            (7, True, ""), (6, False, "m6"), (5, True, ""), (4, False, "m4"), (3, True, ""),
            (2, False, "m2"), (1, True, "")]
        counts = await store.delete_account(uid)
        assert counts["users"] == 1 and counts["conversations"] == 1
        assert await store.get_user(uid) is None
        assert await store.get_user(other) is not None
        assert len(await store.private_page(other, uid, limit=10, offset=0,
                                            before_id=None)) == 7
