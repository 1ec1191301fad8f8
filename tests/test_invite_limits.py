"""Abuse limits of invites and notifications, over real sockets: per-user invite and group
creation rates, one invite notification per group, and the bounded notification inbox."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import trio
from api_helpers import Api, api, error_of, quick_user

from trionet.core.errors import StoreUnavailable
from trionet.realtime.inbox import InboxPruner, KeyedLocks
from trionet.settings import Settings
from trionet.store.sqlite import SqliteStore
from trionet.store.sqlite.notifications import prune_inbox
from trionet.testing import TestUser, running_server

KEY = "test-server-api-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


def limited(r: httpx.Response) -> None:
    """A 429 in the one error shape, with a usable ``Retry-After`` (30 a minute: <= 2 s)."""
    assert r.status_code == 429, r.text
    assert error_of(r)["code"] == "too_many_requests"
    assert 1 <= int(r.headers["Retry-After"]) <= 2, r.headers


async def new_group(http: Api, owner: TestUser, name: str = "g") -> httpx.Response:
    return await http.post(owner, "/api/groups", json={"name": name})


async def invite(http: Api, inviter: TestUser, group_id: int, user_id: int) -> httpx.Response:
    return await http.post(inviter, "/api/groups/invite",
                           json={"group_id": group_id, "user_id": user_id})


async def withdraw(http: Api, owner: TestUser, group_id: int, user_id: int) -> httpx.Response:
    return await http.delete(owner, f"/api/groups/{group_id}/members/{user_id}")


async def notes(http: Api, user: TestUser) -> list[dict[str, Any]]:
    r = await http.get(user, "/api/notifications", limit=100)
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["notifications"]
    return found


def invites_of(items: list[dict[str, Any]], group_id: int) -> list[int]:
    return [n["id"] for n in items if n["subtype"] == "group_invite" and n["group_id"] == group_id]


async def until_limited(
    attempt: Callable[[int], Awaitable[httpx.Response]], rate: int, status: int = 201
) -> int:
    """Make ``rate`` attempts, each answered ``status``, then more until one is limited;
    returns that attempt's index (``rate`` unless the machine is slow).

    The limit is a token bucket refilling ``rate`` a minute: an attempt past the burst is
    allowed only for a token refilled since the first, which the elapsed time bounds.
    """
    started = time.monotonic()
    for i in range(rate):
        r = await attempt(i)
        assert r.status_code == status, (i, r.text)
    i = rate
    while (r := await attempt(i)).status_code == status:
        i += 1
        assert i - rate <= 1 + (time.monotonic() - started) * rate / 60, "never limited"
    limited(r)
    return i


async def test_the_31st_invite_in_a_minute_is_429_per_inviter() -> None:
    async with running_server(Settings(rate_limit=0, invite_rate=30)) as server, \
            api(server) as http:
        alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
        carol = await quick_user(server, "carol")
        users = [await quick_user(server, f"u{i}") for i in range(45)]
        with trio.fail_after(30):
            group_id = (await new_group(http, alice)).json()["id"]
            for member in (bob, carol):
                assert (await invite(http, alice, group_id, member.id)).status_code == 201
                r = await http.post(member, f"/api/groups/{group_id}/accept")
                assert r.status_code == 200
            # alice has spent 2 of her 30: 28 more, then the 31st is refused
            refused = 2 + await until_limited(
                lambda i: invite(http, alice, group_id, users[i].id), 28)
            # refused by the limit: nothing was changed, nobody was notified
            details = (await http.get(alice, f"/api/groups/{group_id}")).json()
            invited = {i["user_id"] for i in details["invited"]}
            assert users[refused - 2].id not in invited
            assert {u.id for u in users[:refused - 2]} <= invited
            assert await notes(http, users[refused - 2]) == []
            # the limit is the inviter's: bob's invites still go through
            assert (await invite(http, bob, group_id, users[-1].id)).status_code == 201
            # creating groups is limited separately
            assert (await new_group(http, alice)).status_code == 201
            # refused invites count too (no probing past the limit either)
            await until_limited(lambda i: invite(http, carol, group_id, 10**9 + i), 30, 404)


async def test_the_31st_group_creation_in_a_minute_is_429() -> None:
    settings = Settings(rate_limit=0, invite_rate=30, api_key=KEY)
    async with running_server(settings) as server, api(server) as http:
        alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
        with trio.fail_after(30):
            refused = await until_limited(lambda i: new_group(http, alice, f"g{i}"), 30)
            groups = (await http.get(alice, "/api/groups")).json()["groups"]
            assert len(groups) == refused  # the refused one was not created
            assert (await new_group(http, bob)).status_code == 201  # per user
            # invites are limited separately
            assert (await invite(http, alice, groups[0]["id"], bob.id)).status_code == 201
            # the server API is the trusted backend: never limited
            for gid in range(1000, 1040):
                r = await http.request(None, "PUT", f"/api/server/groups/{gid}", headers=AUTH,
                                       json={"name": "mirrored", "owner_id": alice.id,
                                             "members": [{"user_id": alice.id,
                                                          "status": "accepted"}]})
                assert r.status_code == 201, r.text


async def test_invite_rate_zero_turns_both_limits_off() -> None:
    async with running_server(Settings(rate_limit=0, invite_rate=0)) as server, \
            api(server) as http:
        alice = await quick_user(server, "alice")
        users = [await quick_user(server, f"u{i}") for i in range(40)]
        with trio.fail_after(30):
            for i in range(40):
                assert (await new_group(http, alice, f"g{i}")).status_code == 201
            group_id = (await new_group(http, alice)).json()["id"]
            for user in users:
                assert (await invite(http, alice, group_id, user.id)).status_code == 201


async def test_reinvites_and_withdrawals_leave_one_invite_notification() -> None:
    async with running_server(Settings(rate_limit=0, invite_rate=0)) as server, \
            api(server) as http:
        alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
        with trio.fail_after(30):
            group_id = (await new_group(http, alice, "your password expired")).json()["id"]
            other_id = (await new_group(http, alice, "other")).json()["id"]
            kept = (await invite(http, alice, other_id, bob.id)).json()["notification_id"]
            for _ in range(20):
                assert (await invite(http, alice, group_id, bob.id)).status_code == 201
                assert (await withdraw(http, alice, group_id, bob.id)).json()["removed"] == \
                    "invited"
            assert invites_of(await notes(http, bob), group_id) == []  # withdrawn: gone
            last = (await invite(http, alice, group_id, bob.id)).json()["notification_id"]
            items = await notes(http, bob)
            assert invites_of(items, group_id) == [last]
            assert invites_of(items, other_id) == [kept]  # another group's is untouched
            # declining removes it too
            assert (await http.post(bob, f"/api/groups/{group_id}/decline")).status_code == 200
            assert invites_of(await notes(http, bob), group_id) == []
            # accepted, removed, invited again: the first invite's notification is replaced
            first = (await invite(http, alice, group_id, bob.id)).json()["notification_id"]
            assert (await http.post(bob, f"/api/groups/{group_id}/accept")).status_code == 200
            assert invites_of(await notes(http, bob), group_id) == [first]  # accepting keeps it
            assert (await withdraw(http, alice, group_id, bob.id)).json()["removed"] == \
                "accepted"
            again = (await invite(http, alice, group_id, bob.id)).json()["notification_id"]
            assert invites_of(await notes(http, bob), group_id) == [again]
            # deleting the group withdraws its invites, notifications with them
            assert (await http.delete(alice, f"/api/groups/{group_id}")).status_code == 200
            assert invites_of(await notes(http, bob), group_id) == []
            assert invites_of(await notes(http, bob), other_id) == [kept]


async def test_concurrent_invites_and_withdrawals_never_leave_a_stale_notification() -> None:
    """A withdraw racing an invite's notification commit still finds that notification."""
    async with running_server(Settings(rate_limit=0, invite_rate=0)) as server, \
            api(server) as http:
        alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
        with trio.fail_after(30):
            group_id = (await new_group(http, alice)).json()["id"]
            for _ in range(15):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(invite, http, alice, group_id, bob.id)
                    nursery.start_soon(withdraw, http, alice, group_id, bob.id)
                pending = [i["group_id"] for i in
                           (await http.get(bob, "/api/groups")).json()["invites"]]
                held = invites_of(await notes(http, bob), group_id)
                assert len(held) == (1 if group_id in pending else 0), (pending, held)
                await withdraw(http, alice, group_id, bob.id)
                assert invites_of(await notes(http, bob), group_id) == []


