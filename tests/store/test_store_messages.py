"""Store conformance: messages, the replay plan, conversations and related users (each test
runs against every store)."""

from __future__ import annotations

import json
import random

import trio
from store_helpers import TIMEOUT, in_group, make_users, note, private

from trionet.interfaces import MessagePersister, MessageRecord, NotificationRecord
from trionet.store import Store


async def _page(store: Store, a: int, b: int, **kw: object) -> list[MessageRecord]:
    args = {"limit": 100, "offset": 0, "before_id": None, **kw}
    return await store.private_page(a, b, **args)  # type: ignore[arg-type]


async def test_a_store_is_a_message_persister(store: Store) -> None:
    assert isinstance(store, MessagePersister)


async def test_saved_records_read_back_equal(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        messages = [
            private(1, 1, 2, "héllo ✓", client_id="c1"),
            private(2, 2, 1, "back"),
            private(3, 1, 2, json.dumps({"x": [1, 2]}), subtype="app.poll"),
            in_group(4, 1, 9, "to the group", client_id="c2"),
        ]
        notes = [note(5, 2, "like", "liked ✓", {"post": 7, "nested": {"a": [1, None]}}),
                 note(6, 2, "plain")]
        assert not await store.save(messages, notes)
        assert await _page(store, 1, 2) == messages[2::-1]
        assert await _page(store, 2, 1) == messages[2::-1]
        assert await store.group_page(9, limit=10, offset=0, before_id=None) == [messages[3]]
        got, got_notes = await store.replay_page(2, [1, 2, 3], [5, 6])
        assert got == messages[:3]
        assert got_notes == notes
        assert await store.find_by_client_id(1, "c1") == messages[0]


async def test_saving_an_id_again_is_a_no_op(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        first = [private(1, 1, 2, "original", client_id="c"), in_group(2, 1, 9)]
        notes = [note(3, 2, message="original")]
        assert not await store.save(first, notes)
        changed = [private(1, 1, 2, "changed", client_id="c"), in_group(2, 1, 9, "changed")]
        assert not await store.save(changed, [note(3, 2, message="changed")])
        assert not await store.save(first + [private(4, 2, 1)], notes)  # a retried batch
        assert [m.content for m in await _page(store, 1, 2)] == ["hi", "original"]
        assert (await store.group_page(9, limit=10, offset=0, before_id=None))[0].content == "hi"
        assert [n["message"] for n in await store.notification_page(2, limit=10, offset=0)] == [
            "original"]
        assert await store.save([], []) in (None, {})


async def test_a_client_id_already_stored_under_another_id_is_reported_not_stored(
    store: Store,
) -> None:
    with trio.fail_after(TIMEOUT):
        original = private(10, 1, 2, "first", client_id="dup")
        await store.save([original], [])
        resend = private(20, 1, 2, "first", client_id="dup")
        other_sender = private(21, 3, 2, "mine", client_id="dup")
        fresh = private(22, 1, 2, "new", client_id="fresh")
        duplicates = await store.save([resend, other_sender, fresh], [note(23, 2)])
        assert duplicates == {(1, "dup"): (10, original.created_at)}
        assert [m.id for m in await _page(store, 1, 2)] == [22, 10]
        assert [m.id for m in await _page(store, 3, 2)] == [21]
        assert len(await store.notification_page(2, limit=10, offset=0)) == 1
        # two under one client id in one batch: the first is kept, the second reported
        duplicates = await store.save([private(30, 5, 6, client_id="x"),
                                       private(31, 5, 6, client_id="x")], [])
        assert duplicates == {(5, "x"): (30, private(30, 5, 6).created_at)}
        assert [m.id for m in await _page(store, 5, 6)] == [30]
        # messages without a client id never clash
        assert not await store.save([private(40, 5, 6), private(41, 5, 6)], [])


async def test_find_by_client_id(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        stored = in_group(1, 4, 9, client_id="abc")
        await store.save([stored, private(2, 5, 4, client_id="abc")], [])
        assert await store.find_by_client_id(4, "abc") == stored
        assert (await store.find_by_client_id(5, "abc")).id == 2  # type: ignore[union-attr]
        assert await store.find_by_client_id(4, "ABC") is None
        assert await store.find_by_client_id(6, "abc") is None


async def test_pages_are_newest_first_with_offset_and_before_id(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        await store.save([private(i, 1 + i % 2, 2 - i % 2) for i in range(1, 11)]
                         + [private(11, 1, 3), in_group(12, 1, 9), in_group(13, 2, 8)], [])
        ids = [m.id for m in await _page(store, 1, 2)]
        assert ids == list(range(10, 0, -1))
        assert [m.id for m in await _page(store, 2, 1, limit=3, offset=2)] == [8, 7, 6]
        assert [m.id for m in await _page(store, 1, 2, limit=3, before_id=5)] == [4, 3, 2]
        assert [m.id for m in await _page(store, 1, 2, limit=2, offset=1, before_id=5)] == [3, 2]
        assert await _page(store, 1, 2, before_id=1) == []
        assert [m.id for m in await _page(store, 1, 3)] == [11]
        assert await _page(store, 2, 3) == []
        assert [m.id for m in await store.group_page(9, limit=5, offset=0, before_id=None)] == [12]
        assert await store.group_page(9, limit=5, offset=0, before_id=12) == []
        assert await store.group_page(9, limit=5, offset=1, before_id=None) == []


async def test_a_self_conversation_is_one_page(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        await store.save([private(1, 4, 4, "note to self")], [])
        assert [m.id for m in await _page(store, 4, 4)] == [1]
        (conv,) = await store.conversation_page(4, limit=10, offset=0)
        assert conv.peer_id == 4 and conv.last_message.id == 1


async def test_replay_sizes_counts_bytes_of_what_the_user_may_see(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        owner, user = await make_users(store, "owner", "user")
        member_of = (await store.create_group(owner, "in", [user]))["id"]
        invited_to = (await store.create_group(owner, "invited"))["id"]
        await store.invite(invited_to, owner, user)
        payload = {"text": "é", "n": [1, 2]}
        await store.save(
            [private(10, owner, user, "é"),            # 2 bytes
             private(11, user, owner, "abc"),          # sent by the user
             private(12, owner, 99, "not theirs"),
             in_group(13, owner, member_of, "✓✓"),     # 6 bytes
             in_group(14, owner, invited_to, "not yet a member")],
            [note(20, user, message="hé", payload=payload), note(21, owner)],
        )
        msgs, notes = await store.replay_sizes(user, since=0, since_notification=0, limit=10)
        assert msgs == [(13, 6), (11, 3), (10, 2)]
        assert notes == [(20, len("hé".encode()) + len(json.dumps(payload).encode()))]
        msgs, notes = await store.replay_sizes(user, since=10, since_notification=None, limit=10)
        assert msgs == [(13, 6), (11, 3)] and notes == []
        assert await store.replay_sizes(user, since=13, since_notification=20,
                                        limit=10) == ([], [])
        await store.accept_invite(invited_to, user)
        msgs, _ = await store.replay_sizes(user, since=0, since_notification=None, limit=10)
        assert [i for i, _ in msgs] == [14, 13, 11, 10]


async def test_replay_sizes_returns_at_most_limit_plus_one_of_each_kind(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        owner, user = await make_users(store, "owner", "user")
        g1 = (await store.create_group(owner, "g1", [user]))["id"]
        g2 = (await store.create_group(owner, "g2", [user]))["id"]
        messages = []
        for i in range(1, 41):
            kind = i % 4
            if kind == 0:
                messages.append(private(i, owner, user))
            elif kind == 1:
                messages.append(private(i, user, owner))
            else:
                messages.append(in_group(i, owner, g1 if kind == 2 else g2))
        await store.save(messages, [note(100 + i, user) for i in range(10)])
        msgs, notes = await store.replay_sizes(user, since=0, since_notification=0, limit=5)
        assert [i for i, _ in msgs] == list(range(40, 34, -1))
        assert [i for i, _ in notes] == list(range(109, 103, -1))
        msgs, _ = await store.replay_sizes(user, since=37, since_notification=None, limit=5)
        assert [i for i, _ in msgs] == [40, 39, 38]


async def test_replay_page_leaves_out_what_the_user_may_not_see(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        owner, user = await make_users(store, "owner", "user")
        gid = (await store.create_group(owner, "g", [user]))["id"]
        other = (await store.create_group(owner, "other"))["id"]
        visible = [private(1, owner, user), private(2, user, owner), in_group(4, owner, gid)]
        await store.save(visible + [private(3, owner, 77), in_group(5, owner, other)],
                         [note(10, user), note(11, owner), note(12, user)])
        msgs, notes = await store.replay_page(user, [5, 4, 3, 2, 1, 999], [12, 11, 10, 998])
        assert msgs == visible
        assert [n.id for n in notes] == [10, 12]
        assert all(isinstance(n, NotificationRecord) and n.user_id == user for n in notes)
        assert await store.replay_page(user, [], []) == ([], [])
        await store.leave(gid, user)  # no longer a member: its messages are left out
        msgs, _ = await store.replay_page(user, [1, 2, 4], [])
        assert [m.id for m in msgs] == [1, 2]


async def test_conversations_are_most_recent_first_with_offset_and_before_id(
    store: Store,
) -> None:
    with trio.fail_after(TIMEOUT):
        me, a, b = await make_users(store, "me", "a", "b")
        unknown = 404  # no user row: the conversation has no peer username
        await store.save([private(1, me, a), private(2, b, me), private(3, me, unknown),
                          private(4, a, me, "latest with a"), in_group(5, me, 9),
                          private(6, a, b)], [])
        page = await store.conversation_page(me, limit=10, offset=0)
        assert [(c.peer_id, c.peer_username, c.last_message.id) for c in page] == [
            (a, "a", 4), (unknown, None, 3), (b, "b", 2)]
        assert page[0].last_message == private(4, a, me, "latest with a")
        assert [c.peer_id for c in await store.conversation_page(me, limit=1, offset=1)] == [
            unknown]
        assert [c.peer_id for c in await store.conversation_page(me, limit=10, offset=0,
                                                                 before_id=4)] == [unknown, b]
        assert [c.peer_id for c in await store.conversation_page(b, limit=10, offset=0)] == [a, me]
        # an older message saved late (a retried batch) does not move the conversation back
        await store.save([private(0, me, b)], [])
        assert [c.last_message.id for c in await store.conversation_page(
            me, limit=10, offset=0)] == [4, 3, 2]


async def test_related_users_share_a_group_or_a_conversation_both_sides_wrote(
    store: Store,
) -> None:
    with trio.fail_after(TIMEOUT):
        me, mate, invitee, pen_pal, stranger, fan = await make_users(
            store, "me", "mate", "invitee", "pen_pal", "stranger", "fan")
        gid = (await store.create_group(me, "g", [mate]))["id"]
        await store.invite(gid, me, invitee)
        await store.save([private(1, me, pen_pal), private(2, pen_pal, me),
                          private(3, fan, me), private(4, me, stranger),
                          private(5, me, me)], [])

        def everyone(uid: int) -> bool:
            return True

        related = await store.related_users(me, wanted=everyone, limit=100)
        assert sorted(related) == sorted([mate, pen_pal])
        assert len(related) == len(set(related))
        assert await store.related_users(fan, wanted=everyone, limit=100) == []
        assert await store.related_users(mate, wanted=everyone, limit=100) == [me]
        assert await store.related_users(me, wanted=lambda u: u != mate, limit=100) == [pen_pal]
        one = await store.related_users(me, wanted=everyone, limit=1)
        assert len(one) == 1 and one[0] in (mate, pen_pal)
        assert await store.related_users(me, wanted=everyone, limit=0) == []
        # once the fan is answered, both sides have written
        await store.save([private(6, me, fan)], [])
        assert fan in await store.related_users(me, wanted=everyone, limit=100)


async def test_wrote_counts_a_message_older_than_the_latest(store: Store) -> None:
    """A retried batch may store a user's message after a newer one from the peer."""
    with trio.fail_after(TIMEOUT):
        a, b = await make_users(store, "a", "b")
        await store.save([private(10, b, a)], [])
        assert await store.related_users(a, wanted=lambda u: True, limit=10) == []
        await store.save([private(5, a, b)], [])
        assert await store.related_users(a, wanted=lambda u: True, limit=10) == [b]
        assert await store.related_users(b, wanted=lambda u: True, limit=10) == [a]


async def test_related_users_reads_past_many_unwanted(store: Store) -> None:
    with trio.fail_after(TIMEOUT * 2):
        me = (await store.create_user("me", None)).id
        members = list(range(1000, 1600))
        await store.upsert_group(1, "big", [(me, "accepted"), *((u, "accepted")
                                                                for u in members)], me)
        wanted = {1590, 1599}
        found = await store.related_users(me, wanted=lambda u: u in wanted, limit=5)
        assert sorted(found) == sorted(wanted)


async def test_concurrent_saves_of_one_batch_store_it_once(store: Store) -> None:
    batch = [private(i, 1 + i % 3, 1 + (i + 1) % 3, client_id=f"c{i}") for i in range(1, 50)]
    notes = [note(100 + i, 1 + i % 3) for i in range(20)]
    results: list[object] = []

    async def save() -> None:
        results.append(await store.save(batch, notes))

    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(save)
        assert all(not r for r in results) and len(results) == 4
        total = 0
        for a, b in ((1, 2), (2, 3), (1, 3)):
            total += len(await _page(store, a, b))
        assert total == len(batch)
        assert sum((await store.inbox_sizes([1, 2, 3])).values()) == len(notes)


async def test_replay_sizes_matches_every_visible_message_newest_first(store: Store) -> None:
    """The replay plan against a plain reading of the rules, over many conversations in both
    directions, ids committed out of order (as on several nodes), a group, other users'
    messages, every cursor and limits below and above the number of conversations."""
    rng = random.Random(7)
    with trio.fail_after(TIMEOUT):
        user, *others = await make_users(store, "user", *(f"o{i}" for i in range(12)))
        gid = (await store.create_group(others[0], "g", [user]))["id"]
        ids = list(range(1, 301))
        rng.shuffle(ids)  # commit order is not id order
        visible: list[int] = []
        batches: list[list[MessageRecord]] = [[] for _ in range(10)]
        for mid in ids:
            roll = rng.random()
            a, b = rng.sample(others, 2)
            if roll < 0.35:
                record, seen = private(mid, a, user), True
            elif roll < 0.6:
                record, seen = private(mid, user, a), True
            elif roll < 0.65:
                record, seen = private(mid, user, user), True  # a note to self
            elif roll < 0.8:
                record, seen = in_group(mid, a, gid), True
            else:
                record, seen = private(mid, a, b), False
            batches[mid % 10].append(record)
            if seen:
                visible.append(mid)
        for batch in batches:
            await store.save(batch, [])
        visible.sort(reverse=True)
        for since in (0, 1, 57, 150, 299, 300):
            after = [i for i in visible if i > since]
            for limit in (1, 3, 12, 40, 1000):
                msgs, _ = await store.replay_sizes(user, since=since, since_notification=None,
                                                   limit=limit)
                assert [i for i, _ in msgs] == after[:limit + 1], (since, limit)


async def test_expiring_walks_the_oldest_in_batches_and_takes_their_conversations(
    store: Store
) -> None:
    with trio.fail_after(TIMEOUT):
        await store.save([private(1, 1, 2), private(2, 3, 2), private(3, 1, 2), private(4, 2, 1),
                          private(9, 5, 6)], [note(1, 2), note(2, 2), note(8, 2)])
        assert await store.expire_messages(5, 2) == 2  # ids 1 and 2
        assert await store.expire_messages(5, 2) == 2  # 3 and 4
        assert await store.expire_messages(5, 2) == 0
        assert [m.id for m in await _page(store, 1, 2)] == []
        assert [m.id for m in await _page(store, 5, 6)] == [9]
        # every conversation whose latest message went is gone; the others stay
        assert [c.peer_id for c in await store.conversation_page(2, limit=10, offset=0)] == []
        assert [c.peer_id for c in await store.conversation_page(6, limit=10, offset=0)] == [5]
        assert await store.expire_notifications(5, 1) == 1
        assert await store.expire_notifications(5, 10) == 1
        assert [n["id"] for n in await store.notification_page(2, limit=10, offset=0)] == [8]
