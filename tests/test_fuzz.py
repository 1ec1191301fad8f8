"""Bad input, generated: random frames at /ws and random requests at every HTTP endpoint."""

from __future__ import annotations

import json
import re
from typing import Any

import trio
import trio_websocket
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trionet.settings import Settings
from trionet.testing import TestServer, running_server

pytestmark = []

FIELDS = ["type", "to", "group_id", "content", "client_id", "subtype", "message", "id"]
TYPES = ["private", "group", "broadcast", "notification", "ping", "ack", "synced", "", "x"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)

# frames shaped like the protocol, with every field of any type
protocol_like = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES) | json_values},
    optional={f: json_values | st.integers(min_value=-2**70, max_value=2**70)
              for f in FIELDS[1:]},
).map(lambda d: json.dumps(d))

text_frames = st.one_of(
    protocol_like,
    st.text(max_size=200),
    json_values.map(json.dumps),
    st.integers(1, 3000).map(lambda n: "[" * n + "]" * n),  # deep nesting
    st.integers(1, 400).map(lambda n: '{"type":"private","to":' + "9" * n + ',"content":"x"}'),
    st.sampled_from(["", " ", "null", "{}", '{"type":null}', "\ufeff{}", '{"type":"ping"}']),
)
frames = st.one_of(text_frames, st.binary(max_size=100))


async def probe(ws: trio_websocket.WebSocketConnection, n: int) -> list[dict[str, Any]]:
    """Send a ping; return every frame received before its pong."""
    await ws.send_message(json.dumps({"type": "ping", "client_id": f"probe-{n}"}))
    seen = []
    while True:
        frame = await TestServer.receive_json(ws)
        if frame == {"type": "pong", "client_id": f"probe-{n}"}:
            return seen
        seen.append(frame)


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(batch=st.lists(frames, min_size=10, max_size=40))
async def test_random_frames_get_errors_and_disturb_nobody(batch: list[str | bytes]) -> None:
    async with running_server(Settings(rate_limit=0, max_message_bytes=4096)) as server:
        a, b, c = [await server.create_user(n) for n in ("a", "b", "c")]
        gid = await server.create_group("g", a, [b, c])
        with trio.fail_after(30):
            async with server.connect(a) as wa, server.connect(b) as wb, \
                    server.connect(c) as wc:
                for n, raw in enumerate(batch):
                    try:
                        await wa.send_message(raw)
                        replies = await probe(wa, n)
                    except trio_websocket.ConnectionClosed as closed:
                        # the only documented close for a single frame is "too big"
                        assert closed.reason.code == 1009
                        assert len(raw) > 1024
                        break
                    for reply in replies:
                        assert reply["type"] in ("error", "ack", "pong", "private", "group")
                        if reply["type"] == "error":
                            assert reply["code"] != "internal", reply
                            assert isinstance(reply["message"], str)
                # a neighbour connected throughout still receives correctly
                await TestServer.send_json(wc, {"type": "group", "group_id": gid,
                                                "content": "still fine", "client_id": "z"})
                while (frame := await TestServer.receive_json(wb))["type"] != "group" or \
                        frame["content"] != "still fine":
                    pass
        assert server.services.metrics.errors.labels("internal")._value.get() == 0
    assert server.services.open_handlers == 0  # no connection task outlived its socket


async def test_invalid_utf8_text_frame_drops_only_that_connection(server: TestServer) -> None:
    a, b = await server.create_user("a"), await server.create_user("b")
    with trio.fail_after(10):
        async with server.connect(b) as wb:
            stream = await server.raw_websocket(a)
            payload, mask = b"\xff\xfe\xfd", b"\x01\x02\x03\x04"
            masked = bytes(p ^ mask[i % 4] for i, p in enumerate(payload))
            await stream.send_all(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
            # the WebSocket layer fails the connection (RFC 6455, 8.1): the socket is closed
            while await stream.receive_some(4096):
                pass
            await stream.aclose()
            while server.services.manager.is_online(a.id):
                await trio.sleep(0.01)
            async with server.connect(a) as wa:  # the server and the neighbour are fine
                await TestServer.send_json(wa, {"type": "private", "to": b.id, "content": "ok"})
                assert (await TestServer.receive_json(wb))["content"] == "ok"


# -- HTTP ------------------------------------------------------------------------------------

queries = st.dictionaries(
    st.sampled_from(["user", "group", "limit", "offset", "before_id", "ids", "username", "x"]),
    st.one_of(st.integers(-2**64, 2**64).map(str), st.text(max_size=12),
              st.lists(st.integers(-5, 2**60), max_size=600).map(
                  lambda xs: ",".join(map(str, xs)))),
    max_size=4,
)
bodies = st.one_of(
    st.none(),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=64),
    st.fixed_dictionaries({}, optional={
        k: json_values for k in ("username", "password", "name", "group_id", "user_id",
                                 "group_name", "ids", "user_ids", "subtype", "message",
                                 "data", "content", "members", "status")
    }).map(lambda d: json.dumps(d).encode()),
)
path_ids = st.one_of(st.integers(-3, 2**64).map(str), st.text(
    alphabet="abcxyz019-_.~!$&'()*+,;=:@", min_size=1, max_size=8))


@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
async def test_random_requests_never_get_a_5xx(data: st.DataObject) -> None:
    key = "k" * 32
    async with running_server(Settings(api_key=key, rate_limit=0)) as server:
        user = await server.create_user("fuzzer")
        rules = [r for r in server.app.url_map.iter_rules() if not r.websocket]
        with trio.fail_after(60):
            async with server.http(user) as http:
                for _ in range(60):
                    rule = data.draw(st.sampled_from(rules))
                    method = data.draw(st.sampled_from(sorted(
                        (rule.methods or {"GET"}) - {"HEAD", "OPTIONS"})))
                    path = re.sub(r"<[^>]+>", lambda _m: data.draw(path_ids), rule.rule)
                    body = data.draw(bodies)
                    headers = {"Content-Type": data.draw(st.sampled_from(
                        ["application/json", "text/plain", "application/x-www-form-urlencoded"]))}
                    if path.startswith("/api/server") or path == "/metrics":
                        headers["Authorization"] = data.draw(
                            st.sampled_from([f"Bearer {key}", "Bearer wrong", ""]))
                    response = await http.request(
                        method, path, params=data.draw(queries), content=body, headers=headers)
                    assert response.status_code < 500, (method, path, response.text)
                    if response.status_code >= 400:
                        error = response.json()["error"]
                        assert set(error) == {"code", "message"}, response.text
