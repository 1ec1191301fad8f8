#!/usr/bin/env python3
"""Soak test for trionet: N clients for M minutes at a steady mixed load, then all disconnect.

Each client holds one WebSocket (``?coalesce=1``, JWT auth) and sends one message every
``--interval`` seconds (a random phase each, so the load is steady): a private message to a
random other client, or a message to its group (groups of ``--group-size``). Every received
frame is checked against what the acks say each receiver should have got, so the report's
``lost`` is exact: (receiver, message) pairs that never arrived. After the clients leave it waits
until the server's live trio task count (``trionet_trio_tasks`` in ``/metrics``) is back to the
idle level measured before they came.

By default it starts the server itself (``python -m trionet serve`` on a free 127.0.0.1 port,
temporary database, random JWT secret and API key; ``--pin`` puts it on CPU 0 and the load
on CPU 1), and stops it by its PID at the end, then checks the database holds
every acked message exactly once. ``--url`` with ``--server-pid`` soaks a running server
instead (``TRIONET_JWT_SECRET`` and ``TRIONET_API_KEY`` must match it). It talks to 127.0.0.1
only, is bounded in time, shows a rich progress display on stderr, and ends with a table and
one JSON line on stdout (``--json-out`` writes it to a file too). Exit status 1 when anything
was lost, duplicated or leaked.

    .venv/bin/python scripts/soak.py                      # 1,000 clients, 10 minutes
    .venv/bin/python scripts/soak.py --clients 200 --minutes 1

Needs the bench extra (rich, psutil; it reuses helpers from scripts/loadtest.py).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from array import array
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import trio
import trio_websocket
from loadtest import (
    Monitor,
    View,
    _free_port,
    _stop,
    _wait_ready,
    check_loopback,
    err,
    latency_summary,
    raise_nofile,
    report,
)

MAX_CLIENTS = 9_000  # two descriptors each on this machine (server and load generator)
MAX_MINUTES = 180.0
#: seconds allowed for everything but the run itself (start, connect, drain, leave, settle)
OVERHEAD_BUDGET = 600.0


class SoakClient:
    """One user with one connection, and what it sent and received."""

    __slots__ = ("uid", "gid", "ws", "seq", "pending", "got", "dups", "close_code")

    def __init__(self, uid: int, gid: int) -> None:
        self.uid = uid
        self.gid = gid
        self.ws: trio_websocket.WebSocketConnection | None = None
        self.seq = 0
        #: client_id -> (kind, recipient user or group id, perf_counter_ns at send)
        self.pending: dict[str, tuple[str, int, int]] = {}
        #: ids of private and group messages received
        self.got: set[int] = set()
        self.dups = 0
        #: the close code, when the server closed the connection before we left
        self.close_code: int | None = None


class Soak:
    """Counters shared by every client, and the expectations the acks establish."""

    def __init__(self, args: argparse.Namespace, groups: dict[int, list[int]]) -> None:
        self.args = args
        self.groups = groups
        self.sent = 0
        self.acked = 0
        self.persisted_acks = 0
        self.unpersisted_acks = 0
        self.unpersisted_deliveries = 0
        self.delivered = 0
        self.expected = 0
        self.refused = 0
        self.error_codes: Counter[str] = Counter()
        self.presence = 0
        self.other = 0
        self.stray_acks = 0
        self.malformed = 0
        self.leaving = False
        #: recipient user id -> ids of private messages acked for it
        self.expect_private: dict[int, list[int]] = {}
        #: group id -> (message id, sender) of group messages acked
        self.expect_group: dict[int, list[tuple[int, int]]] = {g: [] for g in groups}
        self.acked_ids: list[int] = []
        self.ack_ns = array("q")
        self.delivery_ns = array("q")

    def handle(self, c: SoakClient, line: str) -> None:
        """Book-keeping for one frame ``c`` received (frames begin ``{"type":"<type>"``)."""
        head = line[:20]
        if head.startswith(('{"type":"private"', '{"type":"group"')):
            frame = json.loads(line)
            mid = frame["id"]
            if mid in c.got:
                c.dups += 1
            else:
                c.got.add(mid)
            self.delivered += 1
            if frame.get("persisted") is False:
                self.unpersisted_deliveries += 1
            try:  # content: soak:<sender>:<seq>:<perf_counter_ns at send>
                self.delivery_ns.append(time.perf_counter_ns()
                                        - int(frame["content"].rsplit(":", 1)[1]))
            except (ValueError, IndexError):
                self.malformed += 1
        elif head.startswith('{"type":"presence"'):
            self.presence += 1
        elif head.startswith('{"type":"ack"'):
            frame = json.loads(line)
            sent = c.pending.pop(str(frame.get("client_id")), None)
            if sent is None:
                self.stray_acks += 1
                return
            kind, target, sent_ns = sent
            self.ack_ns.append(time.perf_counter_ns() - sent_ns)
            mid = frame["id"]
            self.acked += 1
            self.acked_ids.append(mid)
            if frame.get("persisted"):
                self.persisted_acks += 1
            else:
                self.unpersisted_acks += 1
            if kind == "private":
                self.expect_private.setdefault(target, []).append(mid)
                self.expected += 1
            else:
                self.expect_group[target].append((mid, c.uid))
                self.expected += len(self.groups[target]) - 1
        elif head.startswith('{"type":"error"'):
            frame = json.loads(line)
            code = str(frame.get("code"))
            if self.error_codes[code] < 3:
                err.print(f"[yellow]error frame for user {c.uid}: {frame}")
            self.error_codes[code] += 1
            if c.pending.pop(str(frame.get("client_id")), None) is not None:
                self.refused += 1
        else:
            self.other += 1

    def unacked(self, clients: list[SoakClient]) -> int:
        return sum(len(c.pending) for c in clients)

    def reconcile(self, clients: list[SoakClient]) -> dict[str, int]:
        """Compare what each receiver should have got with what it got."""
        lost = unexpected = 0
        for c in clients:
            want = set(self.expect_private.get(c.uid, ()))
            want.update(mid for mid, sender in self.expect_group[c.gid] if sender != c.uid)
            lost += len(want - c.got)
            unexpected += len(c.got - want)
        return {"lost": lost, "unexpected": unexpected,
                "duplicates": sum(c.dups for c in clients)}


# -- the server -------------------------------------------------------------------------------


def parse_metrics(text: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                values[name] = float(value)
            except ValueError:
                continue
    return values


async def scrape(base: str, api_key: str) -> dict[str, float]:
    """``GET /metrics`` on a fresh connection (so every scrape costs the server the same)."""
    async with httpx.AsyncClient(base_url=base, timeout=10,
                                 headers={"Authorization": f"Bearer {api_key}"}) as http:
        response = await http.get("/metrics")
        response.raise_for_status()
        return parse_metrics(response.text)


def start_server(args: argparse.Namespace, workdir: Path, pin: bool) -> subprocess.Popen[bytes]:
    port = _free_port()
    args.url = f"http://127.0.0.1:{port}"
    db = workdir / "soak.db"
    args.db = str(db)
    env = dict(os.environ, TRIONET_JWT_SECRET=args.jwt_secret, TRIONET_API_KEY=args.api_key,
               TRIONET_RATE_LIMIT=str(args.rate_limit), TRIONET_LOG_LEVEL="WARNING")
    cmd = [sys.executable, "-m", "trionet", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--db", str(db)]
    if pin:
        cmd = ["taskset", "-c", "0", *cmd]
    log_path = workdir / "server.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                cwd=workdir)
    try:
        _wait_ready(port, proc, "/readyz", 30)
    except BaseException:
        _stop(proc)
        raise
    err.print(f"server PID {proc.pid} on {args.url} (log {log_path}"
              + (", pinned to CPU 0)" if pin else ")"))
    return proc


def database_size(db: str | None) -> dict[str, float] | None:
    """Sizes of the database file and its write-ahead log (a log that is never checkpointed
    grows without bound); None for a server this script did not start."""
    if db is None:
        return None
    sizes = {}
    for name, path in (("db", db), ("wal", db + "-wal"), ("shm", db + "-shm")):
        sizes[name] = round(os.path.getsize(path) / 2**20, 1) if os.path.exists(path) else 0.0
    return sizes


def code_version() -> str | None:
    """The commit the started server runs (``+dirty`` when trionet/ has uncommitted changes)."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10, check=True).stdout
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "trionet"],
                               capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return head.strip() + ("+dirty" if dirty.strip() else "")


