"""Store conformance: the notification inbox (each test runs against every store)."""

from __future__ import annotations

import trio
from store_helpers import TIMEOUT, ids_of_page, note

from trionet.store import Store


async def test_the_page_is_newest_first_as_the_live_frame_plus_read(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        stored = note(7, 1, "like", "Bob liked ✓", {"post_id": 3, "by": {"id": 2}, "id": 999,
                                                    "type": "x", "read": True})
        await store.save([], [note(5, 1), stored, note(6, 2)])
        page = await store.notification_page(1, limit=10, offset=0)
        assert [n["id"] for n in page] == [7, 5]
        assert page[0] == {"type": "notification", "id": 7, "post_id": 3, "by": {"id": 2},
                           "subtype": "like", "message": "Bob liked ✓",
                           "timestamp": stored.created_at, "read": False}
        assert list(page[0])[0] == "type" and list(page[0])[-1] == "read"


async def test_pages_take_offset_and_before_id(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        await store.save([], [note(i, 1) for i in range(1, 11)])
        assert await ids_of_page(store, 1, limit=3) == [10, 9, 8]
        assert await ids_of_page(store, 1, limit=3, offset=3) == [7, 6, 5]
        assert await ids_of_page(store, 1, limit=3, before_id=5) == [4, 3, 2]
        assert await ids_of_page(store, 1, limit=3, offset=2, before_id=5) == [2, 1]
        assert await ids_of_page(store, 2) == []


async def test_mark_read_marks_only_the_users_own(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        await store.save([], [note(1, 1), note(2, 1), note(3, 1), note(4, 2)])
        assert await store.unread_count(1) == 3
        assert await store.mark_read(1, [1, 4, 999]) == 1  # 4 is another user's
        assert await store.unread_count(2) == 1
        assert await store.mark_read(1, [1]) == 0  # already read
        assert await store.mark_read(1, []) == 0
        assert await store.unread_count(1) == 2
        assert await store.mark_read(1) == 2
        assert await store.mark_read(1) == 0
        assert await store.unread_count(1) == 0
        assert all(n["read"] for n in await store.notification_page(1, limit=10, offset=0))
        assert not (await store.notification_page(2, limit=10, offset=0))[0]["read"]
        assert await store.unread_count(3) == 0


async def test_inbox_sizes_and_over_bound_page_by_user_id(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        counts = {1: 5, 2: 1, 3: 4, 7: 6, 9: 3}
        next_id = iter(range(1, 100))
        await store.save([], [note(next(next_id), uid) for uid, n in counts.items()
                              for _ in range(n)])
        assert await store.inbox_sizes([1, 2, 4, 7]) == {1: 5, 2: 1, 7: 6}
        assert await store.inbox_sizes([]) == {}
        assert await store.over_bound(3, after=0, limit=10) == [1, 3, 7]
        assert await store.over_bound(3, after=0, limit=2) == [1, 3]
        assert await store.over_bound(3, after=3, limit=2) == [7]
        assert await store.over_bound(3, after=7, limit=2) == []
        assert await store.over_bound(10, after=0, limit=10) == []


async def test_pruning_keeps_the_bound_dropping_oldest_read_then_oldest_unread(
    store: Store,
) -> None:
    with trio.fail_after(TIMEOUT):
        await store.save([], [note(i, 1) for i in range(1, 11)] + [note(20, 2), note(21, 2)])
        await store.mark_read(1, [2, 5, 9])
        assert await store.prune_inboxes([1], 8) == 2  # the two oldest read: 2 and 5
        assert await ids_of_page(store, 1) == [10, 9, 8, 7, 6, 4, 3, 1]
        assert await store.prune_inboxes([1], 5) == 3  # 9 (read), then unread 1 and 3
        assert await ids_of_page(store, 1) == [10, 8, 7, 6, 4]
        assert await store.prune_inboxes([1, 2], 5) == 0  # within the bound
        assert await store.prune_inboxes([1, 2], 0) == 0  # 0: keep everything
        assert await store.prune_inboxes([], 1) == 0
        assert await store.prune_inboxes([1, 2, 3], 1) == 5
        assert await ids_of_page(store, 1) == [10]
        assert await ids_of_page(store, 2) == [21]
        assert await store.unread_count(1) == 1
