"""Store conformance: read markers and unread counts (each test runs against every store)."""

from __future__ import annotations

import pytest
import trio
from store_helpers import TIMEOUT, in_group, private

from trionet.store import NotInConversation, ReadMarker, ReadState, Store


async def test_a_marker_moves_forward_only_and_counts_the_peers_messages_above_it(
    store: Store
) -> None:
    with trio.fail_after(TIMEOUT):
        await store.save([private(1, 1, 2, "a"), private(2, 1, 2, "b"), private(3, 2, 1, "mine"),
                          private(4, 1, 2, "c"), private(5, 1, 3, "other pair")], [])
        (conv,) = [c for c in await store.conversation_page(2, limit=10, offset=0)]
        assert (conv.last_read_id, conv.peer_read_id, conv.unread_count) == (None, None, 3)
        assert await store.mark_conversation_read(2, "private", 1, 2, event_id=10,
                                                  at="t10") == ReadState(2, 1, True)
        # an older message, or the same one again: nothing moves
        assert await store.mark_conversation_read(2, "private", 1, 1, event_id=11,
                                                  at="t11") == ReadState(2, 1, False)
        assert await store.mark_conversation_read(2, "private", 1, 2, event_id=12,
                                                  at="t12") == ReadState(2, 1, False)
        # the reader's own message counts as read up to it
        assert await store.mark_conversation_read(2, "private", 1, 3, event_id=13,
                                                  at="t13") == ReadState(3, 1, True)
        (conv,) = await store.conversation_page(2, limit=10, offset=0)
        assert (conv.last_read_id, conv.peer_read_id, conv.unread_count) == (3, None, 1)
        mine = {c.peer_id: c for c in await store.conversation_page(1, limit=10, offset=0)}
        assert (mine[2].last_read_id, mine[2].peer_read_id, mine[2].unread_count) == (
            None, 3, 1)
        assert (mine[3].peer_read_id, mine[3].unread_count) == (None, 0)


async def test_a_read_names_a_message_of_its_own_conversation(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        await store.save([private(1, 1, 2), private(2, 1, 3), in_group(3, 1, 9)], [])
        for kind, target, up_to in (("private", 1, 2), ("private", 1, 3), ("private", 1, 99),
                                    ("group", 9, 1), ("group", 8, 3)):
            with pytest.raises(NotInConversation):
                await store.mark_conversation_read(2, kind, target, up_to, event_id=10, at="t")
        assert await store.read_markers_since(2, 0, 10) == []


async def test_group_markers_count_the_others_messages(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        await store.save([in_group(1, 1, 9), in_group(2, 2, 9), in_group(3, 1, 9),
                          in_group(4, 1, 8)], [])
        assert await store.group_read_states(2, [9, 8, 7]) == {9: (None, 2), 8: (None, 1),
                                                               7: (None, 0)}
        assert await store.mark_conversation_read(2, "group", 9, 1, event_id=10,
                                                  at="t") == ReadState(1, 1, True)
        assert (await store.group_read_states(2, [9]))[9] == (1, 1)
        assert (await store.group_read_states(1, [9]))[9] == (None, 1)
        assert await store.group_read_states(2, []) == {}


async def test_markers_since_are_the_users_own_and_their_peers_newest_last(
    store: Store
) -> None:
    with trio.fail_after(TIMEOUT):
        await store.save([private(1, 1, 2), private(2, 2, 1), private(3, 3, 2), private(4, 3, 4),
                          in_group(5, 3, 9)], [])
        await store.mark_conversation_read(2, "private", 1, 1, event_id=20, at="t20")
        await store.mark_conversation_read(1, "private", 2, 2, event_id=21, at="t21")
        await store.mark_conversation_read(2, "group", 9, 5, event_id=22, at="t22")
        await store.mark_conversation_read(2, "private", 3, 3, event_id=23, at="t23")
        await store.mark_conversation_read(4, "private", 3, 4, event_id=24, at="t24")  # others'
        everything = await store.read_markers_since(2, 0, 10)
        assert everything == [
            ReadMarker(2, "private", 1, 1, 20, "t20"),
            ReadMarker(1, "private", 2, 2, 21, "t21"),  # bob's peer read their conversation
            ReadMarker(2, "group", 9, 5, 22, "t22"),
            ReadMarker(2, "private", 3, 3, 23, "t23"),
        ]
        assert await store.read_markers_since(2, 21, 10) == everything[2:]
        assert await store.read_markers_since(2, 0, 2) == everything[2:]  # the newest two
        # a marker that moves again is one marker, with its newest state
        await store.save([private(6, 1, 2)], [])
        await store.mark_conversation_read(2, "private", 1, 6, event_id=30, at="t30")
        assert await store.read_markers_since(2, 23, 10) == [
            ReadMarker(2, "private", 1, 6, 30, "t30")]


async def test_unread_counts_stop_at_the_cap(store: Store) -> None:
    from trionet.store import receipts

    with trio.fail_after(TIMEOUT):
        await store.save([private(i, 1, 2, f"m{i}") for i in range(1, receipts.UNREAD_CAP + 6)],
                         [])
        (conv,) = await store.conversation_page(2, limit=10, offset=0)
        assert conv.unread_count == receipts.UNREAD_CAP
        await store.mark_conversation_read(2, "private", 1, 4, event_id=99_999, at="t")
        (conv,) = await store.conversation_page(2, limit=10, offset=0)
        assert conv.unread_count == receipts.UNREAD_CAP  # 1,001 left: still "1,000 or more"
        await store.mark_conversation_read(2, "private", 1, 100, event_id=100_000, at="t")
        (conv,) = await store.conversation_page(2, limit=10, offset=0)
        assert conv.unread_count == receipts.UNREAD_CAP + 5 - 100
