"""A node killed with SIGKILL while clients on every node send: nothing acked is lost."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import trio
import trio_websocket
from faults import free_port, wait_ready

from trionet.testing import fresh_redis_prefix, scratch_database

PASSWORD = "0123456789"
LEASE = 2.0  # TRIONET_REDIS_LEASE: the dead node's users go offline within 1.2x this


@asynccontextmanager
async def node_process(env: dict[str, str], log: Path) -> AsyncIterator[tuple[str, trio.Process]]:
    port = free_port()
    with log.open("wb") as out:
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "trionet", "serve", "--port", str(port)],
            env=env, stdout=out, stderr=out)
        try:
            url = f"http://127.0.0.1:{port}"
            await wait_ready(url, process)
            yield url, process
        finally:
            if process.returncode is None:
                process.kill()
            with trio.move_on_after(10):
                await process.wait()


async def login(url: str, name: str) -> tuple[int, str]:
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        r = await http.post("/api/auth/register", json={"username": name, "password": PASSWORD})
        assert r.status_code == 201, r.text
        r = await http.post("/api/auth/login", json={"username": name, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return r.json()["id"], r.json()["token"]


async def connect(nursery: trio.Nursery, url: str, token: str,
                  query: str = "") -> trio_websocket.WebSocketConnection:
    ws_url = url.replace("http", "ws") + "/ws" + (f"?{query}" if query else "")
    return await trio_websocket.connect_websocket_url(
        nursery, ws_url, extra_headers=[(b"Cookie", f"trionet_session={token}".encode())])


async def frames(ws: trio_websocket.WebSocketConnection) -> AsyncIterator[dict[str, Any]]:
    try:
        while True:
            yield json.loads(await ws.get_message())
    except trio_websocket.ConnectionClosed:
        return


async def test_a_killed_node_loses_nothing_acked_and_its_users_go_offline(tmp_path: Path) -> None:
    async with scratch_database(tmp_path) as database, fresh_redis_prefix() as (redis, prefix):
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRIONET_")}
        env.update(TRIONET_DATABASE=database, TRIONET_REDIS_URL=redis,
                   TRIONET_REDIS_PREFIX=prefix, TRIONET_RATE_LIMIT="0",
                   TRIONET_REGISTER_RATE="0", TRIONET_REDIS_LEASE=str(LEASE),
                   TRIONET_HOST="127.0.0.1")
        async with node_process(env, tmp_path / "a.log") as (url_a, proc_a), \
                node_process(env, tmp_path / "b.log") as (url_b, _proc_b):
            with trio.fail_after(90):
                await _scenario(url_a, proc_a, url_b)


async def _scenario(url_a: str, proc_a: trio.Process, url_b: str) -> None:
    alice_id, alice = await login(url_a, "alice")
    bob_id, bob = await login(url_b, "bob")
    carol_id, carol = await login(url_a, "carol")
    async with trio.open_nursery() as nursery:
        wa = await connect(nursery, url_a, alice)
        wb = await connect(nursery, url_b, bob)
        wc = await connect(nursery, url_a, carol)
        # carol and bob have a conversation: bob is told when carol comes and goes
        await wc.send_message(json.dumps({"type": "private", "to": bob_id, "content": "hey",
                                          "client_id": "c0"}))
        await wb.send_message(json.dumps({"type": "private", "to": carol_id, "content": "yo",
                                          "client_id": "b0"}))

        acked_to_alice: dict[int, str] = {}  # what bob sent alice, acked persisted
        seen_by_alice: list[int] = []
        carol_offline = trio.Event()
        killed = trio.Event()
        stop_sending = trio.Event()

        async def bob_sends() -> None:
            n = 0
            while not stop_sending.is_set():
                n += 1
                await wb.send_message(json.dumps({"type": "private", "to": alice_id,
                                                  "content": f"b{n}", "client_id": f"b{n}"}))
                await trio.sleep(0.02)

        async def bob_reads() -> None:
            async for frame in frames(wb):
                if frame["type"] == "ack" and frame["client_id"].startswith("b") \
                        and frame["client_id"] != "b0" and frame.get("persisted"):
                    acked_to_alice[frame["id"]] = frame["client_id"]
                elif frame["type"] == "presence" and frame["user_id"] == carol_id \
                        and not frame["online"] and killed.is_set():
                    carol_offline.set()

        async def alice_reads(ws: trio_websocket.WebSocketConnection) -> None:
            async for frame in frames(ws):
                if frame["type"] == "private" and frame["from"] == bob_id:
                    seen_by_alice.append(frame["id"])

        nursery.start_soon(bob_sends)
        nursery.start_soon(bob_reads)
        nursery.start_soon(alice_reads, wa)
        await trio.sleep(1)
        assert seen_by_alice, "nothing crossed before the kill"
        last_seen = max(seen_by_alice)
        proc_a.send_signal(signal.SIGKILL)
        killed.set()
        t_killed = trio.current_time()
        await trio.sleep(0.5)  # bob goes on sending while alice reconnects
        wa2 = await connect(nursery, url_b, alice, query=f"since={last_seen}")
        nursery.start_soon(alice_reads, wa2)
        await trio.sleep(1)
        stop_sending.set()
        await carol_offline.wait()
        offline_after = trio.current_time() - t_killed
        await trio.sleep(0.5)  # the last acks and deliveries
        nursery.cancel_scope.cancel()
    assert acked_to_alice
    missing = set(acked_to_alice) - set(seen_by_alice)
    assert not missing, f"acked but never delivered to alice: {sorted(missing)[:5]}"
    # the look-back replay may repeat what alice had: each id counts once for her
    assert len(set(seen_by_alice)) >= len(acked_to_alice)
    assert offline_after < LEASE * 1.2 + 2.0, offline_after
