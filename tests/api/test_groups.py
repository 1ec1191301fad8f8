"""Groups and invites over HTTP, with live routing checked over real WebSockets."""

from __future__ import annotations

import httpx
import trio
from api_helpers import Api, api, error_of, make_group, next_of_type, quick_user, recv, send

from trionet.testing import TestServer, TestUser


async def invite(http: Api, inviter: TestUser, group_id: int, user: TestUser) -> httpx.Response:
    return await http.post(inviter, "/api/groups/invite", json={
        "group_id": group_id, "user_id": user.id, "group_name": "Developers"})


async def join(http: Api, owner: TestUser, group_id: int, *users: TestUser) -> None:
    for user in users:
        assert (await invite(http, owner, group_id, user)).status_code == 201
        assert (await http.post(user, f"/api/groups/{group_id}/accept")).status_code == 200


def code(response: httpx.Response) -> str:
    return error_of(response)["code"]


async def test_create_group_makes_the_caller_owner_and_first_member(server: TestServer) -> None:
    alice = await quick_user(server, "alice")
    with trio.fail_after(10):
        async with api(server) as http:
            r = await http.post(alice, "/api/groups", json={"name": "  Developers "})
            assert r.status_code == 201
            group = r.json()
            assert group["name"] == "Developers" and group["owner_id"] == alice.id
            assert group["member_count"] == 1 and group["created_at"].endswith("Z")
            listed = (await http.get(alice, "/api/groups")).json()
            assert [g["id"] for g in listed["groups"]] == [group["id"]]
            assert listed["groups"][0]["member_count"] == 1 and listed["invites"] == []
            details = (await http.get(alice, f"/api/groups/{group['id']}")).json()
            assert [m["user_id"] for m in details["members"]] == [alice.id]
            assert details["members"][0]["username"] == "alice" and details["invited"] == []


async def test_create_group_validates_the_body(server: TestServer) -> None:
    alice = await quick_user(server, "alice")
    with trio.fail_after(10):
        async with api(server) as http:
            for body in ({"name": ""}, {"name": "   "}, {"name": "x" * 101}, {}, {"name": 5},
                         {"name": "ok", "extra": 1}, {"name": "bad\u0000name"}, []):
                r = await http.post(alice, "/api/groups", json=body)
                assert r.status_code == 400, body
                assert code(r) == "bad_request"
            r = await http.post(alice, "/api/groups", content=b"{not json")
            assert r.status_code == 415  # no JSON content type
            r = await http.post(alice, "/api/groups", content=b"{not json",
                                headers={"Content-Type": "application/json"})
            assert r.status_code == 400
            r = await http.post(alice, "/api/groups", json={"name": "x"},
                                headers={"Origin": "https://evil.example"})
            assert r.status_code == 403 and code(r) == "forbidden"
            assert (await http.post(None, "/api/groups", json={"name": "x"})).status_code == 401
            assert (await http.get(None, "/api/groups")).status_code == 401
            assert (await http.get(alice, "/api/groups")).json()["groups"] == []


