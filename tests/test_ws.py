"""/ws end to end: handshake, the four message types, acks and errors, over real sockets."""

from __future__ import annotations

import json

import pytest
import trio
import trio_websocket
from api_helpers import stored_rows

from trionet.settings import Settings
from trionet.testing import TestServer, running_server

recv = TestServer.receive_json
send = TestServer.send_json


async def expect_silence(ws: trio_websocket.WebSocketConnection, seconds: float = 0.3) -> None:
    with trio.move_on_after(seconds):
        while True:
            frame = json.loads(await ws.get_message())
            if frame["type"] != "presence":
                raise AssertionError(f"unexpected frame {frame}")


async def handshake_status(server: TestServer, headers: dict[str, str]) -> int:
    with pytest.raises(trio_websocket.HandshakeError) as info:
        async with server.connect(None, headers=headers):
            pass
    rejected = info.value
    assert isinstance(rejected, trio_websocket.ConnectionRejected)
    return int(rejected.status_code)


async def test_private_message_reaches_recipient_and_senders_other_tab(server: TestServer) -> None:
    alice, bob = await server.create_user("alice"), await server.create_user("bob")
    with trio.fail_after(10):
        async with server.connect(bob) as wb, server.connect(alice) as wa1, \
                server.connect(alice) as wa2:
            await send(wa1, {"type": "private", "to": bob.id, "content": "hi", "client_id": "c1"})
            got = await recv(wb)
            assert got["type"] == "private" and got["from"] == alice.id and got["to"] == bob.id
            assert got["content"] == "hi" and isinstance(got["id"], int)
            assert got["timestamp"].endswith("Z")
            ack = await recv(wa1)
            assert ack == {"type": "ack", "client_id": "c1", "id": got["id"],
                           "timestamp": got["timestamp"], "persisted": True}
            assert (await recv(wa2))["id"] == got["id"]  # the second tab sees it too
            await expect_silence(wa1)
    rows = await stored_rows(server,
                             "SELECT id, sender_id, recipient_id, content FROM messages")
    assert rows == [(got["id"], alice.id, bob.id, "hi")]


async def test_two_tabs_of_one_user_both_receive(server: TestServer) -> None:
    alice, bob = await server.create_user("alice"), await server.create_user("bob")
    with trio.fail_after(10):
        async with server.connect(bob) as t1, server.connect(bob) as t2, \
                server.connect(alice) as wa:
            await send(wa, {"type": "private", "to": bob.id, "content": "both"})
            assert (await recv(t1))["content"] == "both"
            assert (await recv(t2))["content"] == "both"
            assert server.services.manager.is_online(bob.id)
    with trio.fail_after(5):
        while server.services.manager.is_online(bob.id):
            await trio.sleep(0.01)


async def test_group_message_reaches_members_but_not_sending_connection(
    server: TestServer,
) -> None:
    a, b, c, outsider = [await server.create_user(n) for n in ("a", "b", "c", "o")]
    gid = await server.create_group("devs", a, [b, c])
    with trio.fail_after(10):
        async with server.connect(a) as wa, server.connect(a) as wa2, server.connect(b) as wb, \
                server.connect(c) as wc, server.connect(outsider) as wo:
            await send(wa, {"type": "group", "group_id": str(gid), "content": "yo",
                            "client_id": "g1"})
            for ws in (wb, wc, wa2):
                frame = await recv(ws)
                assert frame["type"] == "group" and frame["group_id"] == gid
                assert frame["from"] == a.id and frame["content"] == "yo"
            ack = await recv(wa)
            assert ack["type"] == "ack" and ack["persisted"] is True
            await expect_silence(wa)
            await expect_silence(wo)


async def test_non_member_cannot_send_to_group(server: TestServer) -> None:
    a, b, outsider = [await server.create_user(n) for n in ("a", "b", "o")]
    gid = await server.create_group("devs", a, [b])
    with trio.fail_after(10):
        async with server.connect(b) as wb, server.connect(outsider) as wo:
            await send(wo, {"type": "group", "group_id": gid, "content": "x", "client_id": "n"})
            err = await recv(wo)
            assert err["type"] == "error" and err["code"] == "not_member"
            assert err["client_id"] == "n"
            await send(wo, {"type": "group", "group_id": 999999, "content": "x"})
            assert (await recv(wo))["code"] == "not_member"
            await expect_silence(wb)


async def test_private_to_unknown_user_is_refused(server: TestServer) -> None:
    a = await server.create_user("a")
    with trio.fail_after(10):
        async with server.connect(a) as wa:
            await send(wa, {"type": "private", "to": 424242, "content": "x", "client_id": "u"})
            assert (await recv(wa))["code"] == "unknown_user"


