"""Faults: a killed server process, a locked database, a dead peer, shutdown under load."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import trio

from trionet.client import Client
from trionet.settings import Settings
from trionet.testing import TestServer, running_server

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server_process(db: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """`trionet serve` in its own process; killed (by its PID) if still running at the end."""
    env = {**os.environ, "TRIONET_RATE_LIMIT": "0", "TRIONET_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "trionet", "serve", "--host", "127.0.0.1",
         "--port", str(port), "--db", str(db)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()


async def wait_ready(url: str) -> None:
    async with httpx.AsyncClient() as http:
        while True:
            try:
                if (await http.get(url + "/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await trio.sleep(0.05)


async def login(url: str, name: str) -> tuple[int, str]:
    async with httpx.AsyncClient(base_url=url) as http:
        body = {"username": name, "password": "password123"}
        await http.post("/api/auth/register", json=body)
        response = await http.post("/api/auth/login", json=body)
        data = response.json()
        return int(data["id"]), str(data["token"])


async def test_sigkill_loses_nothing_acked_and_resuming_clients_get_each_message_once(
    tmp_path: Path,
) -> None:
    db, port = tmp_path / "k.db", free_port()
    url, ws_url = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/ws"
    acked: list[int] = []
    received: list[int] = []
    with trio.fail_after(60):
        with server_process(db, port) as proc:
            await wait_ready(url)
            receiver_id, receiver_token = await login(url, "receiver")
            senders = [await login(url, f"sender{i}") for i in range(3)]
            async with trio.open_nursery() as nursery:
                receiver = Client(ws_url, token=receiver_token, backoff_base=0.05,
                                  backoff_max=0.3)
                await nursery.start(receiver.run)

                async def receive() -> None:
                    async for frame in receiver:
                        if frame["type"] == "private":
                            received.append(frame["id"])

                async def send(token: str, n: int) -> None:
                    client = Client(ws_url, token=token, backoff_base=0.05, backoff_max=0.3)
                    async with trio.open_nursery() as inner:
                        await inner.start(client.run)
                        for i in range(n):
                            ack = await client.send_private(receiver_id, f"m{i}")
                            if ack is not None and ack.persisted:
                                acked.append(ack.id)  # type: ignore[arg-type]
                        inner.cancel_scope.cancel()

                nursery.start_soon(receive)
                for _sid, token in senders:
                    nursery.start_soon(send, token, 150)
                while len(acked) < 60:
                    await trio.sleep(0.01)
                proc.send_signal(signal.SIGKILL)  # mid-traffic, no goodbye
                proc.wait(timeout=10)
                with server_process(db, port):
                    await wait_ready(url)
                    while len(acked) < 450 or set(received) < set(acked):
                        await trio.sleep(0.02)
                    nursery.cancel_scope.cancel()
    stored = {r[0] for r in sqlite3.connect(db).execute("SELECT id FROM messages")}
    assert set(acked) <= stored, "a message acked as persisted was lost"
    assert len(stored) == 450, "a resent message was stored twice"
    counts = Counter(received)
    assert set(counts) == stored and max(counts.values()) == 1


async def test_locked_database_delays_nothing_and_the_writes_land_after(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    async with running_server(Settings(rate_limit=0, commit_timeout=0.3), database=path) as server:
        a, b = await server.create_user("a"), await server.create_user("b")
        with trio.fail_after(30):
            async with server.connect(a) as wa, server.connect(b) as wb:
                locker = sqlite3.connect(path, isolation_level=None)
                locker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
                try:
                    for i in range(3):
                        started = trio.current_time()
                        await TestServer.send_json(wa, {"type": "private", "to": b.id,
                                                        "content": f"x{i}", "client_id": str(i)})
                        live = await TestServer.receive_json(wb)
                        assert trio.current_time() - started < 2
                        assert live["persisted"] is False
                        ack = await TestServer.receive_json(wa)
                        assert ack["persisted"] is False
                finally:
                    locker.execute("ROLLBACK")
                    locker.close()
                while True:  # the buffered writes land once the lock is gone
                    count = sqlite3.connect(path).execute(
                        "SELECT count(*) FROM messages").fetchone()[0]
                    if count == 3:
                        break
                    await trio.sleep(0.05)


async def test_peer_that_vanishes_without_close_is_dropped_and_shown_offline() -> None:
    settings = Settings(rate_limit=0, ping_interval=0.4)
    async with running_server(settings) as server:
        a, b = await server.create_user("a"), await server.create_user("b")
        await server.create_group("g", a, [b])
        with trio.fail_after(20):
            async with server.connect(a) as wa:
                # b speaks just enough WebSocket to connect, then never reads or answers again
                stream = await server.raw_websocket(b)
                presence = await TestServer.receive_json(wa, ignore=())
                assert presence["type"] == "presence" and presence["online"] is True
                started = trio.current_time()
                presence = await TestServer.receive_json(wa, seconds=15, ignore=())
                assert presence == {**presence, "user_id": b.id, "online": False}
                assert trio.current_time() - started < settings.read_timeout + 2
                assert not server.services.manager.is_online(b.id)
                await stream.aclose()


async def test_shutdown_under_load_then_restart_misses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    port = free_port()
    received: list[int] = []
    acked: list[int] = []
    codes: list[int] = []
    with trio.fail_after(60):
        async with running_server(database=path, port=port) as server:
            a, b = await server.create_user("a"), await server.create_user("b")
            ws_url = server.ws_url
            async with trio.open_nursery() as nursery:
                ca = Client(ws_url, token=a.token, backoff_base=0.05, backoff_max=0.3)
                cb = Client(ws_url, token=b.token, backoff_base=0.05, backoff_max=0.3)
                await nursery.start(ca.run)
                await nursery.start(cb.run)

                async def receive() -> None:
                    async for frame in cb:
                        if frame["type"] == "private":
                            received.append(frame["id"])

                async def send() -> None:
                    for i in range(300):
                        ack = await ca.send_private(b.id, str(i))
                        assert ack is not None
                        acked.append(ack.id)  # type: ignore[arg-type]

                nursery.start_soon(receive)
                nursery.start_soon(send)
                while len(acked) < 100:
                    await trio.sleep(0.005)
                await server.stop()  # graceful: clients get 1001
                await server.stopped.wait()
                codes.append(ca.last_close_code or 0)
                async with running_server(database=path, port=port):
                    while len(acked) < 300 or set(received) < set(acked):
                        await trio.sleep(0.02)
                    nursery.cancel_scope.cancel()
    assert codes == [1001]
    counts = Counter(received)
    assert set(counts) == set(acked) and max(counts.values()) == 1