def check_database(db: str, acked_ids: list[int]) -> dict[str, int]:
    """After the server stopped: every acked message is stored, none twice."""
    with sqlite3.connect(db) as conn:
        rows = [r[0] for r in conn.execute("SELECT id FROM messages")]
    stored = set(rows)
    return {"stored": len(rows), "stored_twice": len(rows) - len(stored),
            "acked_not_stored": len(set(acked_ids) - stored)}


# -- the clients ------------------------------------------------------------------------------


def plan_groups(args: argparse.Namespace) -> tuple[list[SoakClient], dict[int, list[int]]]:
    base = args.id_base or (int(time.time() * 1000) % 10**9) * 1000
    uids = [base + i + 1 for i in range(args.clients)]
    size = args.group_size
    chunks = [uids[i:i + size] for i in range(0, len(uids), size)]
    if len(chunks) > 1 and len(chunks[-1]) < 2:  # no group of one
        chunks[-2].extend(chunks.pop())
    groups = {base + g + 1: members for g, members in enumerate(chunks)}
    clients = [SoakClient(uid, gid) for gid, members in groups.items() for uid in members]
    return clients, groups


async def create_groups(base: str, api_key: str, groups: dict[int, list[int]]) -> None:
    """Groups (and their users) through the server API."""
    async with httpx.AsyncClient(base_url=base, timeout=30,
                                 headers={"Authorization": f"Bearer {api_key}"}) as http:
        for gid, members in groups.items():
            body = {"name": f"soak {gid}",
                    "members": [{"user_id": u, "status": "accepted"} for u in members]}
            response = await http.put(f"/api/server/groups/{gid}", json=body)
            if response.status_code >= 300:
                raise SystemExit(f"soak: PUT /api/server/groups/{gid}: "
                                 f"{response.status_code} {response.text[:300]}")