async def test_broadcast_by_admin_reaches_everyone(server: TestServer) -> None:
    admin = await server.create_user("root", admin=True)
    u1, u2 = await server.create_user("u1"), await server.create_user("u2")
    with trio.fail_after(10):
        async with server.connect(admin) as wr, server.connect(u1) as w1, \
                server.connect(u2) as w2:
            await send(wr, {"type": "broadcast", "content": "maintenance", "client_id": "b"})
            for ws in (w1, w2):
                frame = await recv(ws)
                assert frame["type"] == "broadcast" and frame["content"] == "maintenance"
                assert frame["from"] == admin.id
            got = {(await recv(wr))["type"], (await recv(wr))["type"]}
            assert got == {"broadcast", "ack"}


async def test_broadcast_by_non_admin_is_forbidden(server: TestServer) -> None:
    u1, u2 = await server.create_user("u1"), await server.create_user("u2")
    with trio.fail_after(10):
        async with server.connect(u1) as w1, server.connect(u2) as w2:
            await send(w1, {"type": "broadcast", "content": "spam", "client_id": "s"})
            err = await recv(w1)
            assert (err["code"], err["client_id"]) == ("forbidden", "s")
            await expect_silence(w2)


async def test_client_sent_notification_is_forbidden(server: TestServer) -> None:
    u1, u2 = await server.create_user("u1"), await server.create_user("u2")
    with trio.fail_after(10):
        async with server.connect(u1) as w1, server.connect(u2) as w2:
            await send(w1, {"type": "notification", "subtype": "x", "message": "fake"})
            assert (await recv(w1))["code"] == "forbidden"
            await expect_silence(w2)


async def test_server_notification_is_persisted_and_pushed(server: TestServer) -> None:
    u = await server.create_user("u")
    with trio.fail_after(10):
        async with server.connect(u) as w1, server.connect(u) as w2:
            frame = await server.services.manager.notify(
                u.id, "group_invite", "You were invited", group_id=789, type="hijack")
            for ws in (w1, w2):
                got = await recv(ws)
                assert got == frame
                assert got["type"] == "notification" and got["subtype"] == "group_invite"
                assert got["group_id"] == 789 and got["message"] == "You were invited"
    (row,) = await stored_rows(server,
                               "SELECT id, user_id, subtype, payload FROM notifications")
    assert row[:3] == (frame["id"], u.id, "group_invite")
    assert json.loads(row[3]) == {"group_id": 789}


async def test_handshake_without_session_is_401(server: TestServer) -> None:
    assert await handshake_status(server, {}) == 401
    assert await handshake_status(server, {"Cookie": "trionet_session=forged"}) == 401


async def test_foreign_origin_is_403_and_own_or_missing_origin_is_accepted(
    server: TestServer,
) -> None:
    u = await server.create_user("u")
    cookie = server.headers_for(u)
    assert await handshake_status(server, {**cookie, "Origin": "https://evil.example"}) == 403
    host = server.url.split("://", 1)[1]
    with trio.fail_after(10):
        async with server.connect(u, headers={"Origin": f"http://{host}"}) as ws:
            await send(ws, {"type": "ping"})
            assert (await recv(ws))["type"] == "pong"
        async with server.connect(u) as ws:  # no Origin: a backend or app, not a browser
            await send(ws, {"type": "ping"})
            assert (await recv(ws))["type"] == "pong"


async def test_configured_origins_are_allowed() -> None:
    settings = Settings(allowed_origins=("https://app.example",), rate_limit=0)
    async with running_server(settings) as server:
        u = await server.create_user("u")
        assert await handshake_status(
            server, {**server.headers_for(u), "Origin": f"{server.url}"}) == 403
        with trio.fail_after(10):
            async with server.connect(u, headers={"Origin": "https://app.example"}) as ws:
                await send(ws, {"type": "ping"})
                assert (await recv(ws))["type"] == "pong"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{not json", "invalid_json"),
        ('{"type":"warp","client_id":"w"}', "unknown_type"),
        ('{"type":"private","to":"bob","content":"x"}', "invalid_message"),
        ('{"type":"private","to":1}', "invalid_message"),
        ('{"type":"group","group_id":[1],"content":"x"}', "invalid_message"),
        ("[]", "invalid_message"),
    ],
)
async def test_bad_frames_get_an_error_and_nobody_is_disturbed(
    server: TestServer, raw: str, code: str
) -> None:
    a, b = await server.create_user("a"), await server.create_user("b")
    with trio.fail_after(10):
        async with server.connect(a) as wa, server.connect(b) as wb:
            await wa.send_message(raw)
            err = await recv(wa)
            assert err["type"] == "error" and err["code"] == code and err["message"]
            # the connection still works, and the neighbour still receives
            await send(wa, {"type": "private", "to": b.id, "content": "still here"})
            assert (await recv(wb))["content"] == "still here"