async def test_inbox_keeps_the_newest_and_prunes_read_ones_first() -> None:
    settings = Settings(rate_limit=0, api_key=KEY, notification_inbox=5)
    async with running_server(settings) as server, api(server) as http:
        bob, carol = await quick_user(server, "bob"), await quick_user(server, "carol")

        async def notify(*users: TestUser) -> int:
            r = await http.request(None, "POST", "/api/server/notify", headers=AUTH, json={
                "user_ids": [u.id for u in users], "subtype": "test", "message": "m"})
            assert r.status_code == 201, r.text
            nid: int = r.json()["notifications"][0]["id"]  # the first user's
            return nid

        async def settled(user: TestUser, size: int) -> list[dict[str, Any]]:
            while len(items := await notes(http, user)) != size:
                await trio.sleep(0.02)
            return items

        with trio.fail_after(20):
            n = [await notify(bob, carol) for _ in range(2)]  # n[0], n[1]: stay unread
            for _ in range(6):  # n[2]..n[7]: read at once
                n.append(await notify(bob))
                r = await http.post(bob, "/api/notifications/read", json={"ids": [n[-1]]})
                assert r.json()["marked"] == 1
            # over the bound only read ones were pruned, oldest first: unread n[0], n[1] stay
            items = await settled(bob, 5)
            assert [i["id"] for i in items] == [n[7], n[6], n[5], n[1], n[0]]
            assert [i["read"] for i in items] == [True, True, True, False, False]
            for _ in range(4):  # n[8]..n[11], unread
                n.append(await notify(bob))
            # the read ones go first, then the oldest unread
            items = await settled(bob, 5)
            assert [i["id"] for i in items] == [n[11], n[10], n[9], n[8], n[1]]
            body = (await http.get(bob, "/api/notifications")).json()
            assert body["unread_count"] == 5
            # the bound is per user: carol's two are untouched
            assert [i["read"] for i in await notes(http, carol)] == [False, False]


