"""A kept-alive HTTP connection answers every request, also after an early error response
to a request whose body had not arrived yet (it used to hang the connection for good)."""

from __future__ import annotations

import httpx
import pytest
import trio

from trionet.settings import Settings
from trionet.testing import TestServer, running_server

BODY = b'{"name":"g"}'
POST_HEAD = (b"POST /api/groups HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             b"Content-Length: %d\r\n\r\n" % len(BODY))
GET_HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


async def _open(server: TestServer) -> trio.SocketStream:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    return await trio.open_tcp_stream(host, int(port))


async def _read_until(stream: trio.SocketStream, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = await stream.receive_some(65536)
        if not chunk:
            return data + b"<EOF>"
        data += chunk
    return data


async def test_an_early_401_before_the_body_arrived_still_answers_the_next_request(
    server: TestServer,
) -> None:
    """The reproduction: headers of a POST without credentials, then (after the server could
    have answered) its body and a GET /healthz on the same connection."""
    with trio.fail_after(10):
        stream = await _open(server)
        await stream.send_all(POST_HEAD)
        await trio.sleep(0.3)  # the 401 is ready now; it waits for the body
        await stream.send_all(BODY + GET_HEALTHZ)
        data = await _read_until(stream, b'{"status":"ok"}')
        await stream.aclose()
    assert data.startswith(b"HTTP/1.1 401")
    assert b"HTTP/1.1 200" in data and data.endswith(b'{"status":"ok"}')


async def test_a_body_that_never_arrives_gets_connection_close_and_a_closed_socket() -> None:
    """Past the body timeout the response says Connection: close, and the socket really is
    closed (hypercorn's close ran in a cancelled task and never finished)."""
    async with running_server(Settings(rate_limit=0, body_timeout=0.5)) as server:
        with trio.fail_after(10):
            stream = await _open(server)
            await stream.send_all(POST_HEAD)  # no body, ever
            data = await _read_until(stream, b"<never>")
            await stream.aclose()
    assert data.startswith(b"HTTP/1.1 401")
    assert b"connection: close" in data.lower()
    assert data.endswith(b"<EOF>")


async def test_a_declared_oversize_body_is_answered_at_once_and_closed() -> None:
    async with running_server(Settings(rate_limit=0, body_timeout=30)) as server:
        with trio.fail_after(10):
            stream = await _open(server)
            await stream.send_all(b"POST /api/groups HTTP/1.1\r\nHost: x\r\n"
                                  b"Content-Type: application/json\r\n"
                                  b"Content-Length: 50000000\r\n\r\n{")
            data = await _read_until(stream, b"<never>")
            await stream.aclose()
    assert data.split(b" ")[1] in (b"401", b"413")
    assert b"connection: close" in data.lower() and data.endswith(b"<EOF>")


@pytest.mark.slow
async def test_a_mixed_sequence_on_one_kept_alive_client_never_stalls(server: TestServer) -> None:
    """The acceptance sequence that stalled in 5 runs of 6: early 401/403/415s to requests
    with bodies, other calls in between, WebSockets opening and closing meanwhile."""
    alice = await server.create_user("alice")
    calls = [
        ("POST", "/api/groups", {"json": {"name": "g"}}, None),
        ("POST", "/api/server/notify", {"json": {"user_ids": [1]}}, None),
        ("GET", "/healthz", {}, None),
        ("POST", "/api/groups", {"content": b"x" * 3000,
                                 "headers": {"Content-Type": "text/plain"}}, alice),
        ("POST", "/api/groups", {"json": {"name": "g"}, "headers": {"Origin": "http://evil"}},
         alice),
        ("GET", "/api/me", {}, alice),
        ("POST", "/api/auth/logout", {"json": {}}, None),
        ("POST", "/api/groups", {"json": {"name": "ok"}}, alice),
    ]
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            async def sockets() -> None:
                while True:
                    async with server.connect(alice):
                        await trio.sleep(0.005)

            nursery.start_soon(sockets)
            async with httpx.AsyncClient(base_url=server.url, timeout=5,
                                         limits=httpx.Limits(max_connections=1)) as client:
                statuses = []
                for _ in range(25):
                    for method, path, kw, user in calls:
                        headers = {**server.headers_for(user), **kw.get("headers", {})}
                        rest = {k: v for k, v in kw.items() if k != "headers"}
                        response = await client.request(method, path, headers=headers, **rest)
                        statuses.append(response.status_code)
            nursery.cancel_scope.cancel()
    assert statuses[:8] == [401, 404, 200, 415, 403, 200, 401, 201]
    assert len(statuses) == 200
