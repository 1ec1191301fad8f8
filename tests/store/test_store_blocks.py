"""Store conformance: blocks (each test runs against every store)."""

from __future__ import annotations

import trio
from store_helpers import TIMEOUT

from trionet.store import Store


async def test_blocks_are_one_row_each_and_relations_go_both_ways(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        assert await store.block(1, 2, at="t")
        assert not await store.block(1, 2, at="t2")  # there already
        assert await store.block(3, 1, at="t")
        assert await store.block(1, 4, at="t")
        assert await store.blocked_by(1) == [2, 4]
        assert await store.blocked_by(2) == []
        assert await store.block_relations(1) == frozenset({2, 3, 4})
        assert await store.block_relations(2) == frozenset({1})
        assert await store.blocked_among(1, [2, 3, 5]) == {2, 3}
        assert await store.blocked_among(2, [3, 4]) == set()
        assert await store.blocked_among(2, []) == set()
        assert not await store.unblock(2, 1)  # only the blocker's row is the block
        assert await store.unblock(1, 2)
        assert not await store.unblock(1, 2)
        assert await store.block_relations(2) == frozenset()
