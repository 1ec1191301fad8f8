"""Ids in queries and paths are ASCII digits only: Python's int() would also read " 3", "+3",
"1_0" (as 10) and other scripts' digits, which the docs never promised."""

from __future__ import annotations

from urllib.parse import quote

import pytest
import trio
import trio_websocket
from api_helpers import api, quick_user

from trionet.testing import TestServer

ODD = [" 3", "+3", "\u0663", "1_0", "\u00b2", "3 "]


@pytest.mark.parametrize("raw", ODD)
async def test_odd_digits_in_query_ids_are_400(server: TestServer, raw: str) -> None:
    alice = await quick_user(server, "alice")
    await quick_user(server, "bob")
    with trio.fail_after(10):
        async with api(server) as http:
            history = await http.get(alice, "/api/messages/private", user=raw)
            limit = await http.get(alice, "/api/messages/private", user="2", limit=raw)
            # lists allow blanks around their commas ("1, 2"), so those cases are single ids
            listed = raw if raw.strip() == raw else "x"
            users = await http.get(alice, "/api/users", ids=f"1,{listed}")
            online = await http.get(alice, "/api/users/online", ids=listed)
    for response in (history, limit, users, online):
        assert response.status_code == 400, (raw, response.request.url)
        assert response.json()["error"]["code"] == "bad_request"


async def test_plain_ids_still_work(server: TestServer) -> None:
    alice = await quick_user(server, "alice")
    bob = await quick_user(server, "bob")
    with trio.fail_after(10):
        async with api(server) as http:
            history = await http.get(alice, "/api/messages/private", user=str(bob.id), limit="5")
            users = await http.get(alice, "/api/users", ids=f"{alice.id}, {bob.id}")
    assert history.status_code == 200
    assert [u["id"] for u in users.json()["users"]] == [alice.id, bob.id]


async def test_other_scripts_digits_in_a_path_id_match_no_route(server: TestServer) -> None:
    alice = await quick_user(server, "alice")
    gid = await server.create_group("g", alice)
    assert gid < 10
    with trio.fail_after(10):
        async with api(server) as http:
            arabic = await http.get(alice, f"/api/groups/{chr(0x0660 + gid)}")
            ascii_ = await http.get(alice, f"/api/groups/{gid}")
    assert arabic.status_code == 404
    assert ascii_.status_code == 200


@pytest.mark.parametrize("raw", ["\u00b2", "\u0663", "+3", "1_0"])
async def test_odd_digits_in_since_are_400_on_the_handshake(server: TestServer, raw: str) -> None:
    alice = await quick_user(server, "alice")
    with trio.fail_after(10), pytest.raises(trio_websocket.ConnectionRejected) as refused:
        async with server.connect(alice, query=f"since={quote(raw)}"):
            pass
    assert refused.value.status_code == 400
