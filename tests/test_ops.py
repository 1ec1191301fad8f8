"""Operations endpoints: the live trio task count in ``GET /metrics``."""

from __future__ import annotations

import httpx
import trio
import trio.testing

from trionet.api.ops import count_trio_tasks
from trionet.testing import TestServer


async def trio_tasks(http: httpx.AsyncClient) -> int:
    response = await http.get("/metrics")
    assert response.status_code == 200
    for line in response.text.splitlines():
        if line.startswith("trionet_trio_tasks "):
            return int(float(line.split()[1]))
    raise AssertionError("no trionet_trio_tasks in /metrics")


async def test_count_trio_tasks_sees_tasks_start_and_end() -> None:
    before = count_trio_tasks()
    release = trio.Event()
    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(release.wait)
        await trio.testing.wait_all_tasks_blocked()
        assert count_trio_tasks() == before + 3
        release.set()
    assert count_trio_tasks() == before


async def test_metrics_trio_tasks_rises_with_a_connection_and_returns_to_baseline(
    server: TestServer,
) -> None:
    user = await server.create_user("a")
    with trio.fail_after(15):
        async with server.http() as http:
            baseline = await trio_tasks(http)
            assert baseline > 0
            async with server.connect(user):
                while not server.services.manager.is_online(user.id):
                    await trio.sleep(0.01)
                # the connection's handler, reader and writer at least
                assert await trio_tasks(http) >= baseline + 3
            while await trio_tasks(http) != baseline:  # nothing outlives the connection
                await trio.sleep(0.05)
