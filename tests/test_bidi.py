"""Bidirectional controls (U+202E and friends) are refused alike in usernames and group names;
in messages they are kept, and the page isolates them (tests/test_browser.py)."""

from __future__ import annotations

import pytest
import trio
from api_helpers import api, quick_user

from trionet.settings import Settings
from trionet.testing import TestServer, running_server

CONTROLS = ["\u202e", "\u202d", "\u2066", "\u2067", "\u2068", "\u200f", "\u061c"]


@pytest.mark.parametrize("control", CONTROLS)
async def test_bidi_controls_are_refused_in_usernames_and_group_names(
    server: TestServer, control: str
) -> None:
    alice = await quick_user(server, "alice")
    with trio.fail_after(10):
        async with api(server) as http:
            user = await http.post(None, "/api/auth/register",
                                   json={"username": f"ad{control}min", "password": "x" * 12})
            group = await http.post(alice, "/api/groups", json={"name": f"news{control}txt"})
    assert user.status_code == 400
    assert group.status_code == 400


async def test_the_server_api_refuses_them_in_usernames_too() -> None:
    key = "a-server-api-key-for-tests"
    async with running_server(Settings(api_key=key, rate_limit=0)) as server:
        with trio.fail_after(10):
            async with server.http() as http:
                response = await http.put("/api/server/users/5", json={"username": "ev\u202eil"},
                                          headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 400
