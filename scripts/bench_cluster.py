#!/usr/bin/env python3
"""The cost of the Redis backplane: one trionet process against two nodes on one Redis, in one
run, with the same load.

Each configuration is started fresh for every scenario, its server processes pinned to CPU 0
(both nodes share it, so the comparison is CPU per delivery on one core), the load generator
(``scripts/loadtest.py``) pinned to CPU 1, a temporary SQLite database, and (for two nodes) a
fresh Redis key prefix, deleted afterwards. The load connects round-robin to the nodes, so a
group's members and a pair's two sides sit on different nodes. Scenarios:

- ``fanout-rate``: 10 groups x 100 members at 50 messages/s per group (49,500 deliveries/s):
  held or not, lost, p99 latency;
- ``fanout-full``: the same at full speed (64 in flight per group, ``coalesce=1``):
  deliveries/s and server CPU per delivery;
- ``private``: 50 pairs in ping-pong: round trips/s and CPU per round trip.

Redis's own CPU (the machine's ``redis-server``, found by its port) is reported apart. Prints
a table of both configurations and their ratios, then one JSON line; every process it starts
is stopped by its pid.

    .venv/bin/python scripts/bench_cluster.py --duration 10 --repeat 2
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
PY = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
LOADTEST = str(ROOT / "scripts" / "loadtest.py")
REDIS = os.environ.get("TRIONET_TEST_REDIS", "redis://127.0.0.1:6379/0")

SCENARIOS: dict[str, list[str]] = {
    "fanout-rate": ["fanout", "--groups", "10", "--members", "100", "--rate", "50",
                    "--coalesce"],
    "fanout-full": ["fanout", "--groups", "10", "--members", "100", "--window", "64",
                    "--coalesce"],
    "private": ["private", "--pairs", "50"],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def redis_process() -> psutil.Process | None:
    port = int(REDIS.rsplit(":", 1)[1].split("/")[0])
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] and "redis" in proc.info["name"]:
            try:
                if any(c.laddr.port == port for c in proc.net_connections("tcp")):
                    return proc
            except psutil.Error:
                continue
    return None


def cpu_of(proc: psutil.Process | None) -> float:
    if proc is None:
        return 0.0
    try:
        t = proc.cpu_times()
        return float(t.user + t.system)
    except psutil.Error:
        return 0.0


def clean_prefix(prefix: str) -> None:
    host, port = REDIS.removeprefix("redis://").split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        stream = sock.makefile("rwb")

        def command(*parts: str) -> Any:
            stream.write(f"*{len(parts)}\r\n".encode()
                         + b"".join(f"${len(p)}\r\n{p}\r\n".encode() for p in parts))
            stream.flush()
            return read(stream)

        cursor = "0"
        while True:
            cursor, keys = command("SCAN", cursor, "MATCH", f"{prefix}:*", "COUNT", "1000")
            if keys:
                command("DEL", *keys)
            if cursor == "0":
                break


def read(stream: Any) -> Any:
    line = stream.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:]
    if kind == b"*":
        return [read(stream) for _ in range(int(rest))]
    if kind == b"$":
        data = stream.read(int(rest) + 2)[:-2]
        return data.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    return rest.decode()


def run_one(config: str, scenario: str, args: argparse.Namespace, work: Path,
            run: int) -> dict[str, Any]:
    secret, key = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    prefix = f"trionet-bench-{secrets.token_hex(4)}"
    env = {**os.environ, "TRIONET_JWT_SECRET": secret, "TRIONET_API_KEY": key,
           "TRIONET_RATE_LIMIT": "0", "TRIONET_LOG_LEVEL": "WARNING", "TRIONET_HOST": "127.0.0.1",
           "TRIONET_DATABASE": str(work / f"{run:02d}-{config}.db")}
    nodes = 1 if config == "one process" else 2
    if nodes > 1:
        env.update(TRIONET_REDIS_URL=REDIS, TRIONET_REDIS_PREFIX=prefix)
    subprocess.run([PY, "-m", "trionet", "migrate"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    ports = [free_port() for _ in range(nodes)]
    servers: list[subprocess.Popen[bytes]] = []
    try:
        for port in ports:
            with open(work / f"{run:02d}-{config}-{port}.log", "wb") as log:
                servers.append(subprocess.Popen(
                    ["taskset", "-c", "0", PY, "-m", "trionet", "serve", "--port", str(port)],
                    env={**env, "TRIONET_PORT": str(port)}, stdout=log,
                    stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 60
        while not all(ready(p) for p in ports):
            if time.monotonic() > deadline or any(s.poll() is not None for s in servers):
                raise SystemExit(f"bench: {config} did not start (logs in {work})")
            time.sleep(0.1)
        out = work / f"{run:02d}-{config}-{scenario}.json"
        redis = redis_process() if nodes > 1 else None
        redis_before, started = cpu_of(redis), time.monotonic()
        load = ["taskset", "-c", "1", PY, LOADTEST, *SCENARIOS[scenario],
                "--url", ",".join(f"http://127.0.0.1:{p}" for p in ports),
                "--server-pid", ",".join(str(s.pid) for s in servers), "--label", config,
                "--json-out", str(out), "--duration", str(args.duration), "--no-progress"]
        subprocess.run(load, env=env, check=True, timeout=900, stdout=subprocess.DEVNULL)
        result: dict[str, Any] = json.loads(out.read_text())
        # over the whole load run (connecting included): an upper bound for the measured part
        wall = time.monotonic() - started
        result["redis_cpu_pct"] = round(100 * (cpu_of(redis) - redis_before) / wall, 1)
        return result
    finally:
        for server in servers:
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)
        for server in servers:
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        if nodes > 1:
            clean_prefix(prefix)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--only", help="comma-separated scenarios: " + ",".join(SCENARIOS))
    parser.add_argument("--rate", type=float, default=50.0,
                        help="fanout-rate: messages/s per group (50: 49,500 deliveries/s)")
    parser.add_argument("--configs", default="one process,two nodes",
                        help="comma-separated: one process, two nodes")
    args = parser.parse_args()
    SCENARIOS["fanout-rate"][6] = f"{args.rate:g}"
    chosen = args.only.split(",") if args.only else list(SCENARIOS)
    work = Path(tempfile.mkdtemp(prefix="trionet-bench-cluster-"))
    results: list[dict[str, Any]] = []
    run = 0
    for _ in range(args.repeat):
        for scenario in chosen:
            for config in args.configs.split(","):
                run += 1
                r = run_one(config, scenario, args, work, run)
                r["config"], r["bench"] = config, scenario
                results.append(r)
                print(summary(r), file=sys.stderr, flush=True)
    print(json.dumps({"bench": "cluster", "results": results}))
    return 0


def unit_rate(r: dict[str, Any]) -> float:
    """Deliveries/s (fan-out) or round trips/s (private)."""
    return float(r.get("round_trips_per_s") or r.get("delivered_per_s") or 0)


def cpu_per_unit_us(r: dict[str, Any]) -> float | None:
    cpu, rate = r.get("server_cpu_pct"), unit_rate(r)
    return round(cpu / 100 / rate * 1e6, 2) if cpu and rate else None


def summary(r: dict[str, Any]) -> str:
    p99 = (r.get("latency_ms") or {}).get("p99")
    return (f"{r['bench']:12} {r['config']:12} rate {unit_rate(r):,.0f}/s lost {r.get('lost')}"
            f" p99 {p99} ms server cpu {r.get('server_cpu_pct')} %"
            f" ({cpu_per_unit_us(r)} us per unit) redis cpu {r['redis_cpu_pct']} %"
            f" loadgen {r.get('loadgen_cpu_pct')} %")


if __name__ == "__main__":
    sys.exit(main())
