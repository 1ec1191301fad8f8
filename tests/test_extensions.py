"""Application-defined message types, and ``typing``, the one trionet ships."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import msgspec
import pytest
import trio
from api_helpers import stored_rows

from trionet.realtime.messagetypes import (
    BUILTIN_TYPES,
    Frame,
    GroupId,
    MessageType,
    MessageTypes,
    UserId,
    to_everyone,
    to_group,
    to_user,
)
from trionet.settings import Settings
from trionet.testing import TestServer, running_server

recv = TestServer.receive_json
send = TestServer.send_json


class Poke(Frame, tag="poke"):
    to: UserId
    strength: Annotated[int, msgspec.Meta(ge=1, le=10)] = 1


class Poll(Frame, tag="poll"):
    group_id: GroupId
    question: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    options: Annotated[list[str], msgspec.Meta(min_length=2, max_length=10)]


class Alert(Frame, tag="alert"):
    level: str


CUSTOM = [
    MessageType(Poke, route=to_user()),
    MessageType(Poll, route=to_group(), persisted=True),
    MessageType(Alert, route=to_everyone(admin_only=True)),
]


@pytest.fixture
async def ext_server() -> AsyncIterator[TestServer]:
    async with running_server(Settings(rate_limit=0), message_types=CUSTOM) as srv:
        yield srv


async def test_custom_ephemeral_type_is_validated_routed_and_not_stored(
    ext_server: TestServer,
) -> None:
    server = ext_server
    a, b = await server.create_user("a"), await server.create_user("b")
    with trio.fail_after(10):
        async with server.connect(a) as wa, server.connect(b) as wb:
            await send(wa, {"type": "poke", "to": b.id, "strength": 3, "client_id": "p"})
            got = await recv(wb)
            assert got["type"] == "poke" and got["from"] == a.id and got["to"] == b.id
            assert got["strength"] == 3 and "id" not in got
            ack = await recv(wa)
            assert (ack["type"], ack["id"], ack["persisted"]) == ("ack", None, False)
            for bad, code, needle in [
                ({"type": "poke", "to": b.id, "strength": 99}, "invalid_message", "strength"),
                ({"type": "poke", "to": b.id, "nope": 1}, "invalid_message", "nope"),
                ({"type": "poke", "to": "b"}, "invalid_message", "$.to"),
                ({"type": "poke", "to": 999_999}, "unknown_user", "999999"),
            ]:
                await send(wa, bad)
                err = await recv(wa)
                assert err["code"] == code and needle in err["message"], err
    count = (await stored_rows(server, "SELECT count(*) FROM messages"))[0]
    assert count == (0,)


async def test_custom_persisted_group_type_is_stored_in_history_and_replay(
    ext_server: TestServer,
) -> None:
    server = ext_server
    a, b = await server.create_user("a"), await server.create_user("b")
    gid = await server.create_group("g", a, [b])
    with trio.fail_after(10):
        async with server.connect(a) as wa, server.connect(b) as wb:
            await send(wa, {"type": "poll", "group_id": str(gid), "question": "lunch?",
                            "options": ["pizza", "sushi"], "client_id": "q"})
            live = await recv(wb)
            ack = await recv(wa)
            assert ack["persisted"] is True and ack["id"] == live["id"]
            assert live == {"type": "poll", "id": live["id"], "from": a.id, "group_id": gid,
                            "question": "lunch?", "options": ["pizza", "sushi"],
                            "timestamp": live["timestamp"]}
        async with server.http(b) as http:
            page = (await http.get("/api/messages/group", params={"group": gid})).json()
        assert page["messages"] == [live]
        async with server.connect(b, query="since=0") as wb:
            assert await recv(wb) == live
            assert (await recv(wb))["type"] == "synced"


async def test_custom_group_type_still_requires_accepted_membership(
    ext_server: TestServer,
) -> None:
    server = ext_server
    a, outsider = await server.create_user("a"), await server.create_user("o")
    gid = await server.create_group("g", a)
    with trio.fail_after(10):
        async with server.connect(outsider) as wo:
            await send(wo, {"type": "poll", "group_id": gid, "question": "x",
                            "options": ["1", "2"], "client_id": "c"})
            err = await recv(wo)
            assert (err["code"], err["client_id"]) == ("not_member", "c")


async def test_custom_everyone_type_is_admin_only(ext_server: TestServer) -> None:
    server = ext_server
    admin, user = await server.create_user("root", admin=True), await server.create_user("u")
    with trio.fail_after(10):
        async with server.connect(admin) as wr, server.connect(user) as wu:
            await send(wu, {"type": "alert", "level": "x"})
            assert (await recv(wu))["code"] == "forbidden"
            await send(wr, {"type": "alert", "level": "red"})
            got = await recv(wu)
            assert (got["type"], got["level"], got["from"]) == ("alert", "red", admin.id)


def test_registration_refuses_clashes_and_unroutable_persisted_types() -> None:
    with pytest.raises(ValueError, match="taken"):
        MessageTypes((*BUILTIN_TYPES, MessageType(Poke, route=to_user()),
                      MessageType(Poke, route=to_user())))

    class Pong(Frame, tag="pong"):
        pass

    with pytest.raises(ValueError, match="taken"):
        MessageTypes((*BUILTIN_TYPES, MessageType(Pong, route=to_everyone())))
    with pytest.raises(ValueError, match="needs a `to` or `group_id`"):
        MessageTypes((MessageType(Alert, route=to_everyone(), persisted=True),))


async def test_create_app_takes_message_types() -> None:
    from trionet import create_app
    from trionet.app import services_of

    app = create_app(Settings(), message_types=[MessageType(Poke, route=to_user())])
    assert "poke" in services_of(app).message_types
    assert "typing" in services_of(app).message_types


# -- typing ------------------------------------------------------------------------------------


async def test_typing_reaches_the_peer_and_is_never_stored(server: TestServer) -> None:
    a, b = await server.create_user("a"), await server.create_user("b")
    with trio.fail_after(10):
        async with server.connect(a) as wa, server.connect(b) as wb, \
                server.connect(a) as wa2:
            await send(wa, {"type": "typing", "to": b.id})
            got = await recv(wb)
            assert got == {"type": "typing", "from": a.id, "to": b.id,
                           "timestamp": got["timestamp"]}
            assert (await recv(wa2))["type"] == "typing"  # the sender's other tab
    count = (await stored_rows(server, "SELECT count(*) FROM messages"))[0]
    assert count == (0,)


async def test_typing_in_a_group_reaches_the_other_members_only(server: TestServer) -> None:
    a, b, c, o = [await server.create_user(n) for n in ("a", "b", "c", "o")]
    gid = await server.create_group("g", a, [b, c])
    with trio.fail_after(10):
        async with server.connect(a) as wa, server.connect(b) as wb, \
                server.connect(c) as wc, server.connect(o) as wo:
            await send(wa, {"type": "typing", "group_id": str(gid)})
            for ws in (wb, wc):
                got = await recv(ws)
                assert (got["type"], got["from"], got["group_id"]) == ("typing", a.id, gid)
            await send(wo, {"type": "typing", "group_id": gid, "client_id": "t"})
            assert (await recv(wo))["code"] == "not_member"
            with trio.move_on_after(0.3):
                raise AssertionError(await recv(wa))


async def test_typing_needs_exactly_one_target_and_is_rate_limited(server: TestServer) -> None:
    a, b = await server.create_user("a"), await server.create_user("b")
    with trio.fail_after(10):
        async with server.connect(a) as wa:
            await send(wa, {"type": "typing", "to": b.id, "group_id": 1})
            assert (await recv(wa))["code"] == "invalid_message"
            await send(wa, {"type": "typing"})
            assert (await recv(wa))["code"] == "invalid_message"
            for _ in range(10):
                await send(wa, {"type": "typing", "to": b.id, "client_id": "t"})
            codes = [(await recv(wa)).get("code") for _ in range(10)]
            # a burst of 4 (2 already spent on the refused frames above), then 2 per second
            assert "rate_limited" in codes and codes.count(None) >= 2


# -- the guide's example runs ------------------------------------------------------------------


def _guide_block(name: str) -> str:
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "extending.md").read_text()
    for block in text.split("```python\n")[1:]:
        code = block.split("```", 1)[0]
        if code.startswith(f"# example: {name}\n"):
            return code
    raise AssertionError(f"no example {name!r} in docs/extending.md")


async def test_the_extending_guide_example_runs() -> None:
    import sys
    import types

    module = types.ModuleType("trionet_guide_extending")
    sys.modules[module.__name__] = module  # msgspec resolves annotations through it
    try:
        exec(compile(_guide_block("extending-poll"), "docs/extending.md", "exec"),
             module.__dict__)
        await module.test_members_get_the_poll_and_it_stays_in_history()
    finally:
        del sys.modules[module.__name__]


async def test_group_ids_given_as_digits_past_2_53_are_refused(server: TestServer) -> None:
    a, b = await server.create_user("a"), await server.create_user("b")
    await server.create_group("g", a)
    with trio.fail_after(10):
        async with server.connect(a) as wa:
            for kind in ("group", "typing"):
                frame = {"type": kind, "group_id": "9999999999999999", "client_id": "x"}
                if kind == "group":
                    frame["content"] = "hi"
                await send(wa, frame)
                err = await recv(wa)
                assert err["code"] == "invalid_message" and "group_id" in err["message"]
        async with server.http(a) as http:
            r = await http.post("/api/groups/invite",
                                json={"group_id": "9999999999999999", "user_id": b.id})
            assert r.status_code == 400 and "group_id" in r.json()["error"]["message"]
    assert server.services.membership.peek(9999999999999999) is None
