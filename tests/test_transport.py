"""The two ways frames leave: direct socket writes and plain ASGI sends."""

from __future__ import annotations

import json

import pytest
import trio
from wsproto.connection import Connection, ConnectionType
from wsproto.events import Ping, TextMessage

from trionet.api import ws as ws_endpoint
from trionet.realtime import transport
from trionet.realtime.transport import direct_transport, text_frame
from trionet.settings import Settings
from trionet.testing import TestServer, running_server


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 200_000])
def test_text_frame_is_what_wsproto_sends(size: int) -> None:
    payload = ("é" * (size // 2) + "x" * (size % 2)).encode()
    server = Connection(ConnectionType.SERVER)
    assert text_frame(payload) == server.send(TextMessage(data=payload.decode()))


def test_a_client_parses_several_direct_frames_from_one_write() -> None:
    client = Connection(ConnectionType.CLIENT)
    client.receive_data(b"".join(text_frame(f'{{"n":{i}}}'.encode()) for i in range(3)))
    assert [json.loads(e.data)["n"] for e in client.events()] == [0, 1, 2]


async def test_unknown_asgi_servers_get_no_direct_transport() -> None:
    async def receive() -> dict[str, object]:
        return {}

    async def send(message: object) -> None:
        pass

    assert direct_transport(receive, send) is None  # type: ignore[arg-type]


@pytest.mark.parametrize("direct", [True, False])
async def test_delivery_works_with_and_without_direct_writes(
    server: TestServer, monkeypatch: pytest.MonkeyPatch, direct: bool
) -> None:
    monkeypatch.setattr(ws_endpoint, "DIRECT_WRITES", direct)
    a, b = await server.create_user("a"), await server.create_user("b")
    with trio.fail_after(10):
        async with server.connect(b) as wb, server.connect(b, query="coalesce=1") as wc, \
                server.connect(a) as wa:
            for i in range(30):
                await TestServer.send_json(wa, {"type": "private", "to": b.id,
                                                "content": "é" * (i * 300 + 1),
                                                "client_id": str(i)})
            for i in range(30):
                assert (await TestServer.receive_json(wb))["content"] == "é" * (i * 300 + 1)
            got: list[str] = []
            while len(got) < 30:
                message = await wc.get_message()
                got += [json.loads(line)["content"] for line in message.split("\n")
                        if '"private"' in line]
            assert got == ["é" * (i * 300 + 1) for i in range(30)]


async def _open_and_direct(server: TestServer) -> tuple[float, float]:
    """(trionet_connections, trionet_direct_transport_connections) from ``GET /metrics``."""
    async with server.http() as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    values = dict(line.split(" ", 1) for line in response.text.splitlines()
                  if line and not line.startswith("#"))
    return (float(values["trionet_connections"]),
            float(values["trionet_direct_transport_connections"]))


async def _until_connections(server: TestServer, count: int) -> tuple[float, float]:
    """The two gauges once ``count`` connections are registered (the direct one is counted
    before a connection is registered, and released after it is gone)."""
    while True:
        gauges = await _open_and_direct(server)
        if gauges[0] == count and (count or gauges[1] == 0):
            return gauges
        await trio.sleep(0.02)


async def test_a_normal_server_writes_each_connections_frames_directly(
    server: TestServer,
) -> None:
    assert ws_endpoint.DIRECT_WRITES  # the default
    a, b = await server.create_user("a"), await server.create_user("b")
    with trio.fail_after(10):
        assert await _open_and_direct(server) == (0, 0)
        async with server.connect(a) as wa:
            assert await _until_connections(server, 1) == (1, 1)
            await TestServer.send_json(wa, {"type": "private", "to": b.id, "content": "hi",
                                            "client_id": "c1"})
            ack = await TestServer.receive_json(wa)
            assert (ack["type"], ack["client_id"]) == ("ack", "c1")
        assert await _until_connections(server, 0) == (0, 0)


async def test_without_direct_writes_no_connection_is_counted_and_messages_arrive(
    server: TestServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ws_endpoint, "DIRECT_WRITES", False)
    a, b = await server.create_user("a"), await server.create_user("b")
    with trio.fail_after(10):
        async with server.connect(b) as wb, server.connect(a) as wa:
            assert await _until_connections(server, 2) == (2, 0)
            await TestServer.send_json(wa, {"type": "private", "to": b.id, "content": "hi",
                                            "client_id": "c1"})
            assert (await TestServer.receive_json(wa))["type"] == "ack"
            frame = await TestServer.receive_json(wb)
            assert (frame["type"], frame["content"]) == ("private", "hi")
        assert await _until_connections(server, 0) == (0, 0)


async def test_frames_to_an_idle_connection_are_written_through() -> None:
    async with running_server() as server:
        a, b = await server.create_user("a"), await server.create_user("b")
        metric = server.services.metrics.written_through
        with trio.fail_after(10):
            async with server.connect(b) as wb, server.connect(a) as wa:
                await _until_connections(server, 2)
                before = metric._value.get()
                for i in range(5):
                    await TestServer.send_json(wa, {"type": "private", "to": b.id,
                                                    "content": str(i), "client_id": str(i)})
                    assert (await TestServer.receive_json(wb))["content"] == str(i)
                    assert (await TestServer.receive_json(wa))["type"] == "ack"
                # each frame to b, and each ack to a, found its writer idle
                assert metric._value.get() - before >= 10


async def test_a_reader_that_stalls_gets_every_frame_whole_and_in_order_between_pings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Frames big enough to fill the kernel's buffers part-way through a write-through, with
    hypercorn pinging every 20 ms: the rest of each is written before anything else."""
    rests = 0
    finish = transport.UnfinishedWrite.finish

    async def counted(self: transport.UnfinishedWrite) -> None:
        nonlocal rests
        rests += 1
        await finish(self)

    monkeypatch.setattr(transport.UnfinishedWrite, "finish", counted)
    settings = Settings(rate_limit=0, ping_interval=0.02, send_queue=256)
    async with running_server(settings) as server:
        a, b = await server.create_user("a"), await server.create_user("b")
        body = "é" * 10_000
        total = 40
        with trio.fail_after(20):
            stream = await server.raw_websocket(b, receive_buffer=4096)
            async with server.connect(a) as wa:
                await _until_connections(server, 2)
                client = Connection(ConnectionType.CLIENT)
                got: list[int] = []
                pings = 0
                part = ""
                for i in range(total):
                    await TestServer.send_json(wa, {"type": "private", "to": b.id,
                                                    "content": f"{i}:{body}",
                                                    "client_id": str(i)})
                    assert (await TestServer.receive_json(wa))["type"] == "ack"
                    if i % 8 == 7:  # read a little now and then: the writes stall and resume
                        await trio.sleep(0.05)
                        client.receive_data(await stream.receive_some(65536))
                while len(got) < total:
                    for event in client.events():
                        if isinstance(event, Ping):
                            pings += 1
                        elif isinstance(event, TextMessage):
                            part += event.data
                            if event.message_finished:
                                frame = json.loads(part)
                                part = ""
                                if frame["type"] == "private":
                                    n, _, rest = frame["content"].partition(":")
                                    assert rest == body
                                    got.append(int(n))
                    if len(got) < total:
                        client.receive_data(await stream.receive_some(65536))
                await stream.aclose()
        assert got == list(range(total))
        assert rests >= 1  # a write-through did stop part-way, and its writer finished it
        assert pings >= 1