async def test_pruner_sweeps_every_inbox_after_an_overflow_and_zero_keeps_all() -> None:
    with trio.fail_after(10), tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(str(Path(tmp) / "t.db"))
        db = store.db
        await store.migrate()
        try:
            await db.write(lambda conn: conn.executemany(
                "INSERT INTO notifications (id, user_id, subtype, message, read_at, created_at)"
                " VALUES (?, ?, 't', 'm', ?, 't')",
                [(i * 10 + uid, uid, "r" if i % 2 else None) for uid in (1, 2, 3)
                 for i in range(8)],
            ))
            assert await db.write(prune_inbox, 1, 0) == 0  # 0: keep all
            pruner = InboxPruner(store, bound=3, max_pending=1)
            pruner.touched([1, 2])  # more than the set holds: the next round sweeps all
            assert await pruner.prune_now() == 15
            counts = await db.read(lambda conn: conn.execute(
                "SELECT user_id, count(*), count(read_at) FROM notifications GROUP BY user_id"
            ).fetchall())
            # 8 each, 4 of them read: the 4 read went first, then the oldest unread
            assert [tuple(r) for r in counts] == [(1, 3, 0), (2, 3, 0), (3, 3, 0)]
            ids = await db.read(lambda conn: [r[0] for r in conn.execute(
                "SELECT id FROM notifications WHERE user_id = 1 ORDER BY id")])
            assert ids == [21, 41, 61]
            pruner.touched([1])
            assert await pruner.prune_now() == 0  # within the bound: nothing to do
            off = InboxPruner(store, bound=0)
            off.touched([1])
            assert await off.prune_now() == 0
        finally:
            await store.aclose()


