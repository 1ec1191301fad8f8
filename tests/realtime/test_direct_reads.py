"""The connection's reader reads its socket itself after the handshake; every frame it does not
take (a close, a fragment, a protocol error) goes back to hypercorn and wsproto, over real
sockets.

``hypercorn_frames`` counts the times hypercorn's WebSocket stream decoded frames: it stays 0
while the reader reads directly.
"""

from __future__ import annotations

import json
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
from hypercorn.protocol import ws_stream
from wsproto.connection import Connection, ConnectionType
from wsproto.events import CloseConnection, Message, Ping, Pong, TextMessage

from trionet.core.wsframes import unmask
from trionet.realtime import reads
from trionet.realtime.reads import LeanReader
from trionet.settings import Settings
from trionet.testing import TestServer, running_server

LIMIT = 4096


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    async with running_server(Settings(rate_limit=0, max_message_bytes=LIMIT)) as s:
        yield s


@pytest.fixture
def hypercorn_frames(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    original = ws_stream.WSStream._handle_events

    async def counted(self: Any) -> None:
        calls[0] += 1
        await original(self)

    monkeypatch.setattr(ws_stream.WSStream, "_handle_events", counted)
    return calls


class Peer:
    """A raw client: frames written with wsproto's client, the server's frames parsed by it."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.ws = Connection(ConnectionType.CLIENT)
        self.events: list[Any] = []

    def frame(self, event: Any) -> bytes:
        return self.ws.send(event)

    def ping_message(self, client_id: str) -> bytes:
        return self.frame(TextMessage(data=json.dumps({"type": "ping", "client_id": client_id})))

    async def next_event(self) -> Any:
        while not self.events:
            data = await self.stream.receive_some(65536)
            self.ws.receive_data(data or None)
            self.events += list(self.ws.events())
            if not data and not self.events:
                raise EOFError
        return self.events.pop(0)

    async def pongs(self, n: int) -> list[str]:
        got = []
        while len(got) < n:
            event = await self.next_event()
            if isinstance(event, TextMessage):
                frame = json.loads(event.data)
                if frame["type"] == "pong":
                    got.append(frame["client_id"])
        return got

    async def close_code(self) -> int:
        while True:
            event = await self.next_event()
            if isinstance(event, CloseConnection):
                return event.code


async def peer_of(server: TestServer) -> Peer:
    user = await server.create_user(f"u{trio.current_time()}", password=None)
    return Peer(await server.raw_websocket(user))


def masked(first: int, payload: bytes, length: int | None = None) -> bytes:
    n = len(payload) if length is None else length
    key = b"\x01\x02\x03\x04"
    if n < 126:
        head = bytes((first, 0x80 | n))
    elif n < 65536:
        head = bytes((first, 0x80 | 126)) + struct.pack("!H", n)
    else:
        head = bytes((first, 0x80 | 127)) + struct.pack("!Q", n)
    return head + key + unmask(payload, key)


async def test_messages_are_read_by_the_reader_in_order_however_they_arrive(
    server: TestServer, hypercorn_frames: list[int]
) -> None:
    with trio.fail_after(10):
        peer = await peer_of(server)
        # three in one write, then one a byte at a time
        await peer.stream.send_all(b"".join(peer.ping_message(str(i)) for i in range(3)))
        for byte in peer.ping_message("3"):
            await peer.stream.send_all(bytes([byte]))
            await trio.sleep(0.001)
        assert await peer.pongs(4) == ["0", "1", "2", "3"]
        await peer.stream.aclose()
    assert hypercorn_frames == [0]


async def test_a_read_of_many_tiny_frames_is_taken_a_slice_at_a_time_in_order(
    server: TestServer, hypercorn_frames: list[int]
) -> None:
    with trio.fail_after(10):
        peer = await peer_of(server)
        await peer.stream.send_all(b"".join(
            peer.ping_message(str(i)) if i % 3 else peer.frame(Ping(payload=b"%d" % i))
            for i in range(300)))
        pongs: list[str] = []
        control: list[bytes] = []
        while len(pongs) < 200 or len(control) < 100:
            event = await peer.next_event()
            if isinstance(event, Pong):
                control.append(event.payload)
            elif isinstance(event, TextMessage):
                pongs.append(json.loads(event.data)["client_id"])
        assert pongs == [str(i) for i in range(300) if i % 3]
        assert control == [b"%d" % i for i in range(0, 300, 3)]
        await peer.stream.aclose()
    assert hypercorn_frames == [0]


async def test_a_websocket_ping_is_answered_with_its_payload(
    server: TestServer, hypercorn_frames: list[int]
) -> None:
    with trio.fail_after(10):
        peer = await peer_of(server)
        await peer.stream.send_all(peer.frame(Ping(payload=b"are you there")))
        event = await peer.next_event()
        assert isinstance(event, Pong) and event.payload == b"are you there"
        await peer.stream.send_all(peer.frame(Pong(payload=b"unasked")) + peer.ping_message("a"))
        assert await peer.pongs(1) == ["a"]
        await peer.stream.aclose()
    assert hypercorn_frames == [0]


async def test_a_fragmented_message_goes_to_hypercorn_and_the_connection_goes_on(
    server: TestServer, hypercorn_frames: list[int]
) -> None:
    whole = json.dumps({"type": "ping", "client_id": "frag"})
    with trio.fail_after(10):
        peer = await peer_of(server)
        await peer.stream.send_all(
            peer.ping_message("before")
            + peer.frame(Message(data=whole[:10], message_finished=False))
            + peer.frame(Message(data=whole[10:], message_finished=True))
            + peer.ping_message("after"))
        assert await peer.pongs(3) == ["before", "frag", "after"]
        await peer.stream.send_all(peer.ping_message("later"))
        assert await peer.pongs(1) == ["later"]
        await peer.stream.aclose()
    assert hypercorn_frames[0] > 0


async def test_the_clients_close_is_answered_and_its_handler_ends(server: TestServer) -> None:
    with trio.fail_after(10):
        peer = await peer_of(server)
        await peer.stream.send_all(peer.ping_message("x") + peer.frame(
            CloseConnection(code=1000, reason="bye")))
        assert await peer.pongs(1) == ["x"]
        assert await peer.close_code() == 1000
        assert await peer.stream.receive_some(10) == b""  # and the server closed the socket
        while server.services.open_handlers:
            await trio.sleep(0.01)


@pytest.mark.parametrize("name,frame", [
    ("text that is not UTF-8", masked(0x81, b"\xff\xfe")),
    ("an unmasked frame", bytes((0x81, 2)) + b"{}"),
    ("a compressed frame (no extension was agreed)", masked(0xC1, b"xx")),
    ("an unknown opcode", masked(0x83, b"x")),
])
async def test_a_protocol_error_fails_the_connection_as_hypercorn_does(
    server: TestServer, name: str, frame: bytes
) -> None:
    """The frames before it are answered; then wsproto reports the error and hypercorn drops
    the socket (RFC 6455, 7.1.7: "fail the WebSocket connection"; no close frame)."""
    with trio.fail_after(10):
        peer = await peer_of(server)
        await peer.stream.send_all(peer.ping_message("first") + frame)
        assert await peer.pongs(1) == ["first"], name
        assert await peer.close_code() == 1006, name  # the socket closed under it
        while server.services.open_handlers:
            await trio.sleep(0.01)


async def test_a_message_over_the_limit_is_closed_with_1009(server: TestServer) -> None:
    with trio.fail_after(10):
        peer = await peer_of(server)
        await peer.stream.send_all(peer.ping_message("first"))
        assert await peer.pongs(1) == ["first"]
        await peer.stream.send_all(masked(0x81, b"x" * (LIMIT + 1)))
        assert await peer.close_code() == 1009
        await peer.stream.send_all(peer.frame(CloseConnection(code=1009)))  # the answer
        while server.services.open_handlers:
            await trio.sleep(0.01)


async def test_a_peer_gone_mid_frame_ends_its_handler(server: TestServer) -> None:
    with trio.fail_after(10):
        peer = await peer_of(server)
        await peer.stream.send_all(peer.ping_message("y")[:5])
        await peer.stream.aclose()
        while server.services.open_handlers:
            await trio.sleep(0.01)


async def test_permessage_deflate_is_not_agreed(server: TestServer) -> None:
    """hypercorn would accept it; wsproto inflates without a size limit, and the direct path
    neither writes nor reads it."""
    user = await server.create_user("z", password=None)
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream(host, int(port))
        await stream.send_all(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
            + f"Cookie: {server.settings.cookie_name}={user.token}\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += await stream.receive_some(4096)
        assert b" 101 " in head.split(b"\r\n", 1)[0]
        assert b"sec-websocket-extensions" not in head.lower()
        await stream.aclose()


async def test_a_handoff_posted_while_hypercorn_reads_stops_that_read_without_losing_data(
) -> None:
    """The read loop waits in a read when the handoff is posted: the read is cancelled (it has
    taken nothing), the loop parks, and the reader gets every byte from the socket."""
    from trionet.realtime import _hypercorn_fixes as fixes

    fixes.apply()
    a, b = trio.socket.socketpair()
    stream = trio.SocketStream(a)
    handled: list[object] = []

    class Loop:
        trionet_handoff = None
        trionet_read_scope = None
        config = type("C", (), {"read_timeout": 30})()

        def __init__(self) -> None:
            self.stream = stream
            self.protocol = self

        async def handle(self, event: object) -> None:
            handled.append(event)

    loop = Loop()
    ws = type("WS", (), {"closed": False})()
    writes: list[bytes] = []

    async def write(data: bytes) -> None:
        writes.append(data)

    client = Connection(ConnectionType.CLIENT)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fixes._read_data, loop)
            await trio.sleep(0.05)  # the loop now waits in its read
            handoff = reads.post_handoff(loop)
            assert handoff is not None
            reader = LeanReader(handoff, a._sock, write, ws, LIMIT, 30)  # type: ignore[attr-defined]
            await b.send(client.send(TextMessage(data="one")) + client.send(Ping(payload=b"p")))
            assert await reader.next() == "one"
            await b.send(client.send(TextMessage(data="two"))
                         + client.send(CloseConnection(code=1000)))
            assert await reader.next() == "two"
            assert await reader.next() is None  # the close went back to hypercorn
            await b.send(b"more")
            b.close()
    assert writes == [b"\x8a\x01p"]
    kinds = [getattr(e, "data", type(e).__name__) for e in handled]
    close = Connection(ConnectionType.CLIENT).send(CloseConnection(code=1000))
    assert kinds[0][:2] == close[:2]  # the close, from the reader's buffer (masked anew)
    assert len(b"".join(k for k in kinds if isinstance(k, bytes))) == len(close) + len(b"more")
    assert kinds[-1] == "Closed"


async def test_a_read_loop_that_ends_before_it_parks_wakes_the_reader() -> None:
    """The stream ends (hypercorn closed it) before the loop reached its next iteration: the
    handoff is given back with the end, so a reader waiting for the loop to park is not left
    waiting forever."""
    from trionet.realtime import _hypercorn_fixes as fixes

    fixes.apply()
    a, b = trio.socket.socketpair()
    handled: list[object] = []

    class ClosedStream:
        async def receive_some(self, max_bytes: int) -> bytes:
            with trio.CancelScope(shield=True):  # the cancel comes too late for this read
                await trio.sleep(0.05)
            raise trio.ClosedResourceError

    class Loop:
        trionet_handoff = None
        trionet_read_scope = None
        config = type("C", (), {"read_timeout": 30})()

        def __init__(self) -> None:
            self.stream = ClosedStream()
            self.protocol = self

        async def handle(self, event: object) -> None:
            handled.append(event)

    async def write(data: bytes) -> None:
        raise AssertionError("nothing is written")

    loop = Loop()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fixes._read_data, loop)
            await trio.sleep(0.01)  # the loop now waits in its read
            handoff = reads.post_handoff(loop)
            assert handoff is not None
            reader = LeanReader(handoff, a._sock, write, type("WS", (), {"closed": False})(),
                                LIMIT, 30)  # type: ignore[attr-defined]
            assert await reader.next() is None
    assert [type(e).__name__ for e in handled] == ["Closed"]
    a.close()
    b.close()


async def test_a_peer_gone_before_the_handoff_is_posted_leaves_no_handler_behind(
    server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client leaves while it is authenticated: hypercorn's read loop ends before the
    handler posts its handoff, which is then refused, and the handler reads the disconnect
    through ASGI (it used to wait for the loop to park forever, holding its user's slot)."""
    user = await server.create_user("early", password=None)
    svc = server.services
    original = svc.resolver.resolve

    async def slow_resolve(handshake: Any) -> Any:
        await trio.sleep(0.3)  # a store that takes a moment
        return await original(handshake)

    monkeypatch.setattr(svc.resolver, "resolve", slow_resolve)
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    with trio.fail_after(10):
        for _ in range(3):
            stream = await trio.open_tcp_stream(host, int(port))
            await stream.send_all(
                b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                + f"Cookie: {server.settings.cookie_name}={user.token}\r\n\r\n".encode())
            await trio.sleep(0.05)
            await stream.aclose()  # gone before the server answered
        await trio.sleep(0.5)
        while svc.open_handlers or svc.registry._slots:
            await trio.sleep(0.05)


@pytest.mark.parametrize("kind", ["ping", "binary"])
async def test_a_client_flooding_tiny_frames_does_not_stall_the_event_loop(
    server: TestServer, kind: str
) -> None:
    """Every read the reader did not have to wait for yields before its messages are handed
    out (at most 64 a call): without it, another task's 1 ms sleep woke up to 0.9-1.8 s late."""
    import subprocess
    import sys
    from pathlib import Path

    user = await server.create_user("flood", password=None)
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    lags: list[float] = []
    done = trio.Event()

    async def ticker() -> None:
        while not done.is_set():
            started = trio.current_time()
            await trio.sleep(0.001)
            lags.append(trio.current_time() - started - 0.001)

    client = str(Path(__file__).with_name("flood_client.py"))
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker)
            await trio.run_process(
                [sys.executable, client, host, port,
                 f"{server.settings.cookie_name}={user.token}", kind, "2"],
                stdout=subprocess.DEVNULL)
            done.set()
    assert len(lags) > 100
    assert max(lags) < 0.1, f"the event loop stalled for {max(lags):.3f} s"