async def test_binary_frame_is_refused_with_an_error(server: TestServer) -> None:
    a, b = await server.create_user("a"), await server.create_user("b")
    with trio.fail_after(10):
        async with server.connect(a) as wa, server.connect(b) as wb:
            await wa.send_message(b"\x00\x01binary")
            assert (await recv(wa))["code"] == "binary_frame"
            await wa.send_message(b"")
            assert (await recv(wa))["code"] == "binary_frame"
            await send(wa, {"type": "private", "to": b.id, "content": "ok"})
            assert (await recv(wb))["content"] == "ok"


async def test_content_over_the_limit_is_too_large() -> None:
    async with running_server(Settings(max_content_chars=10, rate_limit=0)) as server:
        a, b = await server.create_user("a"), await server.create_user("b")
        with trio.fail_after(10):
            async with server.connect(a) as wa:
                await send(wa, {"type": "private", "to": b.id, "content": "x" * 11,
                                "client_id": "big"})
                err = await recv(wa)
                assert (err["code"], err["client_id"]) == ("too_large", "big")


async def test_oversized_frame_closes_with_1009_and_others_carry_on() -> None:
    async with running_server(Settings(max_message_bytes=1024, rate_limit=0)) as server:
        a, b = await server.create_user("a"), await server.create_user("b")
        with trio.fail_after(10):
            async with server.connect(b) as wb:
                async with server.connect(a) as wa:
                    await wa.send_message("x" * 5000)
                    with pytest.raises(trio_websocket.ConnectionClosed) as info:
                        await wa.get_message()
                    assert info.value.reason.code == 1009
                async with server.connect(a) as wa:
                    await send(wa, {"type": "private", "to": b.id, "content": "after"})
                    assert (await recv(wb))["content"] == "after"


async def test_rate_limit_answers_rate_limited() -> None:
    async with running_server(Settings(rate_limit=5)) as server:
        a = await server.create_user("a")
        with trio.fail_after(10):
            async with server.connect(a) as wa:
                for _ in range(30):
                    await send(wa, {"type": "ping"})
                # the burst (2x the rate) is answered, and so are a burst's worth of
                # refusals; past that the refusals of this second go unanswered
                frames = [await recv(wa) for _ in range(20)]
                assert [f["type"] for f in frames[:10]] == ["pong"] * 10
                assert [f.get("code") for f in frames[10:]] == ["rate_limited"] * 10
                await send(wa, {"type": "ping"})  # still refused, this second: silence
                with trio.move_on_after(0.3):
                    extra = await recv(wa)
                    raise AssertionError(f"a flood's refusals were all answered: {extra}")


async def test_logout_closes_sockets_of_that_session_with_4001(server: TestServer) -> None:
    a = await server.create_user("a")
    with trio.fail_after(10):
        async with server.connect(a) as wa:
            async with server.http(a) as http:
                assert (await http.post("/api/auth/logout")).status_code == 200
            with pytest.raises(trio_websocket.ConnectionClosed) as info:
                await wa.get_message()
            assert info.value.reason.code == 4001


async def test_expired_credentials_close_sockets_with_4001(server: TestServer) -> None:
    a = await server.create_user("a")
    with trio.fail_after(10):
        async with server.connect(a) as wa:
            assert server.services.registry.end_expired(now=2**40) == 1
            with pytest.raises(trio_websocket.ConnectionClosed) as info:
                await wa.get_message()
            assert info.value.reason.code == 4001


async def test_coalesced_connection_gets_newline_separated_frames(server: TestServer) -> None:
    a, b = await server.create_user("a"), await server.create_user("b")
    with trio.fail_after(10):
        async with server.connect(b, query="coalesce=1") as wb, server.connect(a) as wa:
            for i in range(50):
                await send(wa, {"type": "private", "to": b.id, "content": f"m{i}"})
            contents: list[str] = []
            while len(contents) < 50:
                message = await wb.get_message()
                assert isinstance(message, str)
                frames = [json.loads(line) for line in message.split("\n")]
                contents += [f["content"] for f in frames if f["type"] == "private"]
            assert contents == [f"m{i}" for i in range(50)]
