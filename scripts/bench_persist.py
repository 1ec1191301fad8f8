"""Group-commit persistence throughput, measured on its own, on either store.

Feeds the committer (trionet.realtime.committer.GroupCommitter with a store as its persister)
as fast as it takes messages from many producer tasks, for a fixed time, and reports messages
committed per second, the batch sizes it formed, and the longest the trio loop was late
meanwhile (a task that sleeps 1 ms in a loop measures it). Everything runs in this process, on a
temporary SQLite database or a fresh PostgreSQL database (dropped at the end)::

    .venv/bin/python scripts/bench_persist.py --seconds 5 --producers 200
    .venv/bin/python scripts/bench_persist.py --store postgresql --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import trio

from trionet.core.ids import IdAllocator, id_to_iso
from trionet.interfaces import MessageRecord
from trionet.metrics import Metrics
from trionet.realtime.committer import GroupCommitter, Pending
from trionet.store import Store, open_store
from trionet.store.sqlite import SqliteStore


async def run(seconds: float, producers: int, inline: bool,
              database: str | None = None, paced: int = 0) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        persister: Store = open_store(database or str(Path(tmp) / "bench.db"))
        await persister.migrate()
        if not inline and isinstance(persister, SqliteStore):
            persister.save_inline = None  # type: ignore[assignment,method-assign]
        committed = 0
        stalls: list[float] = []

        async def probe() -> None:  # how late a 1 ms sleep wakes up: the loop's stalls
            while True:
                before = trio.current_time()
                await trio.sleep(0.001)
                stalls.append(trio.current_time() - before - 0.001)

        async def deliver(batch: list[Pending]) -> None:
            nonlocal committed
            committed += len(batch)

        metrics = Metrics()
        committer = GroupCommitter(persister, deliver, commit_timeout=5.0,
                                   retry_capacity=1_000_000, metrics=metrics, queue_size=65536)
        ids = IdAllocator()
        deadline = trio.current_time() + seconds

        async def produce(n: int) -> None:
            if paced:  # one producer: `paced` messages every 20 ms, the loop idle between
                while trio.current_time() < deadline:
                    for _ in range(paced):
                        mid = ids.next()
                        await committer.submit(Pending(message=MessageRecord(
                            id=mid, kind="group", sender_id=1, group_id=1, content="x" * 100,
                            created_at=id_to_iso(mid))))
                    await trio.sleep(0.02)
                return
            while trio.current_time() < deadline:
                for _ in range(50):
                    mid = ids.next()
                    record = MessageRecord(id=mid, kind="group", sender_id=n + 1, group_id=1,
                                           content="x" * 100, created_at=id_to_iso(mid))
                    await committer.submit(Pending(message=record))
                await trio.lowlevel.checkpoint()

        async with trio.open_nursery() as nursery:
            await nursery.start(committer.run)
            nursery.start_soon(probe)
            started = time.perf_counter()
            async with trio.open_nursery() as producers_nursery:
                for n in range(1 if paced else producers):
                    producers_nursery.start_soon(produce, n)
            await committer.flush()
            elapsed = time.perf_counter() - started
            nursery.cancel_scope.cancel()
        await persister.aclose()
        samples = {s.name: s.value for m in metrics.registry.collect() for s in m.samples}
        batches = (samples["trionet_persist_batch_size_sum"],
                   samples["trionet_persist_batch_size_count"])
        in_commits = samples["trionet_commit_seconds_sum"]
        return {
            "committed": committed,
            "seconds": round(elapsed, 2),
            "messages_per_s": round(committed / elapsed),
            "commits": batches[1],
            "mean_batch": round(batches[0] / max(batches[1], 1), 1),
            # the writer alone: messages per second of time spent inside commits
            "writer_messages_per_s": round(committed / in_commits) if in_commits else 0,
            "loop_late_max_ms": round(max(stalls, default=0) * 1000, 1),
            "loop_late_p99_ms": round(sorted(stalls)[int(len(stalls) * 0.99)] * 1000, 2)
            if stalls else 0,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--producers", type=int, default=200)
    parser.add_argument("--store", choices=("sqlite", "postgresql", "both"), default="sqlite",
                        help="both: SQLite and PostgreSQL runs alternate, --repeat times each")
    parser.add_argument("--admin-url", default=os.environ.get(
        "TRIONET_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="PostgreSQL server the fresh database is made on")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--paced", type=int, default=0, metavar="N",
                        help="instead of full speed: N messages every 20 ms from one producer, "
                             "so the loop's lateness is what the commits cause")
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {}
    stores = ["sqlite", "postgresql"] if args.store == "both" else [args.store]
    for _ in range(args.repeat):
        for store in stores:
            for inline in (True, False) if store == "sqlite" else (False,):
                label = f"{store}, " + ("inline commits" if inline else "worker-thread commits")
                if store == "postgresql":
                    result = trio.run(_on_postgres, args.admin_url, args.seconds,
                                      args.producers, args.paced)
                else:
                    result = trio.run(run, args.seconds, args.producers, inline, None,
                                      args.paced)
                results.setdefault(label, []).append(result)
                print(f"{label:36} {json.dumps(result)}", flush=True)
    print(json.dumps(results))


async def _on_postgres(admin_url: str, seconds: float, producers: int,
                       paced: int) -> dict[str, float]:
    from trionet.testing import fresh_postgres_database

    async with fresh_postgres_database(admin_url) as url:
        return await run(seconds, producers, False, url, paced)


if __name__ == "__main__":
    main()