async def test_no_pong_follows_the_servers_close(server: TestServer) -> None:
    from wsproto.frame_protocol import FrameProtocol, Opcode

    user = await server.create_user("c", password=None)
    with trio.fail_after(10):
        stream = await server.raw_websocket(user)
        client = Connection(ConnectionType.CLIENT)
        while not server.services.manager.is_online(user.id):
            await trio.sleep(0.01)
        server.services.registry.close_all(1001)
        proto = FrameProtocol(client=True, extensions=[])
        frames: list[Any] = []
        while not any(f.opcode is Opcode.CLOSE for f in frames):
            proto.receive_bytes(await stream.receive_some(65536))
            frames += list(proto.received_frames())
        await stream.send_all(client.send(Ping(payload=b"late")))  # before it answers
        after = b""
        with trio.move_on_after(1):
            while data := await stream.receive_some(65536):
                after += data
        assert after == b""  # wsproto sends nothing after its close, and neither does trionet
        await stream.aclose()


def _commits(server: TestServer) -> int:
    (metric,) = server.services.metrics.batch_size.collect()
    return int(next(s.value for s in metric.samples if s.name.endswith("_count")))


async def test_messages_read_together_are_committed_together_and_written_together(
    server: TestServer,
) -> None:
    """A reader hands every message of a read to the committer before it yields, so messages
    that arrived together are one commit and, for a coalescing recipient, one write. When
    each hand-over yielded, the committer took them two or three at a time (full-speed
    fan-out: 3.0 messages per frame against 31.8 now, for a window of 32)."""
    with trio.fail_after(10):
        b = await server.create_user("b")
        peer = await peer_of(server)
        async with server.connect(b, query="coalesce=1") as wb:
            before = _commits(server)
            await peer.stream.send_all(b"".join(
                peer.frame(TextMessage(data=json.dumps(
                    {"type": "private", "to": b.id, "content": f"m{i}", "client_id": str(i)})))
                for i in range(30)))
            writes, contents = 0, []
            while len(contents) < 30:
                message = await wb.get_message()
                writes += 1
                contents += [json.loads(line)["content"] for line in str(message).split("\n")]
            assert contents == [f"m{i}" for i in range(30)]
            assert _commits(server) - before == 1
            assert writes == 1
        await peer.stream.aclose()