async def reader(soak: Soak, c: SoakClient, ws: trio_websocket.WebSocketConnection) -> None:
    try:
        while True:
            message = await ws.get_message()
            if isinstance(message, bytes):
                soak.other += 1
                continue
            for line in message.split("\n"):
                soak.handle(c, line)
    except trio_websocket.ConnectionClosed as exc:
        if not soak.leaving:
            c.close_code = exc.reason.code if exc.reason else 1006
            err.print(f"[red]user {c.uid}: the server closed the connection "
                      f"({c.close_code})")


async def sender(soak: Soak, c: SoakClient, uids: list[int], rng: random.Random,
                 start: float, end: float) -> None:
    args = soak.args
    interval = args.interval
    ws = c.ws
    assert ws is not None
    at = start + rng.uniform(0, interval)
    while at < end:
        await trio.sleep_until(at)
        at += interval
        if c.close_code is not None:
            return
        c.seq += 1
        cid = str(c.seq)
        sent_ns = time.perf_counter_ns()
        content = f"soak:{c.uid}:{c.seq}:{sent_ns}"
        if rng.random() < args.private_share:
            to = c.uid
            while to == c.uid:
                to = rng.choice(uids)
            frame: dict[str, Any] = {"type": "private", "to": to, "content": content,
                                     "client_id": cid}
            c.pending[cid] = ("private", to, sent_ns)
        else:
            frame = {"type": "group", "group_id": c.gid, "content": content, "client_id": cid}
            c.pending[cid] = ("group", c.gid, sent_ns)
        soak.sent += 1
        try:
            await ws.send_message(json.dumps(frame, separators=(",", ":")))
        except trio_websocket.ConnectionClosed:
            return


