#!/usr/bin/env python3
"""Load tests for trionet (and for any server speaking its JSON protocol, such as the
reference peer in ``scripts/peers/``).

Scenarios (each bounded in connections and time; it talks to 127.0.0.1 only and stops by
itself):

    fanout   G groups x M members, one sender per group: fixed ``--rate`` per group, or full
             speed with a bounded window of messages in flight per group
    private  P pairs in closed-loop ping-pong of private messages (persisted by trionet)
    idle     N connections held S seconds; server RSS per connection
    history  paged HTTP reads of ``GET /api/messages/private`` while pairs keep writing
    bench    trionet and the reference peer side by side (each pinned to CPU 0, the load on
             CPU 1), every scenario of issue 5, both results and their ratio

The load generator has one core against the server's one, so it is built to be cheap:
asyncio on uvloop with picows (a Cython WebSocket client); most receivers only count frames
with a byte scan, a few samplers per group decode every frame and record latency from a
send timestamp carried in the content (``L<perf_counter_ns>:<seq>:...``). Its own CPU is
reported, and flagged when it saturates (above 90 % of its core).

Every scenario ends with a rich table and one JSON line on stdout (``--json-out`` also
writes it to a file). Users come from JWTs (``TRIONET_JWT_SECRET``; trionet creates a user
the first time it sees one), groups from the server API (``TRIONET_API_KEY``). Run the
server with ``TRIONET_RATE_LIMIT=0``.

    .venv/bin/python scripts/loadtest.py fanout --url http://127.0.0.1:8000 --coalesce \\
        --groups 10 --members 100 --duration 10 --server-pid $(pgrep -n trionet)
    .venv/bin/python scripts/loadtest.py bench --duration 10

Against a deployment of several nodes (``scripts/cluster``), give every node's URL: the
connections alternate between them, so a group's members (and a pair's two sides) sit on
different nodes, and every node's process is monitored:

    .venv/bin/python scripts/loadtest.py fanout --url http://127.0.0.1:8001,http://127.0.0.1:8002 \
        --server-pid 1234,1235 --rate 50
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import logging
import math
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import jwt
import psutil
import uvloop
from picows import WSCloseCode, WSListener, WSMsgType, WSTransport, ws_connect
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
PEER = ROOT / "scripts" / "peers" / "reference_peer.py"

TEXT = WSMsgType.TEXT
CONT = WSMsgType.CONTINUATION
CLOSE = WSMsgType.CLOSE

GROUP_PAT = b'"type":"group"'
PRIVATE_PAT = b'"type":"private"'
ACK_PAT = b'"type":"ack"'
ERROR_PAT = b'"type":"error"'
PERSISTED_PAT = b'"persisted":true'
UNPERSISTED_PAT = b'"persisted":false'

#: the load generator counts as saturated above this share of its one core
SATURATED = 90.0
MAX_CONNECTIONS = 19_000
MAX_SECONDS = 3600.0

err = Console(stderr=True)
out = Console()
now_ns = time.perf_counter_ns


# -- small helpers ----------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, math.ceil(q / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def latency_summary(samples_ns: list[int]) -> dict[str, float | int | None]:
    ms = sorted(v / 1e6 for v in samples_ns)
    return {
        "samples": len(ms),
        "p50": _round(percentile(ms, 50)),
        "p90": _round(percentile(ms, 90)),
        "p99": _round(percentile(ms, 99)),
        "max": _round(ms[-1] if ms else None),
    }


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def raise_nofile(wanted: int) -> tuple[int, int]:
    """Raise the soft open-file limit towards ``wanted`` within the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft, hard


