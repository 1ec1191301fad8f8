"""The two ways frames leave: direct socket writes and plain ASGI sends."""

from __future__ import annotations

import json

import pytest
import trio
from wsproto.connection import Connection, ConnectionType
from wsproto.events import TextMessage

from trionet.api import ws as ws_endpoint
from trionet.testing import TestServer
from trionet.transport import direct_transport, text_frame


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
