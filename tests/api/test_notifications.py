"""Notifications over HTTP: the list with read state, unread counts, marking read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
from api_helpers import Api, api, error_of, next_of_type, quick_user

from trionet.testing import TestServer, TestUser


@pytest.fixture
async def http(server: TestServer) -> AsyncIterator[Api]:
    async with api(server) as client:
        yield client


async def notify(server: TestServer, user: TestUser, text: str, **payload: Any) -> int:
    """A notification made the way server code makes one (persisted, pushed live)."""
    frame = await server.services.manager.notify(user.id, "test", text, **payload)
    nid: int = frame["id"]
    return nid


async def listing(http: Api, user: TestUser, **params: Any) -> dict[str, Any]:
    r = await http.get(user, "/api/notifications", **params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_list_has_read_state_unread_count_and_only_the_callers_items(
    server: TestServer, http: Api
) -> None:
    alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
    with trio.fail_after(10):
        async with server.connect(bob) as wb:
            ids = [await notify(server, bob, f"n{i}", post_id=i) for i in range(3)]
            live = [await next_of_type(wb, "notification") for _ in ids]
        mine = await notify(server, alice, "for alice")
        body = await listing(http, bob)
        assert body["unread_count"] == 3 and body["has_more"] is False
        items = body["notifications"]
        assert [n["id"] for n in items] == ids[::-1]  # newest first
        assert all(n["read"] is False for n in items)
        # each item is the live frame plus `read`
        assert [{k: v for k, v in n.items() if k != "read"} for n in items] == live[::-1]
        assert items[0]["post_id"] == 2 and items[0]["subtype"] == "test"
        alice_body = await listing(http, alice)
        assert [n["id"] for n in alice_body["notifications"]] == [mine]
        assert alice_body["unread_count"] == 1
        assert (await listing(http, await quick_user(server, "carol"))) == {
            "notifications": [], "unread_count": 0, "has_more": False}


async def test_payload_never_overrides_the_frames_own_fields(
    server: TestServer, http: Api
) -> None:
    bob = await quick_user(server, "bob")
    with trio.fail_after(10):
        payload = {"type": "spoof", "id": 1, "subtype": "x", "message": "m", "read": True,
                   "timestamp": "then", "extra": {"nested": [1, 2]}}
        (frame,) = await server.services.manager.notify_many([bob.id], "test", "hello", payload)
        nid = frame["id"]
        (item,) = (await listing(http, bob))["notifications"]
        assert item["type"] == "notification" and item["id"] == nid
        assert item["subtype"] == "test" and item["message"] == "hello"
        assert item["read"] is False and item["extra"] == {"nested": [1, 2]}
        assert item["timestamp"] == frame["timestamp"] != "then"


async def test_paging_by_offset_and_before_id(server: TestServer, http: Api) -> None:
    bob = await quick_user(server, "bob")
    with trio.fail_after(10):
        ids = [await notify(server, bob, f"n{i}") for i in range(5)]
        newest = ids[::-1]

        async def page(**params: Any) -> tuple[list[int], bool]:
            body = await listing(http, bob, **params)
            assert body["unread_count"] == 5  # the count is over all, not the page
            return [n["id"] for n in body["notifications"]], body["has_more"]

        assert await page(limit=2) == (newest[:2], True)
        assert await page(limit=2, offset=2) == (newest[2:4], True)
        assert await page(limit=2, offset=4) == (newest[4:], False)
        assert await page(offset=5) == ([], False)
        assert await page(offset=99) == ([], False)
        assert await page(before_id=newest[2]) == (newest[3:], False)
        assert await page(before_id=newest[0], limit=1) == (newest[1:2], True)
        for params in ({"limit": 0}, {"limit": 201}, {"limit": -3}, {"offset": -1},
                       {"before_id": "x"}):
            r = await http.get(bob, "/api/notifications", **params)
            assert r.status_code == 400
            assert f"'{next(iter(params))}'" in error_of(r)["message"]
        assert (await http.get(None, "/api/notifications")).status_code == 401


async def test_mark_read_by_ids_touches_only_the_callers_own(
    server: TestServer, http: Api
) -> None:
    alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
    with trio.fail_after(10):
        b1, b2, b3 = [await notify(server, bob, f"n{i}") for i in range(3)]
        a1 = await notify(server, alice, "alice's")
        r = await http.post(bob, "/api/notifications/read", json={"ids": [b2, a1, 999]})
        assert r.status_code == 200 and r.json() == {"marked": 1, "unread_count": 2}
        read = {n["id"]: n["read"] for n in (await listing(http, bob))["notifications"]}
        assert read == {b1: False, b2: True, b3: False}
        # alice's notification was not touched
        alice_body = await listing(http, alice)
        assert alice_body["unread_count"] == 1
        assert alice_body["notifications"][0]["read"] is False
        # marking again changes nothing; an empty list is fine
        r = await http.post(bob, "/api/notifications/read", json={"ids": [b2]})
        assert r.json() == {"marked": 0, "unread_count": 2}
        r = await http.post(bob, "/api/notifications/read", json={"ids": []})
        assert r.json() == {"marked": 0, "unread_count": 2}


async def test_mark_all_read_without_a_body(server: TestServer, http: Api) -> None:
    alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
    with trio.fail_after(10):
        for i in range(3):
            await notify(server, bob, f"n{i}")
        await notify(server, alice, "alice's")
        r = await http.post(bob, "/api/notifications/read")
        assert r.status_code == 200 and r.json() == {"marked": 3, "unread_count": 0}
        body = await listing(http, bob)
        assert body["unread_count"] == 0
        assert all(n["read"] for n in body["notifications"])
        assert (await listing(http, alice))["unread_count"] == 1
        r = await http.post(bob, "/api/notifications/read")
        assert r.json() == {"marked": 0, "unread_count": 0}


async def test_mark_read_refuses_bad_requests(server: TestServer, http: Api) -> None:
    bob = await quick_user(server, "bob")
    with trio.fail_after(10):
        for body in ({}, {"ids": "1"}, {"ids": [0]}, {"ids": [-1]}, {"ids": ["1"]},
                     {"ids": [2**53]}, {"ids": list(range(1, 1002))}, {"ids": [1], "x": 1},
                     [1, 2]):
            r = await http.post(bob, "/api/notifications/read", json=body)
            assert r.status_code == 400, body
            assert error_of(r)["code"] == "bad_request"
        r = await http.post(bob, "/api/notifications/read", content=b'{"ids": [1]}',
                            headers={"Content-Type": "text/plain"})
        assert r.status_code == 415
        r = await http.post(bob, "/api/notifications/read",
                            headers={"Origin": "https://evil.example"})
        assert r.status_code == 403
        assert (await http.post(None, "/api/notifications/read")).status_code == 401
        r = await http.get(bob, "/api/notifications/read")
        assert r.status_code == 405 and error_of(r)["code"] == "method_not_allowed"
