"""One task pings every WebSocket of a server (trionet.realtime.pings), over real sockets."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import trio
from wsproto.connection import Connection, ConnectionType
from wsproto.events import Ping

from trionet.api.ops import count_trio_tasks
from trionet.realtime.pings import PingSweep
from trionet.settings import Settings
from trionet.testing import TestServer, running_server


async def _pings(stream: trio.SocketStream, count: int) -> int:
    """Read until ``count`` pings arrived; how many did."""
    client = Connection(ConnectionType.CLIENT)
    got = 0
    while got < count:
        data = await stream.receive_some(65536)
        assert data, "the server closed the connection"
        client.receive_data(data)
        got += sum(isinstance(event, Ping) for event in client.events())
    return got


async def _sweep_size(server: TestServer, size: int) -> None:
    assert server.services.pings is not None
    while len(server.services.pings) != size:
        await trio.sleep(0.01)


async def test_every_connection_is_pinged_each_interval_by_the_servers_one_task() -> None:
    async with running_server(Settings(rate_limit=0, ping_interval=0.1)) as server:
        users = [await server.create_user(f"u{i}") for i in range(3)]
        with trio.fail_after(10):
            streams = [await server.raw_websocket(u) for u in users]
            await _sweep_size(server, 3)
            started = trio.current_time()
            for stream in streams:
                assert await _pings(stream, 3) == 3
            # three intervals, give or take the first (which may come early)
            assert trio.current_time() - started < 1.0
            for stream in streams:
                await stream.aclose()
            await _sweep_size(server, 0)  # closed streams are forgotten at once


async def test_a_connection_costs_no_ping_task() -> None:
    async with running_server(Settings(rate_limit=0, ping_interval=0.1)) as server:
        users = [await server.create_user(f"u{i}") for i in range(20)]
        with trio.fail_after(10):
            await trio.sleep(0.3)
            before = count_trio_tasks()
            streams = [await server.raw_websocket(u) for u in users]
            await _sweep_size(server, 20)
            await trio.sleep(0.3)  # past a few pings: hypercorn's loop would be running
            per_connection = (count_trio_tasks() - before) / 20
            # hypercorn's connection task, the ASGI application's task, trionet's writer
            assert per_connection == 3
            for stream in streams:
                await stream.aclose()


async def test_a_client_that_answers_the_pings_outlives_the_read_timeout() -> None:
    settings = Settings(rate_limit=0, ping_interval=0.1)
    async with running_server(settings) as server:
        a, b = await server.create_user("a"), await server.create_user("b")
        with trio.fail_after(settings.read_timeout + 10):
            async with server.connect(a) as wa, server.connect(b) as wb:
                # trio-websocket answers pings by itself; neither client sends anything
                await trio.sleep(settings.read_timeout + 1)
                await TestServer.send_json(wa, {"type": "private", "to": b.id,
                                                "content": "still here"})
                frame = await TestServer.receive_json(wb)
                assert frame["content"] == "still here"


class _WSStream:
    """What the sweep reads of hypercorn's WSStream."""

    def __init__(self) -> None:
        self.closed = False
        self.connection = Connection(ConnectionType.SERVER)


@contextmanager
def _sweep_with_one_stream(
    added: float,
) -> Iterator[tuple[PingSweep, trio.Semaphore, socket.socket]]:
    """A sweep holding one stand-in stream over a real socket pair; the peer's end too."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.setblocking(False)
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(ours))
        lock = trio.Semaphore(1, max_value=1)
        sweep = PingSweep(1.0)
        sweep._streams[_WSStream()] = (lock, stream.socket._sock,  # type: ignore[attr-defined]
                                       stream, added)
        yield sweep, lock, theirs


def _pings_in(sock: socket.socket) -> int:
    client = Connection(ConnectionType.CLIENT)
    try:
        client.receive_data(sock.recv(65536))
    except BlockingIOError:
        return 0
    return sum(isinstance(event, Ping) for event in client.events())


async def test_a_busy_connection_gets_its_ping_once_its_socket_is_free() -> None:
    with _sweep_with_one_stream(added=-10.0) as (sweep, lock, peer), trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(sweep.run)
            await lock.acquire()  # a write is under way
            await sweep.sweep()
            await trio.sleep(0.05)
            assert _pings_in(peer) == 0  # nothing in the middle of that write
            await sweep.sweep()  # still busy: still one ping waiting, not two
            lock.release()
            await trio.sleep(0.05)
            assert _pings_in(peer) == 1
            assert lock.value == 1
            nursery.cancel_scope.cancel()


async def test_a_stream_is_first_pinged_half_an_interval_after_it_connected() -> None:
    with _sweep_with_one_stream(added=trio.current_time()) as (sweep, _, peer), \
            trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(sweep.run)
            await sweep.sweep()
            assert _pings_in(peer) == 0
            await trio.sleep(0.6)  # past half of the 1 s interval
            await sweep.sweep()
            assert _pings_in(peer) == 1
            nursery.cancel_scope.cancel()
