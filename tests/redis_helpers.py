"""Redis for the backplane tests: a link to a Redis, and a Redis server of a test's own."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import coredis
import pytest
import trio

from trionet.backplane.resp import RespLink

__all__ = ["open_link", "own_redis"]


async def open_link(url: str) -> RespLink:
    """A backplane link to ``url`` (2 s to connect, 2 s per reply)."""
    client = coredis.Redis.from_url(url, decode_responses=False)
    return await RespLink.open(url, client, connect_within=2, reply_within=2)


@asynccontextmanager
async def own_redis(ready: Callable[[], bool], *options: str) -> AsyncIterator[None]:
    """A Redis server of the test's own (no port unless ``options`` give one, nothing on
    disk), until ``ready()``; stopped by its pid afterwards."""
    redis_server = shutil.which("redis-server")
    if redis_server is None:  # (scripts/test and CI start the machine's Redis from it)
        pytest.fail("redis-server is not installed")
    process = await trio.lowlevel.open_process(
        [redis_server, "--port", "0", "--save", "", "--appendonly", "no", *options],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with trio.fail_after(10):
            while not ready():
                assert process.returncode is None, "redis-server did not start"
                await trio.sleep(0.02)
        yield
    finally:
        process.terminate()
        with trio.move_on_after(10):
            await process.wait()
        if process.returncode is None:
            process.kill()
