"""Store conformance: groups, memberships and invites (each test runs against every store)."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from store_helpers import TIMEOUT, in_group, invite_note, make_users, note

from trionet.store import GroupRefused, LeaveOutcome, Refusal, Store


async def _snapshot(store: Store, group_id: int, users: list[int]) -> Any:
    """Everything a group operation could change, as seen through the store."""
    per_user = []
    for uid in users:
        per_user.append((await store.groups_of(uid),
                         await store.notification_page(uid, limit=100, offset=0)))
    return await store.accepted_members(group_id), per_user


async def _refused(store: Store, reason: Refusal, call: Any, group_id: int,
                   users: list[int]) -> None:
    before = await _snapshot(store, group_id, users)
    with pytest.raises(GroupRefused) as caught:
        await call
    assert caught.value.reason is reason
    assert caught.value.message and str(caught.value) == caught.value.message
    assert await _snapshot(store, group_id, users) == before


async def test_a_new_group_has_its_owner_and_members_accepted(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        owner, a, b = await make_users(store, "owner", "a", "b")
        group = await store.create_group(owner, "g", [a, b, a, owner])
        assert set(group) == {"id", "name", "owner_id", "created_at"}
        assert (group["name"], group["owner_id"]) == ("g", owner)
        assert await store.accepted_members(group["id"]) == frozenset({owner, a, b})
        assert await store.accepted_members(group["id"] + 100) is None
        details = await store.group_details(group["id"], a)
        assert {k: details[k] for k in group} == group
        assert [m["user_id"] for m in details["members"]] == [owner, a, b]
        assert details["invited"] == []
        empty = await store.create_group(a, "solo")
        assert empty["id"] > group["id"]
        assert await store.accepted_members(empty["id"]) == frozenset({a})


async def test_groups_of_lists_memberships_and_invites_by_group_id(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        owner, a, b = await make_users(store, "owner", "a", "b")
        g1 = await store.create_group(owner, "one", [a])
        g2 = await store.create_group(owner, "two")
        g3 = await store.create_group(b, "three")
        await store.invite(g2["id"], owner, a)
        await store.invite(g3["id"], b, a)
        groups, invites = await store.groups_of(a)
        assert [g["id"] for g in groups] == [g1["id"]]
        assert groups[0]["member_count"] == 2 and groups[0]["name"] == "one"
        assert groups[0]["owner_id"] == owner and groups[0]["joined_at"]
        assert [(i["group_id"], i["group_name"], i["invited_by"]) for i in invites] == [
            (g2["id"], "two", owner), (g3["id"], "three", b)]
        assert all(i["invited_at"] for i in invites)
        assert await store.groups_of(12345) == ([], [])


async def test_group_details_shows_members_then_invitees_to_members_only(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        owner, a, b = await make_users(store, "owner", "a", "b")
        group = await store.create_group(owner, "g")
        gid = group["id"]
        await store.invite(gid, owner, a)
        details = await store.group_details(gid, owner)
        assert [(m["user_id"], m["username"]) for m in details["members"]] == [(owner, "owner")]
        assert [(i["user_id"], i["username"], i["invited_by"]) for i in details["invited"]] == [
            (a, "a", owner)]
        for outsider in (a, b):  # an invitee is not a member yet
            with pytest.raises(GroupRefused) as caught:
                await store.group_details(gid, outsider)
            assert caught.value.reason is Refusal.NOT_MEMBER
        with pytest.raises(GroupRefused) as caught:
            await store.group_details(gid + 1, owner)
        assert caught.value.reason is Refusal.NO_GROUP


async def test_an_invite_is_accepted_and_its_notification_marked_read(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        owner, a = await make_users(store, "owner", "a")
        group = await store.create_group(owner, "g")
        gid = group["id"]
        assert await store.invite(gid, owner, a) == "g"
        await store.save([], [invite_note(10, a, gid), invite_note(11, a, gid + 1),
                              note(12, a, "other", payload={"group_id": gid})])
        await store.accept_invite(gid, a)
        assert await store.accepted_members(gid) == frozenset({owner, a})
        read = {n["id"]: n["read"] for n in await store.notification_page(a, limit=10, offset=0)}
        assert read == {10: True, 11: False, 12: False}  # only this group's invite
        assert await store.unread_count(a) == 2


async def test_a_declined_invite_goes_with_its_notification(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        owner, a = await make_users(store, "owner", "a")
        gid = (await store.create_group(owner, "g"))["id"]
        other = (await store.create_group(owner, "other"))["id"]
        await store.invite(gid, owner, a)
        await store.save([], [invite_note(10, a, gid), invite_note(11, a, other)])
        await store.decline_invite(gid, a)
        assert await store.groups_of(a) == ([], [])
        assert [n["id"] for n in await store.notification_page(a, limit=10, offset=0)] == [11]
        await store.invite(gid, owner, a)  # may be invited again
        assert [i["group_id"] for i in (await store.groups_of(a))[1]] == [gid]


async def test_a_new_invite_replaces_the_earlier_invite_notification(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        owner, a, b = await make_users(store, "owner", "a", "b")
        gid = (await store.create_group(owner, "g"))["id"]
        await store.invite(gid, owner, a)
        await store.save([], [invite_note(10, a, gid), invite_note(11, b, gid)])
        assert await store.remove_member(gid, owner, a) == "invited"  # withdrawn
        assert await store.notification_page(a, limit=10, offset=0) == []
        # an invite notification saved after the withdrawal (a late commit) ...
        await store.save([], [invite_note(12, a, gid)])
        await store.invite(gid, owner, a)  # ... goes when the user is invited again
        assert await store.notification_page(a, limit=10, offset=0) == []
        assert [n["id"] for n in await store.notification_page(b, limit=10, offset=0)] == [11]


async def test_every_refusal_reason_changes_nothing(store: Store) -> None:
    with trio.fail_after(TIMEOUT * 2):
        owner, member, invitee, outsider = await make_users(
            store, "owner", "member", "invitee", "outsider")
        gid = (await store.create_group(owner, "g", [member]))["id"]
        await store.invite(gid, owner, invitee)
        await store.save([], [invite_note(10, invitee, gid)])
        users = [owner, member, invitee, outsider]
        missing = gid + 100
        cases = [
            (Refusal.NO_GROUP, store.invite(missing, owner, outsider)),
            (Refusal.NO_GROUP, store.accept_invite(missing, invitee)),
            (Refusal.NO_GROUP, store.decline_invite(missing, invitee)),
            (Refusal.NO_GROUP, store.leave(missing, owner)),
            (Refusal.NO_GROUP, store.rename(missing, owner, "x")),
            (Refusal.NO_GROUP, store.remove_member(missing, owner, member)),
            (Refusal.NO_GROUP, store.delete_group(missing, owner)),
            (Refusal.NO_USER, store.invite(gid, owner, 9999)),
            (Refusal.NOT_MEMBER, store.invite(gid, outsider, member)),
            (Refusal.NOT_MEMBER, store.invite(gid, invitee, outsider)),
            (Refusal.NOT_MEMBER, store.leave(gid, outsider)),
            (Refusal.NOT_MEMBER, store.leave(gid, invitee)),
            (Refusal.NOT_OWNER, store.rename(gid, member, "x")),
            (Refusal.NOT_OWNER, store.remove_member(gid, member, invitee)),
            (Refusal.NOT_OWNER, store.delete_group(gid, member)),
            (Refusal.NO_INVITE, store.accept_invite(gid, outsider)),
            (Refusal.NO_INVITE, store.decline_invite(gid, outsider)),
            (Refusal.NO_MEMBERSHIP, store.remove_member(gid, owner, outsider)),
            (Refusal.ALREADY_MEMBER, store.invite(gid, owner, member)),
            (Refusal.ALREADY_MEMBER, store.accept_invite(gid, member)),
            (Refusal.ALREADY_MEMBER, store.decline_invite(gid, member)),
            (Refusal.ALREADY_INVITED, store.invite(gid, member, invitee)),
            (Refusal.OWNER_CANNOT, store.remove_member(gid, owner, owner)),
        ]
        assert {reason for reason, _ in cases} == set(Refusal)
        for reason, call in cases:
            await _refused(store, reason, call, gid, users)
        assert (await store.group_details(gid, owner))["name"] == "g"


async def test_the_owner_leaving_hands_the_group_to_the_longest_standing_member(
    store: Store,
) -> None:
    with trio.fail_after(TIMEOUT):
        owner, b, c, d = await make_users(store, "owner", "b", "c", "d")
        gid = (await store.create_group(owner, "g"))["id"]
        for uid in (d, c):  # d accepts first: longest standing after the owner
            await store.invite(gid, owner, uid)
            await trio.sleep(0.01)  # accepted_at has millisecond resolution
            await store.accept_invite(gid, uid)
        await store.invite(gid, owner, b)  # invited, not accepted: never the successor
        assert await store.leave(gid, owner) == LeaveOutcome(new_owner=d, deleted=False)
        details = await store.group_details(gid, d)
        assert details["owner_id"] == d
        assert [m["user_id"] for m in details["members"]] == [d, c]
        # a member who is not the owner leaves: ownership stays
        assert await store.leave(gid, c) == LeaveOutcome(new_owner=None, deleted=False)
        assert (await store.group_details(gid, d))["owner_id"] == d


async def test_members_joined_together_hand_over_by_lowest_id(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        owner, x, y = await make_users(store, "owner", "x", "y")
        gid = (await store.create_group(owner, "g", [y, x]))["id"]
        assert await store.leave(gid, owner) == LeaveOutcome(new_owner=x, deleted=False)


async def test_the_last_member_leaving_deletes_the_group_and_its_invites(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        owner, invitee = await make_users(store, "owner", "invitee")
        gid = (await store.create_group(owner, "g"))["id"]
        await store.invite(gid, owner, invitee)
        await store.save([in_group(5, owner, gid)], [invite_note(10, invitee, gid)])
        assert await store.leave(gid, owner) == LeaveOutcome(new_owner=None, deleted=True)
        assert await store.accepted_members(gid) is None
        assert await store.groups_of(invitee) == ([], [])
        assert await store.notification_page(invitee, limit=10, offset=0) == []
        # messages stay stored
        assert [m.id for m in await store.group_page(gid, limit=10, offset=0,
                                                     before_id=None)] == [5]


async def test_rename_and_remove_a_member(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        owner, a = await make_users(store, "owner", "a")
        group = await store.create_group(owner, "g", [a])
        gid = group["id"]
        renamed = await store.rename(gid, owner, "new name")
        assert renamed == {**group, "name": "new name"}
        assert (await store.group_details(gid, a))["name"] == "new name"
        assert await store.remove_member(gid, owner, a) == "accepted"
        assert await store.accepted_members(gid) == frozenset({owner})


async def test_delete_group_takes_memberships_and_pending_invite_notifications(
    store: Store,
) -> None:
    with trio.fail_after(TIMEOUT):
        owner, member, invitee = await make_users(store, "owner", "member", "invitee")
        gid = (await store.create_group(owner, "g", [member]))["id"]
        await store.invite(gid, owner, invitee)
        await store.save([in_group(5, owner, gid)],
                         [invite_note(10, invitee, gid), note(11, member, "other")])
        await store.delete_group(gid, owner)
        assert await store.accepted_members(gid) is None
        for uid in (owner, member, invitee):
            assert await store.groups_of(uid) == ([], [])
        assert await store.notification_page(invitee, limit=10, offset=0) == []
        assert len(await store.notification_page(member, limit=10, offset=0)) == 1
        assert len(await store.group_page(gid, limit=10, offset=0, before_id=None)) == 1


async def test_upsert_group_creates_then_replaces_the_whole_membership(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        owner = (await store.create_user("owner", None)).id
        assert await store.upsert_group(100, "backend", [(owner, "accepted"), (8, "accepted"),
                                                         (9, "invited")], owner) is True
        assert await store.accepted_members(100) == frozenset({owner, 8})
        assert (await store.get_user(9)).username == "user9"  # type: ignore[union-attr]
        joined = {m["user_id"]: m["joined_at"]
                  for m in (await store.group_details(100, owner))["members"]}
        await trio.sleep(0.01)
        assert await store.upsert_group(100, "renamed", [(8, "accepted"), (9, "accepted"),
                                                         (10, "invited")], 8) is False
        details = await store.group_details(100, 8)
        assert (details["name"], details["owner_id"]) == ("renamed", 8)
        members = {m["user_id"]: m["joined_at"] for m in details["members"]}
        assert set(members) == {8, 9}
        assert members[8] == joined[8]  # stayed accepted: keeps when it joined
        assert members[9] > joined[8]
        assert [i["user_id"] for i in details["invited"]] == [10]
        assert await store.accepted_members(100) == frozenset({8, 9})
        # explicit group ids move the next created group's id past them
        assert (await store.create_group(owner, "next"))["id"] == 101
        assert await store.upsert_group(101, "taken over", [], None) is False
        assert await store.accepted_members(101) == frozenset()


async def test_upsert_group_with_a_user_listed_twice_keeps_the_last_entry(
    store: Store,
) -> None:
    with trio.fail_after(TIMEOUT):
        assert await store.upsert_group(5, "g", [(1, "accepted"), (2, "accepted"),
                                                 (2, "invited")], 1)
        details = await store.group_details(5, 1)
        assert [m["user_id"] for m in details["members"]] == [1]
        assert [i["user_id"] for i in details["invited"]] == [2]
        assert not await store.upsert_group(5, "g", [(1, "accepted"), (2, "invited"),
                                                     (2, "accepted")], 1)
        assert await store.accepted_members(5) == frozenset({1, 2})


async def test_a_failed_write_changes_nothing(store: Store) -> None:
    """A group with a member who is no user is refused by the database as a whole."""
    with trio.fail_after(TIMEOUT):
        owner = (await store.create_user("owner", None)).id
        with pytest.raises(Exception) as caught:  # the driver's integrity error
            await store.create_group(owner, "g", [owner, 9999])
        assert "GroupRefused" not in type(caught.value).__name__
        assert await store.groups_of(owner) == ([], [])
        assert (await store.create_group(owner, "g"))["id"] >= 1


async def test_upsert_group_with_an_owner_outside_the_members(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        assert await store.upsert_group(7, "g", [(2, "accepted")], 3) is True
        assert await store.get_user(3) is not None
        details = await store.group_details(7, 2)
        assert details["owner_id"] == 3
        assert [m["user_id"] for m in details["members"]] == [2]


async def test_upsert_group_may_make_a_password_account_a_member(store: Store) -> None:
    """Password accounts are users too: upsert_group may make them members."""
    with trio.fail_after(TIMEOUT):
        registered = await store.create_user("reg", "hash")
        assert await store.upsert_group(3, "g", [(registered.id, "accepted")], None)
        assert await store.accepted_members(3) == frozenset({registered.id})
        assert await store.get_user(registered.id) == registered


async def test_concurrent_invites_of_one_user_make_one_invite(store: Store) -> None:
    outcomes: list[str] = []

    async def invite(inviter: int) -> None:
        try:
            await store.invite(gid, inviter, target)
            outcomes.append("invited")
        except GroupRefused as exc:
            outcomes.append(exc.reason.value)

    with trio.fail_after(TIMEOUT):
        owner, a, b, target = await make_users(store, "owner", "a", "b", "target")
        gid = (await store.create_group(owner, "g", [a, b]))["id"]
        async with trio.open_nursery() as nursery:
            for inviter in (owner, a, b):
                nursery.start_soon(invite, inviter)
        assert sorted(outcomes) == ["already_invited", "already_invited", "invited"]


async def test_concurrent_leaves_never_strand_a_group(store: Store) -> None:
    outcomes: list[LeaveOutcome] = []

    async def leave(uid: int) -> None:
        outcomes.append(await store.leave(gid, uid))

    with trio.fail_after(TIMEOUT):
        users = await make_users(store, *(f"u{i}" for i in range(5)))
        gid = (await store.create_group(users[0], "g", users[1:]))["id"]
        async with trio.open_nursery() as nursery:
            for uid in users:
                nursery.start_soon(leave, uid)
        assert sum(o.deleted for o in outcomes) == 1
        assert await store.accepted_members(gid) is None
