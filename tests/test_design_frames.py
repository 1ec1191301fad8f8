"""The frames of the design trionet follows, sent verbatim, are accepted; a client
``timestamp`` (Unix seconds or an ISO string) is ignored: the server's time is authoritative."""

from __future__ import annotations

import pytest
import trio

from trionet.testing import TestServer

recv = TestServer.receive_json
send = TestServer.send_json


async def test_the_designs_private_and_group_examples_are_accepted(server: TestServer) -> None:
    alice = await server.create_user("alice", admin=True)
    bob = await server.create_user("bob")
    gid = await server.create_group("g", alice, [bob])
    with trio.fail_after(10):
        async with server.connect(bob) as wb, server.connect(alice) as wa:
            await send(wa, {"type": "private", "to": bob.id, "content": "Hello there!",
                            "timestamp": 1640995200})
            private = await recv(wb)
            await send(wa, {"type": "group", "group_id": str(gid),
                            "content": "Hello everyone!", "timestamp": 1640995200})
            group = await recv(wb)
            await send(wa, {"type": "broadcast", "content": "Server maintenance in 10 minutes",
                            "timestamp": 1640995200})
            broadcast = await recv(wb)
            await send(wa, {"type": "private", "to": bob.id, "content": "iso",
                            "timestamp": "2022-01-01T00:00:00Z", "client_id": "t"})
            ack = await recv(wa)
            while ack["type"] == "broadcast":
                ack = await recv(wa)
            notification = await server.services.manager.notify(
                bob.id, "friend_request", "alice sent you a friend request")
            pushed = await recv(wb)
            while pushed["type"] != "notification":
                pushed = await recv(wb)
    assert private["content"] == "Hello there!" and private["from"] == alice.id
    assert group["content"] == "Hello everyone!" and group["group_id"] == gid
    assert broadcast["content"] == "Server maintenance in 10 minutes"
    for frame in (private, group, broadcast):
        assert frame["timestamp"].startswith("20") and not frame["timestamp"].startswith("2022")
    assert ack["type"] == "ack" and not ack["timestamp"].startswith("2022")
    assert {"type", "subtype", "message", "timestamp", "id"} <= set(pushed)
    assert pushed["type"] == "notification" and pushed["subtype"] == "friend_request"
    assert pushed == notification


@pytest.mark.parametrize("timestamp", [-1, "x" * 65, [1], {"s": 1}, True])
async def test_a_malformed_client_timestamp_is_refused_naming_the_field(
    server: TestServer, timestamp: object
) -> None:
    alice, bob = await server.create_user("alice"), await server.create_user("bob")
    with trio.fail_after(10):
        async with server.connect(alice) as wa:
            await send(wa, {"type": "private", "to": bob.id, "content": "x",
                            "timestamp": timestamp, "client_id": "c"})
            error = await recv(wa)
    assert error["code"] == "invalid_message" and "timestamp" in error["message"]
    assert error["client_id"] == "c"