class FlakyStore(SqliteStore):
    """A store whose first inbox count fails, as a locked database would."""

    failed = False

    async def inbox_sizes(self, user_ids: Any) -> Any:
        if not self.failed:
            self.failed = True
            raise StoreUnavailable("database unavailable: database is locked")
        return await super().inbox_sizes(user_ids)


async def test_a_failed_pruning_round_is_made_up_by_a_sweep() -> None:
    with trio.fail_after(10), tempfile.TemporaryDirectory() as tmp:
        store = FlakyStore(str(Path(tmp) / "t.db"))
        db = store.db
        await store.migrate()
        try:
            await db.write(lambda conn: conn.executemany(
                "INSERT INTO notifications (id, user_id, subtype, message, created_at)"
                " VALUES (?, 7, 't', 'm', 't')", [(i,) for i in range(1, 11)]))
            pruner = InboxPruner(store, bound=4, delay=0)
            pruner.RETRY_SECONDS = 0.01
            async with trio.open_nursery() as nursery:
                await nursery.start(pruner.run)
                pruner.touched([7])
                while pruner.pruned < 6:
                    await trio.sleep(0.01)
                nursery.cancel_scope.cancel()
            assert store.failed
            ids = await db.read(lambda conn: [r[0] for r in conn.execute(
                "SELECT id FROM notifications ORDER BY id")])
            assert ids == [7, 8, 9, 10]
        finally:
            await store.aclose()


async def test_keyed_locks_serialise_one_key_and_forget_idle_ones() -> None:
    locks = KeyedLocks()
    order: list[str] = []
    with trio.fail_after(5):
        async def hold(key: int, name: str, seconds: float) -> None:
            async with locks.hold(key):
                order.append(f"{name}+")
                await trio.sleep(seconds)
                order.append(f"{name}-")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(hold, 1, "a", 0.05)
            await trio.sleep(0.01)
            nursery.start_soon(hold, 1, "b", 0)
            nursery.start_soon(hold, 2, "c", 0)
        assert order.index("a-") < order.index("b+")  # same key: one at a time
        assert order.index("c+") < order.index("a-")  # another key: no waiting
        assert len(locks) == 0


async def test_accepting_an_invite_marks_its_notification_read() -> None:
    """The bell kept showing the invite as unread after the user accepted it."""
    from api_helpers import api, quick_user

    from trionet.testing import running_server

    async with running_server() as server:
        alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
        with trio.fail_after(10):
            async with api(server) as http:
                gid = (await http.post(alice, "/api/groups", json={"name": "g"})).json()["id"]
                other = (await http.post(alice, "/api/groups", json={"name": "h"})).json()["id"]
                for group in (gid, other):
                    invited = await http.post(alice, "/api/groups/invite",
                                              json={"group_id": group, "user_id": bob.id})
                    assert invited.status_code == 201
                before = (await http.get(bob, "/api/notifications")).json()
                accepted = await http.post(bob, f"/api/groups/{gid}/accept")
                after = (await http.get(bob, "/api/notifications")).json()
    assert before["unread_count"] == 2
    assert accepted.status_code == 200
    assert after["unread_count"] == 1
    read = {n["group_id"]: n["read"] for n in after["notifications"]}
    assert read == {gid: True, other: False}
