"""Store conformance: kind, ids, ping and migrations (each test runs against every store)."""

from __future__ import annotations

import trio
from store_helpers import TIMEOUT, in_group, note, private

from trionet.interfaces import GroupMemberFetcher
from trionet.store import InlineSaver, Store, open_store, store_kind


async def test_the_store_is_of_the_kind_its_url_names(store: Store, store_url: str) -> None:
    assert store.kind == store_kind(store_url)
    assert isinstance(store, GroupMemberFetcher)
    # only the embedded store can commit on the event loop; others always use save()
    assert isinstance(store, InlineSaver) == (store.kind == "sqlite")


async def test_max_id_is_the_highest_message_or_notification_id(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        assert await store.max_id() == 0
        await store.save([private(5, 1, 2)], [])
        assert await store.max_id() == 5
        await store.save([], [note(9, 1)])
        assert await store.max_id() == 9
        big = 2**53 - 1  # the largest id the server allocates
        await store.save([in_group(big, 1, 1)], [])
        assert await store.max_id() == big
        assert (await store.group_page(1, limit=1, offset=0, before_id=None))[0].id == big


async def test_ping_answers(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        await store.ping()
        await store.ping()


async def test_migrating_twice_applies_nothing_the_second_time(fresh_url: str) -> None:
    with trio.fail_after(TIMEOUT * 2):
        store = open_store(fresh_url)
        try:
            first = await store.migrate()
            assert first and first == sorted(first)
            assert await store.migrate() == []
            await store.save([private(1, 1, 2)], [])
            assert await store.migrate() == []
            assert await store.max_id() == 1
        finally:
            await store.aclose()
        again = open_store(fresh_url)  # another process, later
        try:
            assert await again.migrate() == []
            assert await again.max_id() == 1
        finally:
            await again.aclose()


async def test_stores_migrating_at_once_apply_each_migration_once(fresh_url: str) -> None:
    stores = [open_store(fresh_url) for _ in range(3)]
    applied: list[list[str]] = []

    async def migrate(store: Store) -> None:
        applied.append(await store.migrate())

    try:
        with trio.fail_after(TIMEOUT * 2):
            async with trio.open_nursery() as nursery:
                for store in stores:
                    nursery.start_soon(migrate, store)
            names = [name for run in applied for name in run]
            assert len(applied) == 3
            assert names and sorted(names) == sorted(set(names))
            assert sum(1 for run in applied if run) == 1  # one applied all, the rest none
            for store in stores:
                await store.ping()
    finally:
        with trio.fail_after(TIMEOUT):
            for store in stores:
                await store.aclose()


async def test_a_closed_store_waits_for_running_calls(store: Store) -> None:
    results: list[int] = []

    async def call() -> None:
        results.append(await store.max_id())

    with trio.fail_after(TIMEOUT):
        await store.save([private(3, 1, 2)], [])
        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(call)
            await trio.lowlevel.checkpoint()
            nursery.start_soon(store.aclose)
        assert results == [3] * 5
