"""A PostgreSQL table locked by another session, end to end: live delivery goes on, acks say
``persisted: false`` and the writes land once the lock is gone (as with a locked SQLite file,
tests/test_faults.py). Always on PostgreSQL, whatever ``--store`` says."""

from __future__ import annotations

import psycopg
import trio
from faults import CuttableProxy

from trionet.settings import Settings
from trionet.testing import TestServer, fresh_postgres_database, running_server


def _count(url: str) -> int:
    with psycopg.connect(url, connect_timeout=5) as conn:
        row = conn.execute("SELECT count(*) FROM messages").fetchone()
        return 0 if row is None else int(row[0])


LOCK_SECONDS = 15.0


async def test_a_locked_messages_table_delays_nothing_and_the_writes_land_after() -> None:
    """Another session holds an exclusive lock on ``messages`` for 15 s."""
    async with fresh_postgres_database() as url:
        settings = Settings(rate_limit=0, commit_timeout=0.3, database=url)
        async with running_server(settings) as server:
            a, b = await server.create_user("a"), await server.create_user("b")
            with trio.fail_after(60):
                async with server.connect(a) as wa, server.connect(b) as wb:
                    locker = await trio.to_thread.run_sync(
                        lambda: psycopg.connect(url, connect_timeout=5))
                    await trio.to_thread.run_sync(
                        locker.execute, "LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
                    locked_at = trio.current_time()
                    sent = 0
                    try:
                        # the lock is held 15 s; a message a second meanwhile, each delivered
                        # at once as not persisted
                        while trio.current_time() - locked_at < LOCK_SECONDS:
                            i, sent = sent, sent + 1
                            started = trio.current_time()
                            await TestServer.send_json(wa, {"type": "private", "to": b.id,
                                                            "content": f"x{i}",
                                                            "client_id": str(i)})
                            live = await TestServer.receive_json(wb)
                            assert trio.current_time() - started < 2
                            assert live["persisted"] is False
                            ack = await TestServer.receive_json(wa)
                            assert ack["persisted"] is False
                            async with server.http(a) as http:  # the rest still answers
                                assert (await http.get("/readyz")).status_code == 200
                            await trio.sleep(1)
                    finally:
                        await trio.to_thread.run_sync(locker.rollback)
                        await trio.to_thread.run_sync(locker.close)
                    while await trio.to_thread.run_sync(_count, url) < sent:
                        await trio.sleep(0.05)
                    async with server.http(a) as http:
                        page = (await http.get("/api/messages/private",
                                               params={"user": b.id, "limit": 50})).json()
    assert sent >= 10
    assert [m["content"] for m in page["messages"]] == [f"x{i}" for i in reversed(range(sent))]




async def test_postgres_unreachable_then_back_readiness_follows_and_nothing_is_lost() -> None:
    async with fresh_postgres_database() as direct, trio.open_nursery() as nursery:
        proxy = CuttableProxy(nursery, 5432)
        await proxy.start()
        url = direct.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        assert url != direct
        settings = Settings(rate_limit=0, commit_timeout=0.3, database=url)
        async with running_server(settings) as server:
            a, b = await server.create_user("a"), await server.create_user("b")
            with trio.fail_after(60):
                async with server.connect(a) as wa, server.connect(b) as wb, \
                        server.http(a) as http:
                    assert (await http.get("/readyz")).status_code == 200
                    # a conversation under way: its recipient is known (cached) already, as
                    # routing needs no store read for it then
                    await TestServer.send_json(wa, {"type": "private", "to": b.id,
                                                    "content": "up", "client_id": "u"})
                    assert "persisted" not in await TestServer.receive_json(wb)  # stored
                    assert (await TestServer.receive_json(wa))["persisted"] is True
                    proxy.cut()
                    for i in range(3):  # live delivery goes on, unpersisted
                        await TestServer.send_json(wa, {"type": "private", "to": b.id,
                                                        "content": f"down{i}",
                                                        "client_id": f"d{i}"})
                        assert (await TestServer.receive_json(wb))["persisted"] is False
                        assert (await TestServer.receive_json(wa))["persisted"] is False
                    down = await http.get("/readyz")
                    await proxy.start()  # the same port again
                    while (await http.get("/readyz")).status_code != 200:
                        await trio.sleep(0.1)
                    while await trio.to_thread.run_sync(_count, direct) < 4:
                        await trio.sleep(0.1)
                    page = (await http.get("/api/messages/private",
                                           params={"user": b.id})).json()
            nursery.cancel_scope.cancel()
    assert down.status_code == 503
    assert [m["content"] for m in page["messages"]] == ["down2", "down1", "down0", "up"]
