"""Group-commit persistence throughput, measured on its own.

Feeds the committer (trionet.realtime.committer.GroupCommitter with the SQLite persister) as
fast as it takes messages from many producer tasks, for a fixed time, and reports messages
committed per second and the batch sizes it formed. Everything runs in this process, on a temporary
database::

    .venv/bin/python scripts/bench_persist.py --seconds 5 --producers 200
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import trio

from trionet.core.ids import IdAllocator, id_to_iso
from trionet.interfaces import MessageRecord
from trionet.metrics import Metrics
from trionet.realtime.committer import GroupCommitter, Pending
from trionet.store.sqlite import SqliteStore


async def run(seconds: float, producers: int, inline: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        persister = SqliteStore(str(Path(tmp) / "bench.db"))
        persister.db.migrate()
        if not inline:
            persister.save_inline = None  # type: ignore[assignment,method-assign]
        committed = 0

        async def deliver(batch: list[Pending]) -> None:
            nonlocal committed
            committed += len(batch)

        metrics = Metrics()
        committer = GroupCommitter(persister, deliver, commit_timeout=5.0,
                                   retry_capacity=1_000_000, metrics=metrics, queue_size=65536)
        ids = IdAllocator()
        deadline = trio.current_time() + seconds

        async def produce(n: int) -> None:
            while trio.current_time() < deadline:
                for _ in range(50):
                    mid = ids.next()
                    record = MessageRecord(id=mid, kind="group", sender_id=n + 1, group_id=1,
                                           content="x" * 100, created_at=id_to_iso(mid))
                    await committer.submit(Pending(message=record))
                await trio.lowlevel.checkpoint()

        async with trio.open_nursery() as nursery:
            await nursery.start(committer.run)
            started = time.perf_counter()
            async with trio.open_nursery() as producers_nursery:
                for n in range(producers):
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
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--producers", type=int, default=200)
    args = parser.parse_args()
    results = {}
    for inline in (True, False):
        label = "inline commits" if inline else "worker-thread commits"
        results[label] = trio.run(run, args.seconds, args.producers, inline)
        print(f"{label:24} {json.dumps(results[label])}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