# -- the run ----------------------------------------------------------------------------------


class Phases:
    """The progress display, driven from trio."""

    def __init__(self, view: View) -> None:
        self.view = view

    async def tick(self, name: str, total: float, info: Callable[[], str],
                   done: Callable[[], float] | None = None, *,
                   task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Show phase ``name`` until cancelled: ``done()`` of ``total``, or seconds elapsed."""
        task = self.view.phase(name, total)
        started = time.perf_counter()
        task_status.started()
        try:
            while True:
                value = done() if done else time.perf_counter() - started
                self.view.update(task, round(min(value, total), 1), info())
                await trio.sleep(0.5)
        finally:
            value = done() if done else time.perf_counter() - started
            self.view.update(task, round(min(value, total), 1), info())


async def soak_run(args: argparse.Namespace,
                   server_pid: int) -> tuple[dict[str, Any], list[int]]:
    base = args.url
    check_loopback(base)
    ws_url = base.replace("http://", "ws://", 1) + "/ws?coalesce=1"
    clients, groups = plan_groups(args)
    soak = Soak(args, groups)
    uids = [c.uid for c in clients]
    monitor = Monitor([server_pid])
    view = View(not args.no_progress, "soak")
    phases = Phases(view)
    rng = random.Random(args.seed)
    exp = int(time.time() + args.minutes * 60 + OVERHEAD_BUDGET + 3600)
    tokens = {c.uid: jwt.encode({"sub": str(c.uid), "exp": exp}, args.jwt_secret, "HS256")
              for c in clients}
    result: dict[str, Any] = {"scenario": "soak", "target": "trionet"}
    load_start = os.getloadavg()

    def rss_mb(value: int) -> float:
        return round(value / 2**20, 1)

    def status() -> str:
        return (f"sent {soak.sent:,}  delivered {soak.delivered:,}  "
                f"server RSS {rss_mb(monitor.last_rss)} MB")

    idle = await scrape(base, args.api_key)
    tasks_idle = idle.get("trionet_trio_tasks")
    if tasks_idle is None:
        err.print("[yellow]the server has no trionet_trio_tasks metric: no task count")
    monitor.sample()
    rss_start = monitor.last_rss
    monitor.peak_rss = rss_start
    await create_groups(base, args.api_key, groups)

    with view:
        async with trio.open_nursery() as top:

            async def sample_rss() -> None:
                while True:
                    monitor.sample()
                    await trio.sleep(0.5)

            top.start_soon(sample_rss)
            # -- connect: each connection's reader starts at once (presence frames arrive) ------
            connected = 0
            failures = 0
            sem = trio.Semaphore(args.connect_concurrency)
            async with trio.open_nursery() as conns:
                async with trio.open_nursery() as connecting:
                    await connecting.start(phases.tick, "connect", len(clients), status,
                                           lambda: connected)

                    async def connect(c: SoakClient) -> None:
                        nonlocal connected, failures
                        headers = [(b"Authorization", f"Bearer {tokens[c.uid]}".encode())]
                        async with sem:
                            for attempt in range(3):
                                try:
                                    with trio.fail_after(30):
                                        ws = await trio_websocket.connect_websocket_url(
                                            conns, ws_url, extra_headers=headers,
                                            message_queue_size=64)
                                    break
                                except (OSError, trio.TooSlowError,
                                        trio_websocket.HandshakeError) as exc:
                                    if attempt == 2:
                                        failures += 1
                                        err.print(f"[red]user {c.uid} cannot connect: {exc!r}")
                                        return
                                    await trio.sleep(0.2 * (attempt + 1))
                        c.ws = ws
                        connected += 1
                        conns.start_soon(reader, soak, c, ws)

                    async with trio.open_nursery() as starters:
                        for c in clients:
                            starters.start_soon(connect, c)
                    connecting.cancel_scope.cancel()
                if failures:
                    raise SystemExit(f"soak: {failures} connections failed")
                await trio.sleep(1.0)  # presence frames of the arrivals settle
                # the load generator's own pauses would show up as latency: the connections'
                # objects live to the end, so keep the collector off them (as the server does)
                gc.collect()
                gc.freeze()
                gc.set_threshold(50_000, 20, 100)
                rss_connected = monitor.last_rss
                busy = await scrape(base, args.api_key)

                # -- run: steady load for --minutes --------------------------------------------
                duration = args.minutes * 60
                monitor.mark("start")
                start = trio.current_time()
                end = start + duration
                rss_series = [rss_connected]  # at every tenth of the run: growth or plateau?

                async def sample_series() -> None:
                    for k in range(1, 11):
                        await trio.sleep_until(start + duration * k / 10)
                        monitor.sample()
                        rss_series.append(monitor.last_rss)

                async with trio.open_nursery() as running:
                    await running.start(phases.tick, "run", duration, status)
                    running.start_soon(sample_series)
                    async with trio.open_nursery() as senders:
                        for c in clients:
                            senders.start_soon(sender, soak, c, uids, random.Random(rng.random()),
                                               start, end)
                    await trio.sleep_until(end + 0.01)  # the last sample of the series
                    running.cancel_scope.cancel()
                monitor.mark("end")
                elapsed = trio.current_time() - start

                # -- drain: every ack back, every expected delivery in -------------------------
                drain_start = trio.current_time()
                with trio.move_on_after(args.drain):
                    async with trio.open_nursery() as draining:
                        await draining.start(phases.tick, "drain", args.drain, status)
                        # polls two counters a frame updates; bounded by --drain
                        while (soak.unacked(clients)  # noqa: ASYNC110
                               or soak.delivered < soak.expected):
                            await trio.sleep(0.1)
                        draining.cancel_scope.cancel()
                drain_s = trio.current_time() - drain_start
                closed_by_server = Counter(str(c.close_code) for c in clients
                                           if c.close_code is not None)

                # -- leave: every client closes (1000) ------------------------------------------
                soak.leaving = True
                left = 0
                async with trio.open_nursery() as leaving:
                    await leaving.start(phases.tick, "disconnect", len(clients), status,
                                        lambda: left)

                    async def leave(c: SoakClient) -> None:
                        nonlocal left
                        if c.ws is not None:
                            with trio.move_on_after(15):
                                await c.ws.aclose()
                        left += 1

                    async with trio.open_nursery() as closers:
                        for c in clients:
                            closers.start_soon(leave, c)
                    leaving.cancel_scope.cancel()
                conns.cancel_scope.cancel()  # anything trio-websocket still runs

            # -- settle: the server's task count back to idle -------------------------------------
            after: dict[str, float] = {}
            settle_start = trio.current_time()
            with trio.move_on_after(args.settle):
                async with trio.open_nursery() as settling:
                    await settling.start(phases.tick, "settle", args.settle,
                                         lambda: f"server tasks "
                                                 f"{_int(after.get('trionet_trio_tasks'))} "
                                                 f"(idle {_int(tasks_idle)})")
                    while True:
                        after = await scrape(base, args.api_key)
                        if after.get("trionet_connections") == 0 and (
                            tasks_idle is None or after.get("trionet_trio_tasks", 0) <= tasks_idle
                        ):
                            break
                        await trio.sleep(0.5)
                    settling.cancel_scope.cancel()
            settle_s = trio.current_time() - settle_start
            monitor.sample()
            rss_end = monitor.last_rss
            top.cancel_scope.cancel()

    check = soak.reconcile(clients)

    def delta(name: str) -> int | None:
        """A server counter's growth from before the clients came to after they left."""
        if name not in after:
            return None
        return int(after[name] - idle.get(name, 0.0))

    def over(le: str) -> int | None:
        """Commits slower than ``le`` seconds during the soak."""
        total = delta("trionet_commit_seconds_count")
        within = delta(f'trionet_commit_seconds_bucket{{le="{le}"}}')
        return None if total is None or within is None else total - within
    tasks_after = after.get("trionet_trio_tasks")
    usage = monitor.usage("start", "end")
    result.update(
        clients=len(clients),
        groups=len(groups),
        group_size=args.group_size,
        minutes=args.minutes,
        interval_s=args.interval,
        private_share=args.private_share,
        duration_s=round(elapsed, 1),
        sent=soak.sent,
        sent_per_s=round(soak.sent / elapsed, 1),
        acked=soak.acked,
        persisted_acks=soak.persisted_acks,
        unpersisted_acks=soak.unpersisted_acks,
        unacked=soak.unacked(clients),
        refused=soak.refused,
        expected_deliveries=soak.expected,
        delivered=soak.delivered,
        delivered_per_s=round(soak.delivered / elapsed, 1),
        unpersisted_deliveries=soak.unpersisted_deliveries,
        lost=check["lost"],
        duplicates=check["duplicates"],
        unexpected=check["unexpected"],
        error_frames=dict(soak.error_codes),
        presence_frames=soak.presence,
        closed_by_server=dict(closed_by_server),
        drain_s=round(drain_s, 2),
        ack_latency_ms=latency_summary(list(soak.ack_ns)),
        delivery_latency_ms=latency_summary(list(soak.delivery_ns)),
        server_rss_mb={"start": rss_mb(rss_start), "connected": rss_mb(rss_connected),
                       "peak": rss_mb(monitor.peak_rss), "end": rss_mb(rss_end)},
        server_rss_mb_each_tenth_of_run=[rss_mb(v) for v in rss_series],
        trio_tasks={"idle": _int(tasks_idle), "connected": _int(busy.get("trionet_trio_tasks")),
                    "after": _int(tasks_after)},
        tasks_leaked=(None if tasks_idle is None or tasks_after is None
                      else int(tasks_after - tasks_idle)),
        connections_after=_int(after.get("trionet_connections")),
        settle_s=round(settle_s, 2),
        database_mb=database_size(getattr(args, "db", None)),
        slow_consumer_closes=delta("trionet_slow_consumer_closes_total"),
        persist_failures=delta("trionet_persist_failures_total"),
        commits=delta("trionet_commit_seconds_count"),
        commits_over_100ms=over("0.1"),
        commits_over_1s=over("1.0"),
        server_cpu_pct=usage["server_cpu_pct"],
        loadgen_cpu_pct=usage["loadgen_cpu_pct"],
        loadgen_saturated=usage["loadgen_saturated"],
        other_cpu_pct=usage["other_cpu_pct"],
        loadavg_start=round(load_start[0], 2),
        loadavg_end=round(os.getloadavg()[0], 2),
    )
    return result, soak.acked_ids


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=1000, help="connections, one user each")
    p.add_argument("--minutes", type=float, default=10.0, help="how long the load runs")
    p.add_argument("--interval", type=float, default=4.0,
                   help="seconds between one client's messages (default 4: 250 msg/s for 1,000)")
    p.add_argument("--group-size", type=int, default=20, help="members per group")
    p.add_argument("--private-share", type=float, default=0.5,
                   help="share of messages that are private (the rest go to the group)")
    p.add_argument("--url", help="soak a running server (http://127.0.0.1:PORT)")
    p.add_argument("--server-pid", type=int, help="its PID (for RSS and CPU), with --url")
    p.add_argument("--jwt-secret", default=os.environ.get("TRIONET_JWT_SECRET"))
    p.add_argument("--api-key", default=os.environ.get("TRIONET_API_KEY"))
    p.add_argument("--rate-limit", type=float, default=100.0,
                   help="TRIONET_RATE_LIMIT for the server this script starts")
    p.add_argument("--connect-concurrency", type=int, default=50)
    p.add_argument("--drain", type=float, default=60.0,
                   help="seconds to wait for outstanding acks and deliveries")
    p.add_argument("--settle", type=float, default=60.0,
                   help="seconds to wait for the task count to return to idle")
    p.add_argument("--pin", action="store_true",
                   help="pin the server to CPU 0 and this load generator to CPU 1 (on a machine "
                        "others share, leaving the scheduler free is usually fairer)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--id-base", type=int, default=0, help="first user/group id minus one")
    p.add_argument("--json-out", help="also write the JSON line to this file")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if not 2 <= args.clients <= MAX_CLIENTS:
        p.error(f"--clients must be between 2 and {MAX_CLIENTS}")
    if not 0 < args.minutes <= MAX_MINUTES:
        p.error(f"--minutes must be above 0 and at most {MAX_MINUTES:g}")
    if args.interval < 0.05 or args.group_size < 2 or not 0 <= args.private_share <= 1:
        p.error("--interval >= 0.05, --group-size >= 2, 0 <= --private-share <= 1")
    if args.drain > 300 or args.settle > 300:
        p.error("--drain and --settle are at most 300 seconds")
    if (args.url is None) != (args.server_pid is None):
        p.error("--url and --server-pid go together")

    soft, hard = raise_nofile(2 * args.clients + 500)  # the server (a child) inherits it
    if soft < 2 * args.clients + 200:
        raise SystemExit(f"soak: {args.clients} clients need ulimit -n above "
                         f"{2 * args.clients + 200} (hard limit {hard})")
    proc: subprocess.Popen[bytes] | None = None
    workdir: Path | None = None
    version: str | None = None
    if args.url is None:
        args.jwt_secret = secrets.token_urlsafe(32)
        args.api_key = secrets.token_urlsafe(24)
        pin = (args.pin and {0, 1} <= os.sched_getaffinity(0)
               and shutil.which("taskset") is not None)
        workdir = Path(tempfile.mkdtemp(prefix="trionet-soak-"))
        version = code_version()
        proc = start_server(args, workdir, pin)
        if pin:
            os.sched_setaffinity(0, {1})
        server_pid = proc.pid
    else:
        check_loopback(args.url)
        args.url = args.url.rstrip("/")
        if not args.jwt_secret or not args.api_key:
            raise SystemExit("soak: set TRIONET_JWT_SECRET and TRIONET_API_KEY (or --jwt-secret "
                             "and --api-key) to those of the server")
        server_pid = args.server_pid
    err.print(f"{args.clients} clients, {args.minutes:g} min, one message every "
              f"{args.interval:g} s each (~{args.clients / args.interval:,.0f} msg/s), groups of "
              f"{args.group_size}; open-file limit {soft}")
    budget = args.minutes * 60 + args.drain + args.settle + OVERHEAD_BUDGET
    try:
        result, acked_ids = trio.run(_bounded, args, server_pid, budget)
    finally:
        if proc is not None:  # only the server this script started, by its PID
            _stop(proc)
    if proc is not None:
        result["server_code"] = version
        result["server_exit"] = proc.returncode
        result.update(check_database(args.db, acked_ids))
        assert workdir is not None
        for f in workdir.glob("soak.db*"):
            f.unlink()
        err.print(f"server log: {workdir / 'server.log'}")
    sizes = result.get("database_mb")
    if sizes and sizes["wal"] > 64 and sizes["wal"] > 4 * sizes["db"]:
        err.print(f"[bold yellow]the write-ahead log ended at {sizes['wal']:,} MB beside a "
                  f"{sizes['db']:,} MB database: is it ever checkpointed?")
    report(result, args.json_out)
    bad = (result["lost"] or result["duplicates"] or result["unexpected"] or result["unacked"]
           or result["closed_by_server"] or result.get("acked_not_stored")
           or result.get("stored_twice") or (result["tasks_leaked"] or 0) > 0)
    sys.exit(1 if bad else 0)


async def _bounded(args: argparse.Namespace, server_pid: int,
                   budget: float) -> tuple[dict[str, Any], list[int]]:
    try:
        with trio.fail_after(budget):
            return await soak_run(args, server_pid)
    except BaseExceptionGroup as group:  # one error from the nurseries: raise it as it is
        leaves = _leaves(group)
        if len(leaves) == 1:
            raise leaves[0] from None
        raise


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        found.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return found


if __name__ == "__main__":
    main()
