"""``trionet serve --workers N``: worker processes on one port act as one server."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import trio
import trio_websocket
from faults import children_of, free_port, wait_ready

from trionet.testing import fresh_redis_prefix, scratch_database

PASSWORD = "0123456789"


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


async def nodes_seen(url: str, want: int) -> dict[str, float]:
    """Scrape /metrics on fresh connections until ``want`` nodes answered: each node's
    connection count."""
    seen: dict[str, float] = {}
    while len(seen) < want:
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            text = (await client.get("/metrics")).text
        node = re.search(r'^trionet_node\{node="([^"]+)"\} 1', text, re.M)
        count = re.search(r"^trionet_connections (\S+)", text, re.M)
        assert node and count, text[:300]
        seen[node.group(1)] = float(count.group(1))
    return seen


async def test_workers_share_one_port_deliver_across_and_stop_gracefully(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with scratch_database(tmp_path) as database, fresh_redis_prefix() as (redis, prefix):
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRIONET_")}
        env.update(TRIONET_DATABASE=database, TRIONET_REDIS_URL=redis,
                   TRIONET_REDIS_PREFIX=prefix, TRIONET_RATE_LIMIT="0",
                   TRIONET_REGISTER_RATE="0", TRIONET_SHUTDOWN_TIMEOUT="3",
                   TRIONET_HOST="127.0.0.1", TRIONET_PORT=str(port))
        log_path = tmp_path / "log"
        with log_path.open("wb") as log:
            process = await trio.lowlevel.open_process(
                [sys.executable, "-m", "trionet", "serve", "--workers", "2"], env=env,
                stdout=log, stderr=log, start_new_session=True)
            try:
                with trio.fail_after(60):
                    await _run_scenario(url, process)
                workers = children_of(process.pid)
                process.send_signal(signal.SIGTERM)
                with trio.fail_after(20):
                    code = await process.wait()
            finally:
                if process.returncode is None:
                    workers = children_of(process.pid)
                    os.killpg(process.pid, signal.SIGKILL)  # the workers follow (pdeathsig)
                    with trio.move_on_after(5):
                        await process.wait()
    text = log_path.read_text()
    assert code == 0, text
    assert "Traceback" not in text, text
    assert len(workers) == 2, text
    assert not any(alive(pid) for pid in workers)
    assert text.count("shutdown complete in") == 2, text  # each worker drained


async def test_workers_stay_up_and_do_not_outlive_a_killed_supervisor(tmp_path: Path) -> None:
    async with scratch_database(tmp_path) as database, fresh_redis_prefix() as (redis, prefix):
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRIONET_")}
        env.update(TRIONET_DATABASE=database, TRIONET_REDIS_URL=redis,
                   TRIONET_REDIS_PREFIX=prefix, TRIONET_HOST="127.0.0.1",
                   TRIONET_PORT=str(free_port()))
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "trionet", "serve", "--workers", "2"], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        workers: list[int] = []
        try:
            with trio.fail_after(40):
                while len(workers) < 2:
                    await trio.sleep(0.1)
                    workers = children_of(process.pid)
                # past trio's idle-thread timeout (10 s): the thread that started the workers
                # is gone, and they must not take that for their supervisor's death
                await trio.sleep(11)
                assert sorted(children_of(process.pid)) == sorted(workers)
                # a worker that dies is started again
                os.kill(workers[0], signal.SIGKILL)
                while True:
                    now = children_of(process.pid)
                    if len(now) == 2 and workers[0] not in now:
                        break
                    await trio.sleep(0.1)
                workers = now
                process.kill()
                await process.wait()
                while any(alive(pid) for pid in workers):
                    await trio.sleep(0.1)
        finally:
            for pid in workers:  # whatever is left of this test's own workers
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


async def _run_scenario(url: str, process: trio.Process) -> None:
    await wait_ready(url, process)
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        users = []
        for i in range(16):
            r = await http.post("/api/auth/register",
                                json={"username": f"user{i}", "password": PASSWORD})
            assert r.status_code == 201, r.text
            r = await http.post("/api/auth/login",
                                json={"username": f"user{i}", "password": PASSWORD})
            assert r.status_code == 200, r.text
            users.append((r.json()["id"], r.json()["token"]))
    ws_url = url.replace("http", "ws") + "/ws"
    async with trio.open_nursery() as nursery:
        sockets = []
        for _uid, token in users:
            sockets.append(await trio_websocket.connect_websocket_url(
                nursery, ws_url, extra_headers=[(b"Cookie", f"trionet_session={token}".encode())]))
        seen = await nodes_seen(url, 2)
        assert all(count >= 1 for count in seen.values()), seen  # both workers hold sockets
        # every user writes to the next one: some of these cross between the workers
        for n, ws in enumerate(sockets):
            to = users[(n + 1) % len(users)][0]
            await ws.send_message(json.dumps({"type": "private", "to": to,
                                              "content": f"hi {n}", "client_id": f"c{n}"}))
        for n, ws in enumerate(sockets):
            got: set[str] = set()
            while len(got) < 2:  # the ack of its own, the message from the previous user
                frame = json.loads(await ws.get_message())
                if frame["type"] == "ack":
                    got.add("ack")
                elif frame["type"] == "private":
                    assert frame["content"] == f"hi {(n - 1) % len(users)}"
                    got.add("message")
        for ws in sockets:
            await ws.aclose()