def check_loopback(url: str) -> tuple[str, int]:
    """Host and port of ``url``; refuses anything but a loopback address."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if host == "localhost":
        host = "127.0.0.1"
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SystemExit(f"loadtest: refusing {url!r}: only loopback addresses are load-tested")
    if parts.scheme not in ("http", "ws"):
        raise SystemExit("loadtest: use an http:// (or ws://) URL on 127.0.0.1")
    return host, parts.port or 80


class Http:
    """A minimal HTTP/1.1 client with keep-alive (no dependency, cheap enough for paging)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._r: asyncio.StreamReader | None = None
        self._w: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self._w is not None:
            self._w.close()
            with contextlib.suppress(Exception):
                await self._w.wait_closed()
        self._r = self._w = None

    async def request(self, method: str, path: str, *, token: str | None = None,
                      body: Any = None) -> tuple[int, bytes]:
        data = b"" if body is None else json.dumps(body).encode()
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}",
                f"Content-Length: {len(data)}"]
        if body is not None:
            head.append("Content-Type: application/json")
        if token is not None:
            head.append(f"Authorization: Bearer {token}")
        raw = ("\r\n".join(head) + "\r\n\r\n").encode() + data
        for attempt in range(2):
            if self._w is None:
                self._r, self._w = await asyncio.open_connection(self.host, self.port)
            assert self._r is not None and self._w is not None
            try:
                self._w.write(raw)
                return await self._response()
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    async def _response(self) -> tuple[int, bytes]:
        assert self._r is not None
        head = (await self._r.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip().lower()
        if headers.get("transfer-encoding") == "chunked":
            chunks = []
            while True:
                size = int((await self._r.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await self._r.readexactly(size + 2)
                if size == 0:
                    break
                chunks.append(chunk[:-2])
            body = b"".join(chunks)
        elif "content-length" in headers:
            body = await self._r.readexactly(int(headers["content-length"]))
        else:
            body = await self._r.read()
            headers["connection"] = "close"
        if headers.get("connection") == "close" or head[0].startswith("HTTP/1.0"):
            await self.close()
        return status, body


def server_pids(raw: str | int | None) -> list[int]:
    """``--server-pid``: none, one, or several comma-separated process ids."""
    if raw is None or raw == "":
        return []
    return [int(part) for part in str(raw).split(",") if part.strip()]


class Monitor:
    """CPU and RSS of the server (``--server-pid``: one or more processes, comma-separated,
    and their children: the nodes of a deployment) and of this process."""

    def __init__(self, server_pids: Sequence[int]) -> None:
        self.servers = [psutil.Process(pid) for pid in server_pids]
        self.server = self.servers[0] if self.servers else None
        self.me = psutil.Process()
        self.peak_rss = 0
        self.last_rss = 0
        self._marks: dict[str, tuple[float, float, float]] = {}

    def _procs(self) -> list[psutil.Process]:
        found: list[psutil.Process] = []
        for server in self.servers:
            with contextlib.suppress(psutil.Error):
                found += [server, *server.children(recursive=True)]
        return found

    def server_cpu(self) -> float:
        total = 0.0
        for p in self._procs():
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
        return total

    def server_rss(self) -> int:
        total = 0
        for p in self._procs():
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total

    def own_cpu(self) -> float:
        t = self.me.cpu_times()
        return t.user + t.system

    def sample(self) -> None:
        if self.server is not None:
            self.last_rss = self.server_rss()
            self.peak_rss = max(self.peak_rss, self.last_rss)

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(0.25)

    @staticmethod
    def machine_busy() -> float:
        """CPU seconds every core spent on anything (softirq included) since boot."""
        total = 0.0
        for t in psutil.cpu_times(percpu=True):
            total += sum(t) - t.idle - getattr(t, "iowait", 0.0)
        return total

    def mark(self, name: str) -> None:
        self._marks[name] = (time.perf_counter(), self.server_cpu(), self.own_cpu(),
                             self.machine_busy())

    def usage(self, start: str, end: str) -> dict[str, Any]:
        t0, s0, o0, m0 = self._marks[start]
        t1, s1, o1, m1 = self._marks[end]
        wall = max(t1 - t0, 1e-9)
        own = 100 * (o1 - o0) / wall
        alive = self.server is not None and self.server.is_running()
        server = 100 * (s1 - s0) / wall if alive else 0.0
        busy = 100 * (m1 - m0) / wall
        if self.server is not None and not alive:
            err.print("[red]the server process is gone: no server CPU figure")
        return {
            "server_cpu_pct": round(server, 1) if alive else None,
            "server_peak_rss_mb": round(self.peak_rss / 2**20, 1) if self.server else None,
            "loadgen_cpu_pct": round(own, 1),
            "loadgen_saturated": own > SATURATED,
            # everything else the machine's cores did meanwhile (other processes, and the
            # kernel's softirq work for loopback traffic, which no process is charged for)
            "other_cpu_pct": round(max(0.0, busy - own - server), 1),
        }


class View:
    """A rich progress display (on stderr) with one line per phase."""

    def __init__(self, enabled: bool, title: str) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"),
            console=err,
            disable=not enabled,
            refresh_per_second=4,
        )
        self.title = title

    def __enter__(self) -> View:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def phase(self, name: str, total: float) -> TaskID:
        return self.progress.add_task(f"{self.title} {name}", total=total, info="")

    def update(self, task: TaskID, completed: float, info: str = "") -> None:
        self.progress.update(task, completed=completed, info=info)

    async def tick(self, task: TaskID, total: float, started: float,
                   info: Callable[[], str], step: float = 0.25) -> None:
        """Advance ``task`` with the clock (seconds) until cancelled."""
        while True:
            elapsed = min(total, time.perf_counter() - started)
            self.update(task, round(elapsed, 1), info())
            await asyncio.sleep(step)


# -- WebSocket listeners (picows calls on_ws_frame from C for each frame) ---------------------


class Ctx:
    """What every listener of one run shares."""

    def __init__(self) -> None:
        self.window_start_ns = 1 << 62  # latencies of messages sent in [start, end) count
        self.window_end_ns = 1 << 62
        self.sending = True
        self.latencies: list[int] = []
        self.malformed = 0


class Base(WSListener):
    """Reassembles fragmented text messages, answers a close, remembers its code."""

    ctx: Ctx

    def __init__(self, ctx: Ctx) -> None:
        super().__init__()
        self.ctx = ctx
        self.transport: WSTransport | None = None
        self.messages = 0
        self.errors = 0
        self.close_code: int | None = None
        self.disconnected = False
        self._parts: list[bytes] | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.disconnected = True

    def on_ws_frame(self, transport: WSTransport, frame: Any) -> None:
        mt = frame.msg_type
        if mt is TEXT:
            if frame.fin:
                self.on_text(transport, frame.get_payload_as_bytes())
            else:
                self._parts = [frame.get_payload_as_bytes()]
        elif mt is CONT:
            if self._parts is not None:
                self._parts.append(frame.get_payload_as_bytes())
                if frame.fin:
                    data = b"".join(self._parts)
                    self._parts = None
                    self.on_text(transport, data)
        elif mt is CLOSE:
            try:
                self.close_code = int(frame.get_close_code())
            except Exception:
                self.close_code = -1
            with contextlib.suppress(Exception):
                transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_text(self, transport: WSTransport, data: bytes) -> None:
        self.messages += 1
        if ERROR_PAT in data:
            self.errors += data.count(ERROR_PAT)


def _check_frame(obj: Any, kind: str) -> bool:
    if not isinstance(obj, dict) or obj.get("type") != kind:
        return False
    keys = {"type", "id", "from", "content", "timestamp", "to" if kind == "private" else "group_id"}
    return keys <= obj.keys() and isinstance(obj["id"], int) and isinstance(obj["content"], str)


def _sent_ns(content: str) -> int:
    return int(content[1:content.index(":")])


class GroupState:
    """One fan-out group: its sender's counters and the window of messages in flight."""

    __slots__ = ("gid", "members", "sender", "sent", "acked", "probe", "waiter", "window",
                 "persisted", "unpersisted", "errors", "behind")

    def __init__(self, gid: int, members: list[int], window: int) -> None:
        self.gid = gid
        self.members = members
        self.sender: Sender | None = None
        self.sent = 0
        self.acked = 0
        self.probe = 0  # messages the group's probe receiver has seen
        self.waiter: asyncio.Future[None] | None = None
        self.window = window
        self.persisted = 0
        self.unpersisted = 0
        self.errors = 0
        self.behind = 0

    def in_flight(self) -> int:
        return self.sent - min(self.acked, self.probe)

    def wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done() and self.sent - min(self.acked, self.probe) < self.window:
            w.set_result(None)


class Receiver(Base):
    """Counts group messages with a byte scan; nothing is decoded."""

    def __init__(self, ctx: Ctx) -> None:
        super().__init__(ctx)
        self.n = 0

    def on_text(self, transport: WSTransport, data: bytes) -> None:
        self.messages += 1
        self.n += data.count(GROUP_PAT)
        if ERROR_PAT in data:
            self.errors += data.count(ERROR_PAT)


class Probe(Receiver):
    """A receiver whose count opens the sender's window (so no server piles up frames)."""

    def __init__(self, ctx: Ctx, group: GroupState) -> None:
        super().__init__(ctx)
        self.group = group

    def on_text(self, transport: WSTransport, data: bytes) -> None:
        self.messages += 1
        k = data.count(GROUP_PAT)
        self.n += k
        if ERROR_PAT in data:
            self.errors += data.count(ERROR_PAT)
        g = self.group
        g.probe += k
        g.wake()


class Sampler(Receiver):
    """Decodes every frame (coalesced ones split on newlines), records latency, checks shape."""

    def __init__(self, ctx: Ctx, kind: str = "group") -> None:
        super().__init__(ctx)
        self.kind = kind

    def on_text(self, transport: WSTransport, data: bytes) -> None:
        t = now_ns()
        self.messages += 1
        ctx = self.ctx
        for line in data.split(b"\n"):
            try:
                obj = json.loads(line)
            except ValueError:
                ctx.malformed += 1
                continue
            kind = obj.get("type") if isinstance(obj, dict) else None
            if kind == self.kind:
                self.n += 1
                if not _check_frame(obj, kind):
                    ctx.malformed += 1
                    continue
                sent = _sent_ns(obj["content"])
                if ctx.window_start_ns <= sent < ctx.window_end_ns:
                    ctx.latencies.append(t - sent)
            elif kind == "error":
                self.errors += 1


class Sender(Base):
    """A group's sending connection: counts its acks (and errors), which open the window."""

    def __init__(self, ctx: Ctx, group: GroupState) -> None:
        super().__init__(ctx)
        self.group = group

    def on_text(self, transport: WSTransport, data: bytes) -> None:
        self.messages += 1
        g = self.group
        k = data.count(ACK_PAT)
        if k:
            g.acked += k
            p = data.count(PERSISTED_PAT)
            g.persisted += p
            g.unpersisted += k - p
        if ERROR_PAT in data:
            e = data.count(ERROR_PAT)
            g.errors += e
            g.acked += e  # an error answers a message too: do not hold the window for it
        g.wake()


class Pinger(Base):
    """Side A of a private pair: sends, waits for B's reply, records the round trip, repeats."""

    def __init__(self, ctx: Ctx, peer_id: int, pad: str, sample_every: int) -> None:
        super().__init__(ctx)
        self.peer_id = peer_id
        self.pad = pad
        self.sample_every = sample_every
        self.sent = 0
        self.received = 0
        self.round_trips = 0
        self.t_sent = 0
        self.acks = 0
        self.persisted = 0
        self.waiting = False

    def send_next(self) -> None:
        assert self.transport is not None
        self.sent += 1
        t = now_ns()
        self.t_sent = t
        self.waiting = True
        self.transport.send(TEXT, b'{"type":"private","to":%d,"content":"L%d:%d:%s",'
                                  b'"client_id":"%d"}'
                            % (self.peer_id, t, self.sent, self.pad.encode(), self.sent))

    def on_text(self, transport: WSTransport, data: bytes) -> None:
        self.messages += 1
        k = data.count(PRIVATE_PAT)
        if k:
            t = now_ns()
            self.received += k
            self.round_trips += k
            ctx = self.ctx
            if ctx.window_start_ns <= self.t_sent < ctx.window_end_ns:
                ctx.latencies.append(t - self.t_sent)
            if self.received % self.sample_every == 0:
                for line in data.split(b"\n"):
                    obj = json.loads(line)
                    if obj.get("type") == "private" and not _check_frame(obj, "private"):
                        ctx.malformed += 1
            if ctx.sending:
                self.send_next()
            else:
                self.waiting = False
        a = data.count(ACK_PAT)
        if a:
            self.acks += a
            self.persisted += data.count(PERSISTED_PAT)
        if ERROR_PAT in data:
            self.errors += data.count(ERROR_PAT)
            if self.waiting and not k and self.ctx.sending:
                self.send_next()  # the message was refused: keep the loop going


class Ponger(Base):
    """Side B of a private pair: answers every private message it receives."""

    def __init__(self, ctx: Ctx, peer_id: int) -> None:
        super().__init__(ctx)
        self.peer_id = peer_id
        self.sent = 0
        self.received = 0
        self.acks = 0
        self.persisted = 0

    def on_text(self, transport: WSTransport, data: bytes) -> None:
        self.messages += 1
        k = data.count(PRIVATE_PAT)
        for _ in range(k):
            self.received += 1
            self.sent += 1
            transport.send(TEXT, b'{"type":"private","to":%d,"content":"pong %d",'
                                 b'"client_id":"r%d"}' % (self.peer_id, self.sent, self.sent))
        a = data.count(ACK_PAT)
        if a:
            self.acks += a
            self.persisted += data.count(PERSISTED_PAT)
        if ERROR_PAT in data:
            self.errors += data.count(ERROR_PAT)


# -- one run's plumbing -----------------------------------------------------------------------


class Run:
    """Connection set-up, server API calls, and the result every scenario reports."""

    def __init__(self, args: argparse.Namespace, scenario: str) -> None:
        self.args = args
        self.scenario = scenario
        #: every node's address (--url a,b,...): connection i goes to node i mod n, HTTP
        #: calls to the first
        self.nodes = [check_loopback(url) for url in args.url.split(",") if url.strip()]
        self.host, self.port = self.nodes[0]
        self.secret: str = args.jwt_secret or ""
        self.ctx = Ctx()
        self.monitor = Monitor(server_pids(args.server_pid))
        self.view = View(not args.no_progress, f"{args.label} {scenario}")
        self.listeners: list[Base] = []
        self.connect_failures = 0
        self.http = Http(self.host, self.port)
        self.id_base: int = args.id_base or (int(time.time() * 1000) % 10**9) * 1000

    def ws_url(self, coalesce: bool, index: int = 0) -> str:
        host, port = self.nodes[index % len(self.nodes)]
        return f"ws://{host}:{port}/ws" + ("?coalesce=1" if coalesce else "")

    def token(self, user_id: int) -> str:
        if not self.secret:
            raise SystemExit("loadtest: set TRIONET_JWT_SECRET (or --jwt-secret)")
        return jwt.encode({"sub": str(user_id), "exp": int(time.time() + 3600)}, self.secret,
                          "HS256")

    async def connect_all(self, plan: list[tuple[int, Base]], coalesce: bool,
                          buffer: int = 16384) -> None:
        """Open one connection per (user id, listener), a bounded number at a time."""
        sem = asyncio.Semaphore(self.args.connect_concurrency)
        task = self.view.phase("connect", len(plan))
        done = 0

        async def one(index: int, user_id: int, listener: Base) -> None:
            nonlocal done
            url = self.ws_url(coalesce, index)
            headers = {"Authorization": f"Bearer {self.token(user_id)}"}
            async with sem:
                for attempt in range(3):
                    try:
                        await ws_connect(lambda: listener, url, extra_headers=headers,
                                         websocket_handshake_timeout=30,
                                         read_buffer_init_size=buffer,
                                         max_frame_size=8 * 2**20)
                        break
                    except Exception as exc:
                        if attempt == 2:
                            self.connect_failures += 1
                            err.print(f"[red]connect failed for user {user_id}: {exc!r}")
                        else:
                            await asyncio.sleep(0.2 * (attempt + 1))
            self.listeners.append(listener)
            done += 1
            if done % 50 == 0 or done == len(plan):
                self.view.update(task, done)

        await asyncio.gather(*(one(i, uid, lis) for i, (uid, lis) in enumerate(plan)))
        if self.connect_failures:
            raise SystemExit(f"loadtest: {self.connect_failures} connections failed")

    async def api_put(self, path: str, body: dict[str, Any]) -> None:
        key = self.args.api_key
        if not key:
            raise SystemExit("loadtest: set TRIONET_API_KEY (or --api-key) to create groups")
        status, data = await self.http.request("PUT", path, token=key, body=body)
        if not 200 <= status < 300:
            raise ApiFailure(status, path, data.decode(errors="replace")[:300])

    async def close_all(self) -> None:
        for lis in self.listeners:
            tr = lis.transport
            if tr is not None and not lis.disconnected:
                with contextlib.suppress(Exception):
                    tr.send_close(WSCloseCode.OK)
                    tr.disconnect(graceful=True)
        await asyncio.sleep(0.2)
        for lis in self.listeners:
            if lis.transport is not None:
                with contextlib.suppress(Exception):
                    lis.transport.disconnect(graceful=False)
        await self.http.close()

    def closed_by_server(self) -> dict[str, int]:
        codes = Tally(str(lis.close_code) for lis in self.listeners if lis.close_code is not None)
        dropped = sum(1 for lis in self.listeners if lis.disconnected and lis.close_code is None)
        if dropped:
            codes["no close frame"] = dropped
        return dict(codes)

    def result(self, **fields: Any) -> dict[str, Any]:
        return {"scenario": self.scenario, "target": self.args.label, **fields}


class ApiFailure(Exception):
    def __init__(self, status: int, path: str, body: str) -> None:
        super().__init__(f"{path}: HTTP {status}: {body}")
        self.status = status


async def measure(run: Run, info: Callable[[], str], snapshot: Callable[[], dict[str, int]],
                  ) -> tuple[dict[str, int], dict[str, int], float]:
    """Warm up, then measure ``--duration`` seconds: returns the snapshots at both ends."""
    args = run.args
    total = args.warmup + args.duration
    task = run.view.phase("run", total)
    started = time.perf_counter()
    ticker = asyncio.ensure_future(run.view.tick(task, total, started, info))
    try:
        await asyncio.sleep(args.warmup)
        run.monitor.mark("start")
        run.ctx.window_start_ns = now_ns()
        first = snapshot()
        t0 = time.perf_counter()
        await asyncio.sleep(args.duration)
        run.ctx.window_end_ns = now_ns()
        run.monitor.mark("end")
        last = snapshot()
        elapsed = time.perf_counter() - t0
    finally:
        ticker.cancel()
    run.view.update(task, total, info())
    return first, last, elapsed


async def drain(run: Run, done: Callable[[], bool], info: Callable[[], str]) -> float:
    """Wait (at most ``--drain`` seconds) until ``done()``; returns the seconds it took."""
    task = run.view.phase("drain", run.args.drain)
    started = time.perf_counter()
    while not done() and time.perf_counter() - started < run.args.drain:
        run.view.update(task, round(time.perf_counter() - started, 1), info())
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - started
    run.view.update(task, run.args.drain, info())
    return elapsed


def rate_info(label: str, counter: Callable[[], int]) -> Callable[[], str]:
    state = {"t": time.perf_counter(), "n": counter()}

    def info() -> str:
        t, n = time.perf_counter(), counter()
        rate = (n - state["n"]) / max(t - state["t"], 1e-9)
        state["t"], state["n"] = t, n
        return f"{label} {n:,}  ({rate:,.0f}/s)"

    return info


# -- scenarios ------------------------------------------------------------------------------


async def scenario_fanout(args: argparse.Namespace) -> dict[str, Any]:
    run = Run(args, "fanout")
    ctx = run.ctx
    groups: list[GroupState] = []
    plan: list[tuple[int, Base]] = []
    receivers: list[Receiver] = []
    senders: list[Sender] = []
    for g in range(args.groups):
        gid = run.id_base + g + 1
        members = [run.id_base + 1 + g * args.members + j for j in range(args.members)]
        state = GroupState(gid, members, args.window if args.rate is None else 1 << 30)
        groups.append(state)
        sender = Sender(ctx, state)
        state.sender = sender
        senders.append(sender)
        plan.append((members[0], sender))
        for j, uid in enumerate(members[1:], start=1):
            lis: Receiver
            if j == args.members - 1:
                lis = Probe(ctx, state)
            elif j <= args.samplers:
                lis = Sampler(ctx)
            else:
                lis = Receiver(ctx)
            receivers.append(lis)
            plan.append((uid, lis))
    mon = asyncio.ensure_future(run.monitor.run())
    try:
        with run.view:
            await run.connect_all(plan, args.coalesce)
            for state in groups:
                body = {"name": f"loadtest {state.gid}",
                        "members": [{"user_id": u, "status": "accepted"} for u in state.members]}
                try:
                    await run.api_put(f"/api/server/groups/{state.gid}", body)
                except ApiFailure:  # perhaps the server wants the users made first
                    for uid in state.members:
                        await run.api_put(f"/api/server/users/{uid}", {"username": f"lt{uid}"})
                    await run.api_put(f"/api/server/groups/{state.gid}", body)
            await asyncio.sleep(0.3)

            def received() -> int:
                return sum(r.n for r in receivers)

            def sent() -> int:
                return sum(g.sent for g in groups)

            loops = [asyncio.ensure_future(
                rate_loop(g, args, i / len(groups)) if args.rate else window_loop(g, args))
                for i, g in enumerate(groups)]
            info = rate_info("delivered", received)
            first, last, elapsed = await measure(
                run, info, lambda: {"received": received(), "sent": sent(),
                                    "frames": sum(r.messages for r in receivers)})
            ctx.sending = False
            for g in groups:
                if g.waiter is not None and not g.waiter.done():
                    g.waiter.set_result(None)
            await asyncio.gather(*loops, return_exceptions=True)
            per_msg = args.members - 1
            drain_s = await drain(run, lambda: received() >= sent() * per_msg
                                  and sum(g.acked for g in groups) >= sent(), info)
            total_sent, total_received = sent(), received()
            closed = run.closed_by_server()
            await run.close_all()
    finally:
        mon.cancel()
    d_recv = last["received"] - first["received"]
    d_sent = last["sent"] - first["sent"]
    d_frames = last["frames"] - first["frames"]
    errors = sum(g.errors for g in groups) + sum(r.errors for r in receivers)
    mode = f"{args.rate:g}/s per group" if args.rate else f"full speed, window {args.window}"
    return run.result(
        mode=mode,
        groups=args.groups,
        members=args.members,
        coalesce=args.coalesce,
        duration_s=round(elapsed, 2),
        delivered_per_s=round(d_recv / elapsed),
        sent_per_s=round(d_sent / elapsed, 1),
        expected_per_s=(args.groups * args.rate * per_msg) if args.rate else None,
        ws_frames_per_s=round(d_frames / elapsed),
        messages_per_frame=round(d_recv / d_frames, 2) if d_frames else None,
        sent=total_sent,
        acked=sum(g.acked for g in groups) - sum(g.errors for g in groups),
        persisted_acks=sum(g.persisted for g in groups),
        expected=total_sent * per_msg,
        received=total_received,
        lost=total_sent * per_msg - total_received,
        errors=errors,
        malformed=ctx.malformed,
        closed_by_server=closed,
        drain_s=round(drain_s, 2),
        drained=total_received >= total_sent * per_msg,
        latency_ms=latency_summary(ctx.latencies),
        **run.monitor.usage("start", "end"),
    )


def _group_payload(g: GroupState, seq: int, pad: bytes) -> bytes:
    return (b'{"type":"group","group_id":%d,"content":"L%d:%d:%s","client_id":"%d"}'
            % (g.gid, now_ns(), seq, pad, seq))


async def window_loop(g: GroupState, args: argparse.Namespace) -> None:
    """Full speed: keep ``window`` messages in flight (unacked, or not yet at the probe)."""
    pad = ("x" * max(0, args.size - 40)).encode()
    assert g.sender is not None and g.sender.transport is not None
    send = g.sender.transport.send
    ctx = g.sender.ctx
    loop = asyncio.get_running_loop()
    while ctx.sending:
        room = g.window - g.in_flight()
        if room <= 0:
            g.waiter = loop.create_future()
            await g.waiter
            g.waiter = None
            continue
        for _ in range(room):
            g.sent += 1
            send(TEXT, _group_payload(g, g.sent, pad))
        await asyncio.sleep(0)


async def rate_loop(g: GroupState, args: argparse.Namespace, phase: float) -> None:
    """Fixed rate: one message every 1/rate seconds on an absolute schedule."""
    pad = ("x" * max(0, args.size - 40)).encode()
    assert g.sender is not None and g.sender.transport is not None
    send = g.sender.transport.send
    ctx = g.sender.ctx
    interval = 1.0 / args.rate
    loop = asyncio.get_running_loop()
    due = loop.time() + phase * interval
    while ctx.sending:
        now = loop.time()
        if now < due:
            await asyncio.sleep(due - now)
            continue
        burst = 0
        while due <= now and burst < 100:
            g.sent += 1
            send(TEXT, _group_payload(g, g.sent, pad))
            due += interval
            burst += 1
        if burst > 1:
            g.behind += burst - 1


async def scenario_private(args: argparse.Namespace, scenario: str = "private",
                           extra: Callable[[Run, list[Pinger]], Awaitable[None]] | None = None,
                           ) -> dict[str, Any]:
    run = Run(args, scenario)
    ctx = run.ctx
    pad = "x" * max(0, args.size - 30)
    pingers: list[Pinger] = []
    pongers: list[Ponger] = []
    plan: list[tuple[int, Base]] = []
    for i in range(args.pairs):
        a, b = run.id_base + 2 * i + 1, run.id_base + 2 * i + 2
        pinger, ponger = Pinger(ctx, b, pad, args.sample_every), Ponger(ctx, a)
        pingers.append(pinger)
        pongers.append(ponger)
        plan += [(b, ponger), (a, pinger)]  # b first: the recipient must exist
    mon = asyncio.ensure_future(run.monitor.run())
    extra_task: asyncio.Future[None] | None = None
    try:
        with run.view:
            await run.connect_all(plan, args.coalesce)
            await asyncio.sleep(0.2)
            for p in pingers:
                p.send_next()

            def trips() -> int:
                return sum(p.round_trips for p in pingers)

            def delivered() -> int:
                return sum(p.received for p in pingers) + sum(q.received for q in pongers)

            def sent() -> int:
                return sum(p.sent for p in pingers) + sum(q.sent for q in pongers)

            if extra is not None:
                extra_task = asyncio.ensure_future(extra(run, pingers))
            info = rate_info("round trips", trips)
            first, last, elapsed = await measure(
                run, info, lambda: {"trips": trips(), "delivered": delivered(), "sent": sent()})
            ctx.sending = False
            if extra_task is not None:
                extra_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await extra_task
            drain_s = await drain(run, lambda: delivered() >= sent(), info)
            closed = run.closed_by_server()
            total_sent, total_delivered = sent(), delivered()
            await run.close_all()
    finally:
        mon.cancel()
    acks = sum(p.acks for p in pingers) + sum(q.acks for q in pongers)
    persisted = sum(p.persisted for p in pingers) + sum(q.persisted for q in pongers)
    errors = sum(p.errors for p in pingers) + sum(q.errors for q in pongers)
    result = run.result(
        pairs=args.pairs,
        coalesce=args.coalesce,
        duration_s=round(elapsed, 2),
        round_trips_per_s=round((last["trips"] - first["trips"]) / elapsed, 1),
        delivered_per_s=round((last["delivered"] - first["delivered"]) / elapsed),
        sent_per_s=round((last["sent"] - first["sent"]) / elapsed, 1),
        sent=total_sent,
        received=total_delivered,
        lost=total_sent - total_delivered,
        acks=acks,
        persisted_acks=persisted,
        errors=errors,
        malformed=ctx.malformed,
        closed_by_server=closed,
        drain_s=round(drain_s, 2),
        latency_ms=latency_summary(ctx.latencies),
        latency_is="round trip (two messages)",
        **run.monitor.usage("start", "end"),
    )
    return result


async def scenario_idle(args: argparse.Namespace) -> dict[str, Any]:
    run = Run(args, "idle")
    soft, _hard = raise_nofile(args.connections + 1000)
    if args.connections + 100 > soft:
        raise SystemExit(f"loadtest: {args.connections} connections need a higher open-file "
                         f"limit than {soft} (ulimit -n)")
    listeners = [Base(run.ctx) for _ in range(args.connections)]
    plan: list[tuple[int, Base]] = [(run.id_base + 1 + i, lis) for i, lis in enumerate(listeners)]
    with run.view:
        run.monitor.sample()
        await asyncio.sleep(1.0)
        run.monitor.sample()
        baseline = run.monitor.last_rss
        started = time.perf_counter()
        await run.connect_all(plan, args.coalesce, buffer=2048)
        connect_s = time.perf_counter() - started
        mon = asyncio.ensure_future(run.monitor.run())
        try:
            run.monitor.mark("start")
            task = run.view.phase("hold", args.hold)
            t0 = time.perf_counter()

            def info() -> str:
                alive = sum(1 for lis in listeners if not lis.disconnected)
                return f"open {alive:,}  server RSS {run.monitor.last_rss / 2**20:,.0f} MiB"

            ticker = asyncio.ensure_future(run.view.tick(task, args.hold, t0, info))
            await asyncio.sleep(args.hold)
            ticker.cancel()
            run.monitor.mark("end")
            run.monitor.sample()
            held = run.monitor.last_rss
            alive = sum(1 for lis in listeners if not lis.disconnected)
            closed = run.closed_by_server()
        finally:
            mon.cancel()
        await run.close_all()
    usage = run.monitor.usage("start", "end")
    per_conn = (held - baseline) / args.connections \
        if usage["server_cpu_pct"] is not None and held else None
    return run.result(
        connections=args.connections,
        connect_s=round(connect_s, 2),
        connects_per_s=round(args.connections / connect_s),
        hold_s=args.hold,
        alive_at_end=alive,
        lost=args.connections - alive,
        closed_by_server=closed,
        server_rss_baseline_mb=round(baseline / 2**20, 1) if run.monitor.server else None,
        server_rss_held_mb=round(held / 2**20, 1) if run.monitor.server else None,
        rss_per_conn_kb=round(per_conn / 1024, 1) if per_conn is not None else None,
        **usage,
    )


async def scenario_history(args: argparse.Namespace) -> dict[str, Any]:
    stats: dict[str, Any] = {"pages": 0, "rows": 0, "wraps": 0, "status": Tally(),
                             "latency": [], "missing": False}

    async def readers(run: Run, pingers: list[Pinger]) -> None:
        await asyncio.sleep(min(1.0, args.warmup / 2))  # some history first

        async def reader(i: int) -> None:
            pinger = pingers[i % len(pingers)]
            me, other = pinger.peer_id - 1, pinger.peer_id
            token = run.token(me)
            http = Http(run.host, run.port)
            before: int | None = None
            try:
                while True:
                    path = f"/api/messages/private?user={other}&limit={args.limit}"
                    if before is not None:
                        path += f"&before_id={before}"
                    t = now_ns()
                    status, body = await http.request("GET", path, token=token)
                    stats["status"][status] += 1
                    if status != 200:
                        if status == 404 and b"not_found" not in body:
                            stats["missing"] = True
                        await asyncio.sleep(0.1)
                        continue
                    if run.ctx.window_start_ns <= t < run.ctx.window_end_ns:
                        stats["latency"].append(now_ns() - t)
                    page = json.loads(body)
                    rows = page["messages"] if isinstance(page, dict) else page
                    more = page.get("has_more", len(rows) >= args.limit) \
                        if isinstance(page, dict) else len(rows) >= args.limit
                    stats["pages"] += 1
                    stats["rows"] += len(rows)
                    if rows and more:
                        before = min(r["id"] for r in rows)
                    else:
                        before = None
                        stats["wraps"] += 1
            finally:
                await http.close()

        await asyncio.gather(*(reader(i) for i in range(args.readers)))

    snap: dict[str, Any] = {}

    async def wrapped(run: Run, pingers: list[Pinger]) -> None:
        task = asyncio.ensure_future(readers(run, pingers))
        try:
            while True:
                await asyncio.sleep(0.05)
                if run.ctx.window_start_ns < 1 << 62 and "p0" not in snap:
                    snap["p0"], snap["r0"] = stats["pages"], stats["rows"]
                if run.ctx.window_end_ns < 1 << 62 and "p1" not in snap:
                    snap["p1"], snap["r1"] = stats["pages"], stats["rows"]
                if task.done():
                    task.result()
                    return
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    result = await scenario_private(args, "history", wrapped)
    duration = result["duration_s"]
    pages = snap.get("p1", stats["pages"]) - snap.get("p0", 0)
    rows = snap.get("r1", stats["rows"]) - snap.get("r0", 0)
    result.update(
        readers=args.readers,
        page_limit=args.limit,
        pages_per_s=round(pages / duration, 1),
        rows_per_s=round(rows / duration),
        read_latency_ms=latency_summary(stats["latency"]),
        http_status={str(k): v for k, v in stats["status"].items()},
        history_endpoint_missing=stats["missing"],
        writes="private ping-pong round trips (see round_trips_per_s)",
    )
    return result


# -- reporting ------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:,.3f}".rstrip("0").rstrip(".")
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in value.items()) or "-"
    return "-" if value is None else str(value)


def report(result: dict[str, Any], json_out: str | None) -> None:
    table = Table(title=f"{result['target']}: {result['scenario']}", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result.items():
        if key in ("scenario", "target"):
            continue
        style = "bold red" if key == "loadgen_saturated" and value else None
        table.add_row(key, _fmt(value), style=style)
    out.print(table)
    if result.get("errors"):
        out.print(f"[yellow]{result['errors']} error frames: is the server's rate limit off "
                  "(TRIONET_RATE_LIMIT=0)?")
    if result.get("loadgen_saturated"):
        out.print(f"[bold red]the load generator saturated its core "
                  f"({result['loadgen_cpu_pct']} %): the server may be faster than measured")
    line = json.dumps(result, separators=(",", ":"))
    print(line, flush=True)
    if json_out:
        Path(json_out).write_text(line + "\n")


# -- bench: trionet and the reference peer, same scenarios, one run -------------------------

class BenchScenario:
    """One line of the bench: what to run, and how to pick the best of several runs."""

    def __init__(self, name: str, argv: list[str], coalesce: bool, key: str,
                 higher: bool) -> None:
        self.name, self.argv, self.coalesce, self.key, self.higher = (
            name, argv, coalesce, key, higher)

    @property
    def kind(self) -> str:
        return self.argv[0]


def bench_scenarios(args: argparse.Namespace) -> list[BenchScenario]:
    g, m = ["--groups", "10", "--members", "100"], f"{args.connections}"
    return [
        BenchScenario("fanout 10x100 full speed", ["fanout", *g, "--window", str(args.window)],
                      True, "delivered_per_s", True),
        BenchScenario("fanout 10x100 at 50/s", ["fanout", *g, "--rate", "50"], True,
                      "latency_ms.p99", False),
        BenchScenario("private 50 pairs", ["private", "--pairs", "50"], False,
                      "round_trips_per_s", True),
        BenchScenario(f"idle {m}", ["idle", "--connections", m], False, "rss_per_conn_kb",
                      False),
    ]


#: (label, key in the result) per scenario kind
BENCH_METRICS: dict[str, list[tuple[str, str]]] = {
    "fanout": [("delivered/s", "delivered_per_s"), ("sent/s", "sent_per_s"), ("lost", "lost"),
               ("all delivered by the end", "drained"),
               ("WebSocket frames/s", "ws_frames_per_s"),
               ("messages per frame", "messages_per_frame"),
               ("latency p50 ms", "latency_ms.p50"), ("latency p99 ms", "latency_ms.p99"),
               ("latency max ms", "latency_ms.max"), ("server CPU %", "server_cpu_pct"),
               ("server peak RSS MB", "server_peak_rss_mb"),
               ("loadgen CPU %", "loadgen_cpu_pct"), ("other load %", "other_cpu_pct")],
    "private": [("round trips/s", "round_trips_per_s"), ("delivered/s", "delivered_per_s"),
                ("lost", "lost"), ("RTT p50 ms", "latency_ms.p50"),
                ("RTT p99 ms", "latency_ms.p99"), ("server CPU %", "server_cpu_pct"),
                ("server peak RSS MB", "server_peak_rss_mb"),
                ("loadgen CPU %", "loadgen_cpu_pct"), ("other load %", "other_cpu_pct")],
    "idle": [("RSS/conn KB", "rss_per_conn_kb"), ("alive at end", "alive_at_end"),
             ("server RSS MB", "server_rss_held_mb"), ("connects/s", "connects_per_s"),
             ("loadgen CPU %", "loadgen_cpu_pct")],
}


def _get(result: dict[str, Any] | None, dotted: str) -> Any:
    value: Any = result
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(port: int, proc: subprocess.Popen[bytes], path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          "Connection: close\r\n\r\n".encode())
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server not ready on port {port} after {timeout:.0f}s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop one process this bench started, by its PID: SIGTERM, then SIGKILL."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


#: the Node.js load generator (``--client node``): ``ws``, installed here by ``npm ci``
NODE_LOAD = Path(__file__).resolve().parent / "node_load"


def _node_load() -> str:
    """The ``node`` binary, with the Node load generator's dependencies installed."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise SystemExit("bench: --client node needs Node.js and npm (apt-get install nodejs npm)")
    if not (NODE_LOAD / "node_modules" / "ws").is_dir():
        err.print("installing the Node load generator's dependencies (npm ci)")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_LOAD, check=True,
                       timeout=300)
    return node


def bench(args: argparse.Namespace) -> None:
    python = sys.executable
    trionet_bin = shutil.which("trionet", path=str(Path(python).parent)) or shutil.which("trionet")
    if trionet_bin is None:
        raise SystemExit("bench: `trionet` is not installed in this environment")
    soft, hard = raise_nofile(20_000)
    err.print(f"open-file limit: soft {soft}, hard {hard}")
    if args.connections + 200 > soft:
        raise SystemExit(f"bench: {args.connections} idle connections need ulimit -n above "
                         f"{args.connections + 200} (hard limit {hard})")
    node = _node_load() if args.client == "node" else ""
    cpus = os.sched_getaffinity(0)
    pin = {0, 1} <= cpus and shutil.which("taskset") is not None
    if not pin:
        err.print("[yellow]fewer than 2 CPUs (or no taskset): running unpinned")
    else:
        os.sched_setaffinity(0, {1})  # this orchestrator stays off the server's core

    def pinned(cpu: int, cmd: list[str]) -> list[str]:
        return ["taskset", "-c", str(cpu), *cmd] if pin else cmd

    if args.from_dir:  # only render the report of an earlier bench from its JSON files
        plan = bench_scenarios(args)
        found = {b.name: {"trionet": [], "peer": []} for b in plan}
        for path in sorted(Path(args.from_dir).glob("*.json")):
            res = json.loads(path.read_text())
            for b in plan:
                rate = "--rate" in b.argv
                if b.kind == res.get("scenario") and (
                        b.kind != "fanout" or rate == str(res.get("mode")).endswith("group")):
                    found[b.name][res["target"]].append(res)
        args.repeat = max(len(v) for by in found.values() for v in by.values())
        bench_report(plan, found, args)
        return
    secret = secrets.token_urlsafe(32)
    api_key = secrets.token_urlsafe(24)
    workdir = Path(tempfile.mkdtemp(prefix="trionet-bench-"))
    started: list[subprocess.Popen[bytes]] = []
    only = set(args.only.split(",")) if args.only else None
    plan = [b for b in bench_scenarios(args) if not only or b.kind in only]
    results: dict[str, dict[str, list[dict[str, Any]]]] = {
        b.name: {"trionet": [], "peer": []} for b in plan}
    runs = 0
    try:
        for rep in range(args.repeat):
            for scen in plan:
                for target in ("trionet", "peer"):
                    runs += 1
                    port = _free_port()
                    env = dict(os.environ, TRIONET_JWT_SECRET=secret, TRIONET_API_KEY=api_key,
                               TRIONET_HOST="127.0.0.1", TRIONET_PORT=str(port),
                               TRIONET_RATE_LIMIT="0", TRIONET_LOG_LEVEL="WARNING",
                               TRIONET_DATABASE=str(workdir / f"trionet-{runs}.db"))
                    if target == "trionet":
                        cmd, ready = pinned(0, [trionet_bin, "serve"]), "/readyz"
                    else:
                        cmd = pinned(0, [python, str(PEER), "--port", str(port)])
                        ready = "/healthz"
                    log_path = workdir / f"{runs:02d}-{target}.log"
                    with open(log_path, "wb") as log_file:
                        server = subprocess.Popen(cmd, env=env, stdout=log_file,
                                                  stderr=subprocess.STDOUT, cwd=workdir)
                    started.append(server)
                    try:
                        _wait_ready(port, server, ready, 30)
                        out_file = workdir / f"{runs:02d}-{target}.json"
                        load = [python, str(Path(__file__).resolve()), *scen.argv,
                                "--url", f"http://127.0.0.1:{port}", "--label", target,
                                "--server-pid", str(server.pid), "--json-out", str(out_file),
                                "--duration", str(args.duration), "--warmup", str(args.warmup)]
                        if scen.kind == "fanout" and args.client == "node":
                            load = [node, str(NODE_LOAD / "fanout.mjs"), *scen.argv[1:],
                                    "--url", f"http://127.0.0.1:{port}", "--label", target,
                                    "--server-pid", str(server.pid),
                                    "--json-out", str(out_file),
                                    "--duration", str(args.duration),
                                    "--warmup", str(args.warmup)]
                        if scen.kind == "idle":
                            load += ["--hold", str(args.duration)]
                        if scen.coalesce and target == "trionet":
                            load.append("--coalesce")
                        if args.no_progress:
                            load.append("--no-progress")
                        err.rule(f"{scen.name}: {target}"
                                 + (f" (run {rep + 1} of {args.repeat})" if args.repeat > 1
                                    else ""))
                        proc = subprocess.run(pinned(1, load), env=env, timeout=900,
                                              check=False)
                        if proc.returncode == 0 and out_file.exists():
                            results[scen.name][target].append(json.loads(out_file.read_text()))
                        else:
                            err.print(f"[red]{scen.name} on {target} failed "
                                      f"(exit {proc.returncode}); server log: {log_path}")
                    finally:
                        _stop(server)
                        started.remove(server)
                        if server.returncode not in (0, -signal.SIGTERM):
                            err.print(f"[yellow]{target} exited with {server.returncode}; "
                                      f"log: {log_path}")
    finally:
        for proc in started:  # only what this bench started, by PID
            _stop(proc)
    bench_report(plan, results, args)
    for db in workdir.glob("trionet-*.db*"):
        db.unlink()
    err.print(f"logs and every run's JSON are in {workdir}")


def _best(runs: list[dict[str, Any]], key: str, higher: bool) -> dict[str, Any] | None:
    """The best of several runs by ``key`` (a noisy machine only ever makes a run worse)."""
    scored = [r for r in runs if isinstance(_get(r, key), (int, float))]
    if not scored:
        return runs[0] if runs else None
    if key.startswith("latency"):  # a run that lost messages is never the best one
        complete = [r for r in scored if not r.get("lost")]
        scored = complete or scored
    return (max if higher else min)(scored, key=lambda r: _get(r, key))


def bench_report(plan: list[BenchScenario], results: dict[str, dict[str, list[dict[str, Any]]]],
                 args: argparse.Namespace) -> None:
    best_of = f", best of {args.repeat} runs each" if args.repeat > 1 else ""
    client = "Node ws" if getattr(args, "client", "picows") == "node" else "picows"
    table = Table(title=f"trionet vs reference peer (websockets + uvloop): {args.duration:g} s "
                        f"per scenario{best_of}; server on CPU 0, load generator ({client}"
                        f" for fan-out) on CPU 1")
    for col in ("scenario", "metric", "trionet", "peer", "trionet/peer"):
        table.add_column(col, justify="left" if col in ("scenario", "metric") else "right")
    summary: dict[str, Any] = {}
    for scen in plan:
        tri = _best(results[scen.name]["trionet"], scen.key, scen.higher)
        peer = _best(results[scen.name]["peer"], scen.key, scen.higher)
        entry: dict[str, Any] = {}
        for i, (label, key) in enumerate(BENCH_METRICS[scen.kind]):
            a, b = _get(tri, key), _get(peer, key)
            numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
            ratio = a / b if numbers and b else None
            table.add_row(scen.name if i == 0 else "", label, _fmt(a), _fmt(b),
                          f"{ratio:.2f}x" if ratio is not None else "-")
            entry[key] = {"trionet": a, "peer": b, "ratio": _round(ratio)}
        for target, res in (("trionet", tri), ("peer", peer)):
            if res is None:
                table.add_row("", f"[red]no result against {target}", "", "", "")
            elif res.get("loadgen_saturated"):
                table.add_row("", f"[red]load generator saturated against {target}", "", "",
                              "")
            if res and res.get("closed_by_server"):
                table.add_row("", f"[yellow]{target} closed: {_fmt(res['closed_by_server'])}",
                              "", "", "")
        table.add_section()
        summary[scen.name] = entry
    out.print(table)
    print(json.dumps({"bench": summary, "duration_s": args.duration, "repeat": args.repeat},
                     separators=(",", ":")), flush=True)


# -- command line ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="loadtest.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--url", default=os.environ.get("TRIONET_URL", "http://127.0.0.1:8000"),
                       help="server base URL (loopback only); several, comma-separated, spread"
                            " the connections over the nodes of a deployment round-robin")
        p.add_argument("--jwt-secret", default=os.environ.get("TRIONET_JWT_SECRET"))
        p.add_argument("--api-key", default=os.environ.get("TRIONET_API_KEY"))
        p.add_argument("--server-pid", help="server process(es) for CPU and RSS, comma-separated")
        p.add_argument("--label", default="server", help="name of the target in the report")
        p.add_argument("--duration", type=float, default=10.0, help="measured seconds")
        p.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
        p.add_argument("--drain", type=float, default=5.0,
                       help="most seconds to wait for in-flight messages at the end")
        p.add_argument("--coalesce", action="store_true", help="connect to /ws?coalesce=1")
        p.add_argument("--size", type=int, default=64, help="content length, characters")
        p.add_argument("--id-base", type=int, default=0,
                       help="user and group ids start above this (default: from the clock)")
        p.add_argument("--connect-concurrency", type=int, default=100)
        p.add_argument("--json-out", help="also write the JSON result line to this file")
        p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("fanout", help="G groups x M members, one sender per group")
    common(p)
    p.add_argument("--groups", type=int, default=10)
    p.add_argument("--members", type=int, default=100)
    p.add_argument("--rate", type=float, help="messages/s per group (default: full speed)")
    p.add_argument("--window", type=int, default=32,
                   help="full speed: messages in flight per group (unacked or not yet at the "
                        "group's probe receiver)")
    p.add_argument("--samplers", type=int, default=5,
                   help="receivers per group that decode every frame and record latency")
    p = sub.add_parser("private", help="P pairs in closed-loop ping-pong")
    common(p)
    p.add_argument("--pairs", type=int, default=50)
    p.add_argument("--sample-every", type=int, default=50,
                   help="decode and check one private frame in this many")
    p = sub.add_parser("idle", help="N connections held S seconds")
    common(p)
    p.add_argument("--connections", type=int, default=5000)
    p.add_argument("--hold", type=float, default=10.0)
    p = sub.add_parser("history", help="paged history reads while pairs write")
    common(p)
    p.add_argument("--pairs", type=int, default=10)
    p.add_argument("--readers", type=int, default=4)
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--sample-every", type=int, default=50)
    p = sub.add_parser("bench", help="trionet vs the reference peer, every scenario")
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--connections", type=int, default=5000, help="idle connections")
    p.add_argument("--window", type=int, default=32,
                   help="full-speed fan-out: messages in flight per group")
    p.add_argument("--repeat", type=int, default=1,
                   help="run everything this many times, interleaved; report each side's best")
    p.add_argument("--only", help="comma-separated scenario kinds: fanout,private,idle")
    p.add_argument("--client", choices=("picows", "node"), default="picows",
                   help="fan-out load generator: this script (picows), or Node.js with the ws"
                        " library (scripts/node_load, installed with npm ci on first use)")
    p.add_argument("--from", dest="from_dir", metavar="DIR",
                   help="run nothing: print the report of an earlier bench from its folder")
    p.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    if args.command == "bench":
        bench(args)
        return
    if not 0 < args.duration <= MAX_SECONDS or not 0 <= args.warmup <= MAX_SECONDS:
        parser.error(f"--duration and --warmup must be within {MAX_SECONDS:g} s")
    count = {"fanout": lambda: args.groups * args.members,
             "private": lambda: 2 * args.pairs, "history": lambda: 2 * args.pairs,
             "idle": lambda: args.connections}[args.command]()
    if not 0 < count <= MAX_CONNECTIONS:
        parser.error(f"between 1 and {MAX_CONNECTIONS} connections, please (got {count})")
    if args.command == "fanout" and (args.members < 2 or args.window < 1):
        parser.error("--members must be at least 2 and --window at least 1")
    if args.command == "idle" and not 0 < args.hold <= MAX_SECONDS:
        parser.error("--hold out of range")
    raise_nofile(count + 1000)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("picows").setLevel(logging.ERROR)
    scenario = {"fanout": scenario_fanout, "private": scenario_private,
                "idle": scenario_idle, "history": scenario_history}[args.command]
    budget = args.warmup + args.duration + args.drain + getattr(args, "hold", 0) + 300

    async def bounded() -> dict[str, Any]:
        async with asyncio.timeout(budget):
            return await scenario(args)

    result = uvloop.run(bounded())
    report(result, args.json_out)


if __name__ == "__main__":
    main()