async def test_invite_flow_end_to_end(server: TestServer) -> None:
    alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
    with trio.fail_after(15):
        async with api(server) as http, server.connect(alice) as wa, \
                server.connect(bob) as wb, server.connect(bob) as wb2:
            group_id = await make_group(http, alice, name="Developers")
            # A invites B: every open connection of B receives the notification live
            r = await invite(http, alice, group_id, bob)
            assert r.status_code == 201 and r.json()["status"] == "invited"
            note = await next_of_type(wb, "notification")
            assert note["subtype"] == "group_invite"
            assert note["message"] == "You were invited to join group 'Developers'"
            assert note["group_id"] == group_id and note["id"] == r.json()["notification_id"]
            assert note["timestamp"].endswith("Z")
            assert (await next_of_type(wb2, "notification"))["id"] == note["id"]

            # the invite is listed, and the notification shows unread, then read
            listed = (await http.get(bob, "/api/groups")).json()
            assert listed["groups"] == []
            assert [i["group_id"] for i in listed["invites"]] == [group_id]
            assert listed["invites"][0]["invited_by"] == alice.id
            assert listed["invites"][0]["group_name"] == "Developers"
            notes = (await http.get(bob, "/api/notifications")).json()
            assert notes["unread_count"] == 1
            item = notes["notifications"][0]
            assert item["read"] is False
            assert {k: v for k, v in item.items() if k != "read"} == note
            r = await http.post(bob, "/api/notifications/read")
            assert r.status_code == 200 and r.json()["unread_count"] == 0
            notes = (await http.get(bob, "/api/notifications")).json()
            assert notes["unread_count"] == 0 and notes["notifications"][0]["read"] is True

            # before accepting, B is not a member: cannot send, cannot read history
            await send(wb, {"type": "group", "group_id": group_id, "content": "early"})
            assert (await next_of_type(wb, "error"))["code"] == "not_member"
            r = await http.get(bob, "/api/messages/group", group=group_id)
            assert r.status_code == 403

            # B accepts: the next group message reaches every connection of B live
            r = await http.post(bob, f"/api/groups/{group_id}/accept")
            assert r.status_code == 200 and r.json()["status"] == "accepted"
            await send(wa, {"type": "group", "group_id": group_id, "content": "welcome"})
            got = await next_of_type(wb, "group")
            assert got["content"] == "welcome" and got["from"] == alice.id
            assert (await next_of_type(wb2, "group"))["id"] == got["id"]
            r = await http.get(bob, "/api/messages/group", group=group_id)
            assert [m["id"] for m in r.json()["messages"]] == [got["id"]]

            # B leaves: nothing more reaches B, and B can no longer send or read
            r = await http.post(bob, f"/api/groups/{group_id}/leave")
            assert r.status_code == 200 and r.json()["group_deleted"] is False
            await send(wa, {"type": "group", "group_id": group_id, "content": "gone?",
                            "client_id": "after-leave"})
            assert (await next_of_type(wa, "ack"))["client_id"] == "after-leave"
            # a private message sent after that group message: B's next frame must be it
            await send(wa, {"type": "private", "to": bob.id, "content": "marker"})
            nxt = await recv(wb)
            assert nxt["type"] == "private" and nxt["content"] == "marker"
            r = await http.get(bob, "/api/messages/group", group=group_id)
            assert r.status_code == 403
            await send(wb, {"type": "group", "group_id": group_id, "content": "still?"})
            assert (await next_of_type(wb, "error"))["code"] == "not_member"


async def test_invite_refusals(server: TestServer) -> None:
    alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
    carol = await quick_user(server, "carol")
    with trio.fail_after(10):
        async with api(server) as http:
            group_id = await make_group(http, alice)
            # the inviter must be an accepted member
            r = await invite(http, carol, group_id, bob)
            assert r.status_code == 403 and code(r) == "not_member"
            # unknown group, unknown user
            r = await invite(http, alice, group_id + 1000, bob)
            assert r.status_code == 404 and code(r) == "not_found"
            r = await http.post(alice, "/api/groups/invite",
                                json={"group_id": group_id, "user_id": 999_999})
            assert r.status_code == 404
            # an existing member (the owner herself) -> 409
            r = await http.post(alice, "/api/groups/invite",
                                json={"group_id": group_id, "user_id": alice.id})
            assert r.status_code == 409 and code(r) == "conflict"
            # group_id may be a string of digits, as in WebSocket frames
            r = await http.post(alice, "/api/groups/invite",
                                json={"group_id": str(group_id), "user_id": bob.id})
            assert r.status_code == 201
            # a pending invitee -> 409
            assert (await invite(http, alice, group_id, bob)).status_code == 409
            for body in ({"group_id": group_id}, {"user_id": bob.id},
                         {"group_id": 0, "user_id": bob.id}, {"group_id": "1x", "user_id": 2},
                         {"group_id": group_id, "user_id": -1},
                         {"group_id": group_id, "user_id": 2**60},
                         {"group_id": group_id, "user_id": "2"},
                         {"group_id": group_id, "user_id": bob.id, "group_name": 3},
                         {"group_id": group_id, "user_id": bob.id, "other": 1}):
                r = await http.post(alice, "/api/groups/invite", json=body)
                assert r.status_code == 400, body
            assert (await invite(http, alice, group_id, bob)).status_code == 409
            r = await http.post(None, "/api/groups/invite",
                                json={"group_id": group_id, "user_id": carol.id})
            assert r.status_code == 401
            # an accepted member may invite too
            assert (await http.post(bob, f"/api/groups/{group_id}/accept")).status_code == 200
            assert (await invite(http, bob, group_id, carol)).status_code == 201


