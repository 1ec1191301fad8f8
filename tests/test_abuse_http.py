"""Abuse over HTTP, reproduced over real sockets: slow bodies, many connections from one
address, descriptors, a database locked by another process."""

from __future__ import annotations

import resource
import sqlite3
from pathlib import Path

import trio

from trionet.services import raise_descriptor_limit
from trionet.settings import Settings
from trionet.testing import TestServer, running_server


async def _open(server: TestServer) -> trio.SocketStream:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    return await trio.open_tcp_stream(host, int(port))


async def _response_head(stream: trio.SocketStream) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(4096)
        if not chunk:
            break
        data += chunk
    return data


def _slow_post(server: TestServer, user_cookie: str) -> bytes:
    return (b"POST /api/groups HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\nCookie: " + user_cookie.encode() + b"\r\n\r\n{\"na")


async def test_a_slow_request_body_is_cut_off_after_the_body_timeout() -> None:
    """The attack: slow bodies held connections ~55 s each; 1,100 of them exhausted the
    process's descriptors."""
    async with running_server(Settings(rate_limit=0, body_timeout=1.0)) as server:
        alice = await server.create_user("alice")
        with trio.fail_after(10):
            stream = await _open(server)
            started = trio.current_time()
            await stream.send_all(_slow_post(server, alice.cookie))  # and never the rest
            head = await _response_head(stream)
            elapsed = trio.current_time() - started
            await stream.aclose()
    assert head.startswith(b"HTTP/1.1 408"), head[:60]
    assert 0.9 <= elapsed < 4


async def test_connections_per_address_are_capped_when_configured() -> None:
    settings = Settings(rate_limit=0, body_timeout=30, max_connections_per_address=5)
    async with running_server(settings) as server:
        alice = await server.create_user("alice")
        with trio.fail_after(15):
            held = []
            for _ in range(5):  # five slow bodies hold the address's five places
                stream = await _open(server)
                await stream.send_all(_slow_post(server, alice.cookie))
                held.append(stream)
            await trio.sleep(0.2)
            async with server.http(alice) as http:
                refused = await http.get("/api/me")
            async with server.http(alice) as http:
                healthz = await http.get("/healthz")
            for stream in held:
                await stream.aclose()
            await trio.sleep(0.2)
            async with server.http(alice) as http:
                after = await http.get("/api/me")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "too_many_requests"
    assert "retry-after" in refused.headers
    assert healthz.status_code == 429
    assert after.status_code == 200


async def test_the_address_cap_counts_the_forwarded_address_behind_a_proxy() -> None:
    settings = Settings(rate_limit=0, body_timeout=30, max_connections_per_address=2,
                        proxy_hops=1)
    async with running_server(settings) as server:
        alice = await server.create_user("alice")
        with trio.fail_after(15):
            held = []
            for _ in range(2):
                stream = await _open(server)
                await stream.send_all(
                    _slow_post(server, alice.cookie).replace(
                        b"Host: x\r\n", b"Host: x\r\nX-Forwarded-For: 203.0.113.7\r\n"))
                held.append(stream)
            await trio.sleep(0.2)
            async with server.http(alice) as http:
                same = await http.get("/api/me", headers={"X-Forwarded-For": "203.0.113.7"})
                other = await http.get("/api/me", headers={"X-Forwarded-For": "203.0.113.8"})
            for stream in held:
                await stream.aclose()
    assert same.status_code == 429
    assert other.status_code == 200


def test_the_open_file_limit_is_raised_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
    try:
        before = raise_descriptor_limit()
        assert before == (min(1024, hard), hard)
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_a_database_locked_by_another_process_is_503_with_retry_after(
    tmp_path: Path,
) -> None:
    """It was a 500 after ~5 s."""
    path = tmp_path / "locked.db"
    async with running_server(Settings(rate_limit=0), database=path) as server:
        alice = await server.create_user("alice")
        with trio.fail_after(30):
            locker = sqlite3.connect(path, isolation_level=None)
            locker.execute("BEGIN EXCLUSIVE")
            try:
                async with server.http(alice) as http:
                    locked = await http.post("/api/groups", json={"name": "g"})
            finally:
                locker.execute("ROLLBACK")
                locker.close()
            async with server.http(alice) as http:
                after = await http.post("/api/groups", json={"name": "g"})
    assert locked.status_code == 503
    assert locked.json()["error"]["code"] == "unavailable"
    assert locked.headers["retry-after"] == "2"
    assert after.status_code == 201
