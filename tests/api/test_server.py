"""The server API for the backend: key checks, notify, broadcast, users and groups upsert."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
from api_helpers import Api, api, error_of, next_of_type, quick_user, recv, send

from trionet.settings import Settings
from trionet.testing import TestServer, running_server

KEY = "test-server-api-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}

ENDPOINTS: list[tuple[str, str, Any]] = [
    ("POST", "/api/server/notify", {"user_ids": [1], "subtype": "x", "message": "m"}),
    ("POST", "/api/server/broadcast", {"content": "hi"}),
    ("PUT", "/api/server/users/5", {"username": "eve"}),
    ("PUT", "/api/server/groups/5", {"name": "g", "members": []}),
]


@pytest.fixture
async def keyed() -> AsyncIterator[TestServer]:
    async with running_server(Settings(api_key=KEY, rate_limit=0, max_content_chars=100)) as srv:
        yield srv


@pytest.fixture
async def http(keyed: TestServer) -> AsyncIterator[Api]:
    async with api(keyed) as client:
        yield client


async def call(http: Api, method: str, path: str, body: Any) -> Any:
    return await http.request(None, method, path, json=body, headers=AUTH)


async def test_disabled_without_a_key(server: TestServer) -> None:
    with trio.fail_after(10):
        async with api(server) as http:
            for method, path, body in ENDPOINTS:
                r = await http.request(None, method, path, json=body, headers=AUTH)
                assert r.status_code == 404, path
                assert "disabled" in error_of(r)["message"]


async def test_wrong_or_missing_key_is_401(keyed: TestServer, http: Api) -> None:
    with trio.fail_after(10):
        for headers in ({}, {"Authorization": "Bearer wrong"},
                        {"Authorization": f"Bearer {KEY}x"}, {"Authorization": KEY},
                        {"Authorization": f"Basic {KEY}"}, {"Authorization": "Bearer"}):
            for method, path, body in ENDPOINTS:
                r = await http.request(None, method, path, json=body, headers=headers)
                assert r.status_code == 401, (headers, path)
                assert error_of(r)["code"] == "unauthorized"
                assert r.headers["WWW-Authenticate"].startswith("Bearer")
        # a user's session is not the server key
        alice = await quick_user(keyed, "alice", admin=True)
        r = await http.post(alice, "/api/server/broadcast", json={"content": "x"})
        assert r.status_code == 401


async def test_notify_persists_and_pushes_with_data_merged(keyed: TestServer, http: Api) -> None:
    alice, bob = await quick_user(keyed, "alice"), await quick_user(keyed, "bob")
    with trio.fail_after(10):
        async with keyed.connect(alice) as wa:
            r = await call(http, "POST", "/api/server/notify", {
                "user_ids": [alice.id, bob.id, alice.id], "subtype": "friend_request",
                "message": "Bob wants to be your friend",
                "data": {"from_user": bob.id, "type": "spoof", "id": 1, "read": True,
                         "timestamp": "x", "subtype": "y", "message": "z"},
            })
            assert r.status_code == 201, r.text
            created = r.json()["notifications"]
            assert [n["user_id"] for n in created] == [alice.id, bob.id]  # deduplicated
            frame = await next_of_type(wa, "notification")
        assert frame == {"type": "notification", "id": created[0]["id"],
                         "subtype": "friend_request", "message": "Bob wants to be your friend",
                         "from_user": bob.id, "timestamp": frame["timestamp"]}
        listed = (await http.get(alice, "/api/notifications")).json()
        assert listed["unread_count"] == 1
        assert listed["notifications"] == [{**frame, "read": False}]
        listed = (await http.get(bob, "/api/notifications")).json()
        assert [n["id"] for n in listed["notifications"]] == [created[1]["id"]]


async def test_notify_refuses_unknown_users_and_bad_bodies(keyed: TestServer, http: Api) -> None:
    alice = await quick_user(keyed, "alice")
    with trio.fail_after(10):
        r = await call(http, "POST", "/api/server/notify",
                       {"user_ids": [alice.id, 424242], "subtype": "x", "message": "m"})
        assert r.status_code == 404 and "424242" in error_of(r)["message"]
        assert (await http.get(alice, "/api/notifications")).json()["notifications"] == []
        good = {"user_ids": [alice.id], "subtype": "like", "message": "m"}
        for bad in ({**good, "user_ids": []}, {**good, "user_ids": [0]},
                    {**good, "user_ids": list(range(1, 1002))}, {**good, "subtype": ""},
                    {**good, "subtype": "has space"}, {**good, "subtype": "x" * 65},
                    {**good, "message": ""}, {**good, "data": []},
                    {**good, "data": {"k": "v" * 17_000}}, {**good, "data": {"": 1}},
                    {**good, "extra": 1}, {"subtype": "x", "message": "m"}):
            r = await call(http, "POST", "/api/server/notify", bad)
            assert r.status_code == 400, bad
        r = await http.post(None, "/api/server/notify", content=b"{}",
                            headers={**AUTH, "Content-Type": "text/plain"})
        assert r.status_code == 415


async def test_broadcast_reaches_every_connection(keyed: TestServer, http: Api) -> None:
    alice, bob = await quick_user(keyed, "alice"), await quick_user(keyed, "bob")
    with trio.fail_after(10):
        async with keyed.connect(alice) as wa, keyed.connect(bob) as wb, \
                keyed.connect(bob) as wb2:
            for ws in (wa, wb, wb2):  # registered before the broadcast
                await send(ws, {"type": "ping"})
                assert (await recv(ws))["type"] == "pong"
            r = await call(http, "POST", "/api/server/broadcast", {"content": "maintenance"})
            assert r.status_code == 200 and r.json()["delivered"] == 3
            for ws in (wa, wb, wb2):
                frame = await recv(ws)
                assert frame == {"type": "broadcast", "from": None, "content": "maintenance",
                                 "timestamp": r.json()["timestamp"]}
        for bad in ({"content": ""}, {"content": "x" * 101}, {"content": 1}, {}):
            r = await call(http, "POST", "/api/server/broadcast", bad)
            assert r.status_code == 400, bad


async def test_users_upsert_creates_then_renames(keyed: TestServer, http: Api) -> None:
    alice = await quick_user(keyed, "alice")
    with trio.fail_after(10):
        r = await call(http, "PUT", "/api/server/users/500", {"username": "eve"})
        assert r.status_code == 201
        assert r.json() == {"id": 500, "username": "eve", "created": True}
        r = await call(http, "PUT", "/api/server/users/500", {"username": "eve2"})
        assert r.status_code == 200 and r.json()["created"] is False
        users = (await http.get(alice, "/api/users", ids="500")).json()["users"]
        assert users == [{"id": 500, "username": "eve2"}]
        r = await call(http, "PUT", "/api/server/users/501", {"username": "ALICE"})
        assert r.status_code == 409 and error_of(r)["code"] == "conflict"
        for path, body in (("/api/server/users/502", {"username": ""}),
                           ("/api/server/users/502", {"username": "has space"}),
                           ("/api/server/users/502", {"username": "x" * 33}),
                           ("/api/server/users/502", {"name": "x"}),
                           ("/api/server/users/0", {"username": "zero"}),
                           (f"/api/server/users/{2**60}", {"username": "big"})):
            r = await call(http, "PUT", path, body)
            assert r.status_code == 400, (path, body)


async def test_groups_upsert_mirrors_membership_and_routing_follows(
    keyed: TestServer, http: Api
) -> None:
    alice, bob = await quick_user(keyed, "alice"), await quick_user(keyed, "bob")
    carol = await quick_user(keyed, "carol")
    with trio.fail_after(15):
        async with keyed.connect(alice) as wa, keyed.connect(bob) as wb, \
                keyed.connect(carol) as wc:
            r = await call(http, "PUT", "/api/server/groups/77", {
                "name": "Mirrored", "owner_id": alice.id,
                "members": [{"user_id": alice.id, "status": "accepted"},
                            {"user_id": bob.id, "status": "accepted"},
                            {"user_id": carol.id, "status": "invited"},
                            {"user_id": 900, "status": "accepted"}],
            })
            assert r.status_code == 201 and r.json()["created"] is True
            await send(wa, {"type": "group", "group_id": 77, "content": "first"})
            assert (await next_of_type(wb, "group"))["content"] == "first"
            await send(wc, {"type": "group", "group_id": 77, "content": "me?"})
            assert (await next_of_type(wc, "error"))["code"] == "not_member"
            # an unknown member id got a user row
            users = (await http.get(alice, "/api/users", ids="900")).json()["users"]
            assert users == [{"id": 900, "username": "user900"}]

            # replace: bob is gone, carol is accepted; routing follows at once
            r = await call(http, "PUT", "/api/server/groups/77", {
                "name": "Mirrored 2", "owner_id": alice.id,
                "members": [{"user_id": alice.id, "status": "accepted"},
                            {"user_id": carol.id, "status": "accepted"}],
            })
            assert r.status_code == 200 and r.json()["created"] is False
            await send(wa, {"type": "group", "group_id": 77, "content": "second"})
            assert (await next_of_type(wc, "group"))["content"] == "second"
            await send(wa, {"type": "private", "to": bob.id, "content": "marker"})
            assert (await next_of_type(wb, "private"))["content"] == "marker"
            assert (await http.get(bob, "/api/messages/group", group=77)).status_code == 403
            r = await http.get(carol, "/api/messages/group", group=77)
            assert [m["content"] for m in r.json()["messages"]] == ["second", "first"]
            mine = (await http.get(carol, "/api/groups")).json()["groups"]
            assert [(g["id"], g["name"], g["owner_id"]) for g in mine] == [
                (77, "Mirrored 2", alice.id)]


async def test_groups_upsert_refuses_bad_bodies(keyed: TestServer, http: Api) -> None:
    alice = await quick_user(keyed, "alice")
    with trio.fail_after(10):
        member = {"user_id": alice.id, "status": "accepted"}
        for path, body in (
            ("/api/server/groups/1", {"name": " ", "members": [member]}),
            ("/api/server/groups/1", {"name": "g", "members": [member, member]}),
            ("/api/server/groups/1", {"name": "g", "members": [
                {"user_id": alice.id, "status": "owner"}]}),
            ("/api/server/groups/1", {"name": "g", "members": [{"user_id": 0,
                                                                 "status": "accepted"}]}),
            ("/api/server/groups/1", {"name": "g", "members": [], "owner_id": alice.id}),
            ("/api/server/groups/1", {"name": "g", "owner_id": alice.id, "members": [
                {"user_id": alice.id, "status": "invited"}]}),
            ("/api/server/groups/1", {"members": [member]}),
            ("/api/server/groups/0", {"name": "g", "members": [member]}),
        ):
            r = await call(http, "PUT", path, body)
            assert r.status_code == 400, body
        # an owner-less mirrored group with no members is fine
        r = await call(http, "PUT", "/api/server/groups/2", {"name": "empty"})
        assert r.status_code == 201 and r.json()["members"] == []


async def test_metrics_need_the_key_when_one_is_configured(
    keyed: TestServer, http: Api
) -> None:
    with trio.fail_after(10):
        assert (await http.get(None, "/metrics")).status_code == 401
        r = await http.request(None, "GET", "/metrics", headers=AUTH)
        assert r.status_code == 200
        assert "trionet_connections" in r.text and "trionet_presence_events" in r.text