async def test_accept_and_decline_need_a_pending_invite(server: TestServer) -> None:
    alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
    with trio.fail_after(10):
        async with api(server) as http:
            group_id = await make_group(http, alice)
            assert (await http.post(bob, f"/api/groups/{group_id}/accept")).status_code == 404
            assert (await http.post(bob, f"/api/groups/{group_id}/decline")).status_code == 404
            assert (await http.post(bob, "/api/groups/424242/accept")).status_code == 404
            assert (await http.post(None, f"/api/groups/{group_id}/accept")).status_code == 401
            assert (await invite(http, alice, group_id, bob)).status_code == 201
            r = await http.post(bob, f"/api/groups/{group_id}/decline")
            assert r.status_code == 200 and r.json()["status"] == "declined"
            assert (await http.get(bob, "/api/groups")).json()["invites"] == []
            assert (await http.post(bob, f"/api/groups/{group_id}/accept")).status_code == 404
            # invited again after declining, and accepted: accept or decline again -> 409
            await join(http, alice, group_id, bob)
            assert (await http.post(bob, f"/api/groups/{group_id}/accept")).status_code == 409
            assert (await http.post(bob, f"/api/groups/{group_id}/decline")).status_code == 409
            listed = (await http.get(bob, "/api/groups")).json()
            assert [g["id"] for g in listed["groups"]] == [group_id]
            assert listed["groups"][0]["member_count"] == 2


async def test_ids_no_row_can_have_are_404_not_server_errors(server: TestServer) -> None:
    alice = await quick_user(server, "alice")
    with trio.fail_after(10):
        async with api(server) as http:
            group_id = await make_group(http, alice)
            for method, path in (("POST", "/api/groups/0/accept"),
                                 ("POST", f"/api/groups/{2**70}/leave"),
                                 ("GET", f"/api/groups/{2**70}"),
                                 ("PATCH", f"/api/groups/{2**64}"),
                                 ("DELETE", f"/api/groups/{group_id}/members/{2**64}"),
                                 ("GET", "/api/groups/-1")):
                r = await http.request(alice, method, path, json={"name": "x"})
                assert r.status_code == 404, (method, path)


async def test_owner_leaving_hands_the_group_to_the_longest_standing_member(
    server: TestServer,
) -> None:
    alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
    carol = await quick_user(server, "carol")
    with trio.fail_after(10):
        async with api(server) as http:
            group_id = await make_group(http, alice)
            await join(http, alice, group_id, carol)
            await join(http, alice, group_id, bob)  # carol accepted before bob
            r = await http.post(alice, f"/api/groups/{group_id}/leave")
            assert r.status_code == 200
            assert r.json() == {"group_id": group_id, "status": "left",
                                "new_owner_id": carol.id, "group_deleted": False}
            details = (await http.get(carol, f"/api/groups/{group_id}")).json()
            assert details["owner_id"] == carol.id
            assert [m["user_id"] for m in details["members"]] == [carol.id, bob.id]
            # the new owner can rename; the old owner is no longer a member
            r = await http.patch(carol, f"/api/groups/{group_id}", json={"name": "Renamed"})
            assert r.status_code == 200 and r.json()["name"] == "Renamed"
            assert (await http.get(bob, "/api/groups")).json()["groups"][0]["name"] == "Renamed"
            assert (await http.post(alice, f"/api/groups/{group_id}/leave")).status_code == 403
            # a member who is not the owner leaves: the owner stays
            r = await http.post(bob, f"/api/groups/{group_id}/leave")
            assert r.json()["new_owner_id"] is None and r.json()["group_deleted"] is False
            details = (await http.get(carol, f"/api/groups/{group_id}")).json()
            assert details["owner_id"] == carol.id


