"""The write-through path: a frame for a connection whose writer is idle is written by the
task that routes it; everything else queues behind, in order.

The first part drives :class:`Conn` with a stand-in write (the decisions are plain code); the
second writes over a real socket pair through :class:`DirectTransport`.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest
import trio
from wsproto.connection import Connection, ConnectionType
from wsproto.events import TextMessage

from trionet.interfaces import Identity
from trionet.realtime.registry import (
    FULL,
    JOIN_MAX,
    QUEUED,
    WRITTEN,
    Conn,
    Outgoing,
    Unfinished,
)
from trionet.realtime.transport import DirectTransport


class Rest:
    """An :class:`Unfinished` stand-in that records what happens to it."""

    def __init__(self) -> None:
        self.finished = self.abandoned = False

    async def finish(self) -> None:
        self.finished = True

    def abandon(self) -> None:
        self.abandoned = True


class Socket:
    """A stand-in write: answers each call with the next of ``answers``, records frames."""

    def __init__(self, *answers: bool | Unfinished) -> None:
        self.answers = list(answers)
        self.written: list[list[bytes]] = []

    def __call__(self, frames: Sequence[bytes]) -> bool | Unfinished:
        answer = self.answers.pop(0) if self.answers else True
        if answer is True or not isinstance(answer, bool):
            self.written.append(list(frames))
        return answer


def conn_with(write: Socket | None, size: int = 4
              ) -> tuple[Conn, trio.MemoryReceiveChannel[Outgoing]]:
    send, receive = trio.open_memory_channel[Outgoing](size)
    conn = Conn(Identity(user_id=1), send)
    conn.write_now = write
    return conn, receive


def queued(receive: trio.MemoryReceiveChannel[Outgoing]) -> list[Outgoing]:
    out: list[Outgoing] = []
    while True:
        try:
            out.append(receive.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel):
            return out


def test_an_idle_connection_is_written_through_and_nothing_is_queued() -> None:
    write = Socket()
    conn, receive = conn_with(write)
    conn.idle = True
    assert conn.push(b"a") == WRITTEN
    assert conn.push_many([b"b", b"c"]) == WRITTEN
    assert write.written == [[b"a"], [b"b", b"c"]]
    assert queued(receive) == []
    assert conn.idle  # still idle: the writer was never woken


def test_a_busy_writer_gets_the_frame_queued_and_nothing_is_written() -> None:
    write = Socket()
    conn, receive = conn_with(write)
    assert not conn.idle  # a new connection's writer is not waiting yet
    assert conn.push(b"a") == QUEUED
    assert write.written == []
    assert queued(receive) == [b"a"]


def test_a_socket_held_by_another_write_queues_and_the_rest_follow_in_order() -> None:
    write = Socket(False)  # hypercorn is writing a ping, say
    conn, receive = conn_with(write)
    conn.idle = True
    assert conn.push(b"a") == QUEUED
    assert not conn.idle  # the writer has a frame to send: nothing may overtake it
    assert conn.push(b"b") == QUEUED
    assert write.written == []
    assert queued(receive) == [b"a", b"b"]


def test_a_partial_write_queues_its_rest_first_and_later_frames_behind_it() -> None:
    rest = Rest()
    write = Socket(rest)
    conn, receive = conn_with(write)
    conn.idle = True
    assert conn.push_many([b"a", b"b"]) == WRITTEN  # begun: the rest is the writer's
    assert conn.push(b"c") == QUEUED
    assert queued(receive) == [rest, b"c"]
    assert not rest.abandoned


def test_a_partial_write_on_a_connection_whose_writer_is_gone_releases_the_lock() -> None:
    rest = Rest()
    conn, receive = conn_with(Socket(rest))
    receive.close()
    conn.idle = True
    assert conn.push(b"a") == WRITTEN
    assert rest.abandoned and conn.closed


def test_a_full_outbox_is_a_slow_consumer_and_a_closed_connection_takes_nothing() -> None:
    conn, receive = conn_with(Socket(), size=2)
    assert conn.push_many([b"a", b"b", b"c"]) == FULL
    conn.end(4008)
    conn.idle = True  # (a writer never sets it on a closed connection; push checks anyway)
    assert conn.push(b"d") == QUEUED
    assert queued(receive) == [b"a", b"b"]


def test_a_big_batch_is_written_through_at_most_join_max_frames_a_write() -> None:
    write = Socket()
    conn, receive = conn_with(write)
    conn.idle = True
    frames = [b"%d" % i for i in range(300)]
    assert conn.push_many(frames) == WRITTEN
    assert [len(w) for w in write.written] == [JOIN_MAX, JOIN_MAX, 300 - 2 * JOIN_MAX]
    assert [f for w in write.written for f in w] == frames
    assert queued(receive) == []


def test_what_a_busy_socket_leaves_of_a_batch_is_bounded_by_the_outbox() -> None:
    write = Socket(True, False)  # the first chunk goes out, then the socket is busy
    conn, receive = conn_with(write, size=4)
    conn.idle = True
    assert conn.push_many([b"%d" % i for i in range(300)]) == FULL  # a slow consumer
    assert [len(w) for w in write.written] == [JOIN_MAX]
    assert queued(receive) == [b"128", b"129", b"130", b"131"]


def test_without_a_write_through_path_frames_always_queue() -> None:
    conn, receive = conn_with(None)
    conn.idle = True
    assert conn.push(b"a") == QUEUED
    assert queued(receive) == [b"a"]


# -- over a real socket ---------------------------------------------------------------------


def transport_pair(sndbuf: int | None = None
                   ) -> tuple[DirectTransport, trio.Semaphore, socket.socket]:
    ours, theirs = socket.socketpair()
    if sndbuf is not None:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, sndbuf)
    stream = trio.SocketStream(trio.socket.from_stdlib_socket(ours))
    raw = stream.socket._sock  # type: ignore[attr-defined]
    lock = trio.Semaphore(1, max_value=1)

    async def unused(*_: Any) -> Any:
        raise AssertionError("ASGI is not used for frames")

    transport = DirectTransport(unused, unused, SimpleNamespace(closed=False), stream, lock,
                                raw)
    theirs.setblocking(False)
    return transport, lock, theirs


async def read_messages(sock: socket.socket, count: int) -> list[str]:
    """Read ``count`` whole text messages from ``sock`` (as a WebSocket client)."""
    client = Connection(ConnectionType.CLIENT)
    out: list[str] = []
    part = ""
    while len(out) < count:
        await trio.lowlevel.wait_readable(sock)
        client.receive_data(sock.recv(1 << 20))
        for event in client.events():
            if isinstance(event, TextMessage):
                part += event.data
                if event.message_finished:
                    out.append(part)
                    part = ""
    return out


async def test_a_free_socket_is_written_at_once() -> None:
    transport, lock, peer = transport_pair()
    write = transport.write_through(joined=False)
    with trio.fail_after(5):
        assert write([b'{"n":1}']) is True
        assert write([b'{"n":2}', b'{"n":3}']) is True
        assert lock.value == 1  # released
        assert await read_messages(peer, 3) == ['{"n":1}', '{"n":2}', '{"n":3}']


async def test_joined_frames_go_out_as_one_message() -> None:
    transport, _, peer = transport_pair()
    write = transport.write_through(joined=True)
    with trio.fail_after(5):
        assert write([b"a", b"b"]) is True
        assert await read_messages(peer, 1) == ["a\nb"]


async def test_a_held_socket_writes_nothing() -> None:
    transport, lock, peer = transport_pair()
    await lock.acquire()
    assert transport.write_through(joined=False)([b"x"]) is False
    with pytest.raises(BlockingIOError):
        peer.recv(10)


async def test_a_partial_write_keeps_the_lock_until_its_rest_is_written() -> None:
    transport, lock, peer = transport_pair(sndbuf=4096)
    payload = b"y" * 2_000_000  # far more than the socket buffers hold
    result = transport.write_through(joined=False)([payload])
    assert not isinstance(result, bool)
    assert lock.value == 0  # nothing else (a ping, the close) may write mid-frame
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(result.finish)
            got = await read_messages(peer, 1)
    assert got == [payload.decode()]
    assert lock.value == 1


async def test_an_abandoned_rest_releases_the_lock_once_and_ends_the_stream() -> None:
    transport, lock, peer = transport_pair(sndbuf=4096)
    result = transport.write_through(joined=False)([b"z" * 2_000_000])
    assert not isinstance(result, bool)
    result.abandon()
    result.abandon()
    assert lock.value == 1
    # nothing may follow half a frame: the peer reads what was sent, then the end
    with trio.fail_after(5):
        while True:
            await trio.lowlevel.wait_readable(peer)
            if not peer.recv(1 << 20):
                break

