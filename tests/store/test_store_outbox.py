"""Store conformance: the webhook outbox (each test runs against every store)."""

from __future__ import annotations

import trio
from store_helpers import TIMEOUT

from trionet.store import Store


async def test_claims_are_exclusive_leased_and_come_due_again(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        assert await store.outbox_add([(1, "a", None), (2, "b", None), (3, "c", 7)], now=100.0,
                                      bound=10) == 0
        assert await store.outbox_add([(1, "a", None)], now=100.0, bound=10) == 0  # an id once
        assert await store.outbox_claim(now=100.0, lease=10, limit=2) == [(1, "a", 1),
                                                                           (2, "b", 1)]
        # another sender meanwhile: only what is not leased
        assert await store.outbox_claim(now=101.0, lease=10, limit=5) == [(3, "c", 1)]
        assert await store.outbox_claim(now=105.0, lease=10, limit=5) == []
        await store.outbox_done(1)
        await store.outbox_retry(2, next_at=106.0)
        assert await store.outbox_claim(now=106.0, lease=10, limit=5) == [(2, "b", 2)]
        # the sender of 3 died mid-attempt: its lease ran out, 3 is due again
        assert await store.outbox_claim(now=111.0, lease=10, limit=5) == [(3, "c", 2)]
        assert await store.outbox_size() == 2


async def test_past_the_bound_the_oldest_go(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        assert await store.outbox_add([(i, str(i), None) for i in range(1, 6)], now=1.0,
                                      bound=3) == 2
        assert await store.outbox_size() == 3
        assert [e[0] for e in await store.outbox_claim(now=1.0, lease=5, limit=10)] == [3, 4, 5]


async def test_an_event_goes_with_the_message_it_carries(store: Store) -> None:
    from store_helpers import make_users, private

    with trio.fail_after(TIMEOUT):
        uid, other = await make_users(store, "a", "b")
        await store.save([private(1, uid, other, "secret"), private(2, other, uid, "kept"),
                          private(3, uid, other, "also secret")], [])
        await store.outbox_add([(10, '{"content":"secret"}', 1), (11, "{}", 2), (12, "{}", None),
                                (13, '{"content":"also secret"}', 3)], now=1.0, bound=100)
        assert await store.delete_message(1, change_id=20, at="t")
        assert [e[0] for e in await store.outbox_claim(now=1.0, lease=5, limit=10)] == [
            11, 12, 13]
        await store.delete_account(uid)  # erasure takes the events of their messages
        assert await store.outbox_size() == 2
        assert await store.expire_messages(3, 10) == 2  # retention too
        assert await store.outbox_size() == 1