async def test_a_group_left_empty_is_deleted_with_its_invites(server: TestServer) -> None:
    alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
    with trio.fail_after(10):
        async with api(server) as http:
            group_id = await make_group(http, alice)
            assert (await invite(http, alice, group_id, bob)).status_code == 201
            r = await http.post(alice, f"/api/groups/{group_id}/leave")
            assert r.json()["group_deleted"] is True and r.json()["new_owner_id"] is None
            assert (await http.get(bob, "/api/groups")).json()["invites"] == []
            r = await http.get(bob, "/api/messages/group", group=group_id)
            assert r.status_code == 404
            assert (await http.post(bob, f"/api/groups/{group_id}/accept")).status_code == 404
            assert (await http.post(alice, f"/api/groups/{group_id}/leave")).status_code == 404


async def test_only_the_owner_renames_removes_and_deletes(server: TestServer) -> None:
    alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
    carol = await quick_user(server, "carol")
    with trio.fail_after(10):
        async with api(server) as http:
            group_id = await make_group(http, alice, bob)
            r = await http.patch(bob, f"/api/groups/{group_id}", json={"name": "Mine"})
            assert r.status_code == 403 and code(r) == "forbidden"
            r = await http.delete(bob, f"/api/groups/{group_id}/members/{alice.id}")
            assert r.status_code == 403
            assert (await http.delete(bob, f"/api/groups/{group_id}")).status_code == 403
            r = await http.patch(alice, f"/api/groups/{group_id}", json={"name": " "})
            assert r.status_code == 400
            r = await http.patch(alice, f"/api/groups/{group_id}", json={"title": "x"})
            assert r.status_code == 400
            r = await http.patch(alice, "/api/groups/999999", json={"name": "x"})
            assert r.status_code == 404
            # remove: not a member -> 404; the owner herself -> 400
            r = await http.delete(alice, f"/api/groups/{group_id}/members/{carol.id}")
            assert r.status_code == 404
            r = await http.delete(alice, f"/api/groups/{group_id}/members/{alice.id}")
            assert r.status_code == 400
            assert (await http.delete(alice, "/api/groups/999999")).status_code == 404
            assert (await http.delete(None, f"/api/groups/{group_id}")).status_code == 401
            # the group's details are for members only
            assert (await http.get(carol, f"/api/groups/{group_id}")).status_code == 403
            assert (await http.get(carol, "/api/groups/999999")).status_code == 404
            details = (await http.get(alice, f"/api/groups/{group_id}")).json()
            assert details["name"] == "Developers" and details["owner_id"] == alice.id


async def test_removed_member_stops_receiving_at_once(server: TestServer) -> None:
    alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
    carol = await quick_user(server, "carol")
    with trio.fail_after(15):
        async with api(server) as http, server.connect(alice) as wa, \
                server.connect(bob) as wb:
            group_id = await make_group(http, alice, bob)
            await send(wa, {"type": "group", "group_id": group_id, "content": "one"})
            assert (await next_of_type(wb, "group"))["content"] == "one"
            r = await http.delete(alice, f"/api/groups/{group_id}/members/{bob.id}")
            assert r.status_code == 200
            assert r.json() == {"group_id": group_id, "user_id": bob.id, "removed": "accepted"}
            # withdrawing a pending invite works the same way
            assert (await invite(http, alice, group_id, carol)).status_code == 201
            r = await http.delete(alice, f"/api/groups/{group_id}/members/{carol.id}")
            assert r.json()["removed"] == "invited"
            assert (await http.get(carol, "/api/groups")).json()["invites"] == []
            await send(wa, {"type": "group", "group_id": group_id, "content": "two"})
            await send(wa, {"type": "private", "to": bob.id, "content": "marker"})
            assert (await next_of_type(wb, "private")
                    )["content"] == "marker"
            r = await http.get(bob, "/api/messages/group", group=group_id)
            assert r.status_code == 403


async def test_deleting_a_group_stops_its_routing_and_history(server: TestServer) -> None:
    alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
    with trio.fail_after(15):
        async with api(server) as http, server.connect(bob) as wb:
            group_id = await make_group(http, alice, bob)
            r = await http.delete(alice, f"/api/groups/{group_id}")
            assert r.status_code == 200
            assert r.json() == {"group_id": group_id, "deleted": True}
            r = await http.get(alice, "/api/messages/group", group=group_id)
            assert r.status_code == 404
            assert (await http.get(bob, "/api/groups")).json()["groups"] == []
            await send(wb, {"type": "group", "group_id": group_id, "content": "anyone?"})
            assert (await next_of_type(wb, "error"))["code"] == (
                "not_member")
