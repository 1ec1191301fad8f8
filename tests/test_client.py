"""trionet.client: acks, iteration, reconnect with resume, resend, session end."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from trionet.client import Client, SessionEnded, open_client
from trionet.testing import TestServer, TestUser, running_server


def client_for(server: TestServer, user: TestUser, **kw: object) -> Client:
    return Client(server.ws_url, token=user.token, backoff_base=0.02, backoff_max=0.2, **kw)


async def next_of(client: Client, kind: str) -> dict:
    async for frame in client:
        if frame["type"] == kind:
            return frame
    raise AssertionError("client ended")


async def test_send_returns_the_ack_and_the_peer_iterates_frames(server: TestServer) -> None:
    a, b = await server.create_user("a"), await server.create_user("b")
    with trio.fail_after(10):
        async with open_client(server.ws_url, token=b.token) as cb, \
                open_client(server.ws_url, token=a.token) as ca:
            ack = await ca.send_private(b.id, "hello")
            assert ack is not None and ack.persisted and isinstance(ack.id, int)
            frame = await next_of(cb, "private")
            assert (frame["id"], frame["content"]) == (ack.id, "hello")
            with pytest.raises(ValueError, match="unknown_user"):
                await ca.send_private(999_999, "nobody")


async def test_client_reconnects_and_misses_nothing_sent_meanwhile(server: TestServer) -> None:
    a, b = await server.create_user("a"), await server.create_user("b")
    got: list[str] = []
    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            cb = client_for(server, b)
            await nursery.start(cb.run)
            async with open_client(server.ws_url, token=a.token) as ca:
                await ca.send_private(b.id, "before")
                got.append((await next_of(cb, "private"))["content"])
                await server.services.manager.disconnect_user(b.id, 1001)  # drop b
                for i in range(5):
                    await ca.send_private(b.id, f"during{i}")
                while len(got) < 6:
                    got.append((await next_of(cb, "private"))["content"])
            nursery.cancel_scope.cancel()
    assert got == ["before"] + [f"during{i}" for i in range(5)]
    assert cb.connects >= 2


async def test_unacked_frames_are_resent_after_a_restart_and_stored_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "t.db"
    async with running_server(database=path) as server:
        a, b = await server.create_user("a"), await server.create_user("b")
        port = int(server.url.rsplit(":", 1)[1])
        url = server.ws_url
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            ca = Client(url, token=a.token, backoff_base=0.02, backoff_max=0.2)
            # the server is down: the client keeps trying; the frame waits for a connection
            nursery.start_soon(ca.run)
            acks = []

            async def sender() -> None:
                acks.append(await ca.send_private(b.id, "queued while down"))

            nursery.start_soon(sender)
            await trio.sleep(0.2)
            async with running_server(database=path, port=port) as server:
                while not acks:
                    await trio.sleep(0.01)
                page = await server.services.persister.private_page(
                    a.id, b.id, limit=10, offset=0, before_id=None)
            nursery.cancel_scope.cancel()
    assert acks[0] is not None and acks[0].persisted
    assert [m.content for m in page] == ["queued while down"]


async def test_logout_ends_the_client_with_session_ended(server: TestServer) -> None:
    a = await server.create_user("a")
    with trio.fail_after(10):
        with pytest.raises(SessionEnded):
            async with open_client(server.ws_url, token=a.token) as ca:
                async with server.http(a) as http:
                    await http.post("/api/auth/logout")
                async for _ in ca:
                    pass
