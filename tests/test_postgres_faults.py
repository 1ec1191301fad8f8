"""A PostgreSQL table locked by another session, end to end: live delivery goes on, acks say
``persisted: false`` and the writes land once the lock is gone (as with a locked SQLite file,
tests/test_faults.py). Always on PostgreSQL, whatever ``--store`` says."""

from __future__ import annotations

import psycopg
import trio

from trionet.settings import Settings
from trionet.testing import TestServer, fresh_postgres_database, running_server


def _count(url: str) -> int:
    with psycopg.connect(url, connect_timeout=5) as conn:
        row = conn.execute("SELECT count(*) FROM messages").fetchone()
        return 0 if row is None else int(row[0])


async def test_a_locked_messages_table_delays_nothing_and_the_writes_land_after() -> None:
    async with fresh_postgres_database() as url:
        settings = Settings(rate_limit=0, commit_timeout=0.3, database=url)
        async with running_server(settings) as server:
            a, b = await server.create_user("a"), await server.create_user("b")
            with trio.fail_after(40):
                async with server.connect(a) as wa, server.connect(b) as wb:
                    locker = await trio.to_thread.run_sync(
                        lambda: psycopg.connect(url, connect_timeout=5))
                    await trio.to_thread.run_sync(
                        locker.execute, "LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
                    try:
                        for i in range(3):
                            started = trio.current_time()
                            await TestServer.send_json(wa, {"type": "private", "to": b.id,
                                                            "content": f"x{i}",
                                                            "client_id": str(i)})
                            live = await TestServer.receive_json(wb)
                            assert trio.current_time() - started < 2
                            assert live["persisted"] is False
                            ack = await TestServer.receive_json(wa)
                            assert ack["persisted"] is False
                        async with server.http(a) as http:  # the rest of the API still answers
                            assert (await http.get("/readyz")).status_code == 200
                    finally:
                        await trio.to_thread.run_sync(locker.rollback)
                        await trio.to_thread.run_sync(locker.close)
                    while await trio.to_thread.run_sync(_count, url) < 3:
                        await trio.sleep(0.05)
                    async with server.http(a) as http:
                        page = (await http.get("/api/messages/private",
                                               params={"user": b.id})).json()
    assert [m["content"] for m in page["messages"]] == ["x2", "x1", "x0"]
