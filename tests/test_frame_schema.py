"""``GET /schema/frames.json``: the JSON Schema of every WebSocket frame, checked against the
frames a live server really sends and takes, an application's own type included."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
import trio
from api_helpers import quick_user

from trionet.realtime.messagetypes import Frame, MessageType, UserId, to_user
from trionet.settings import Settings
from trionet.testing import running_server


class PokeIn(Frame, tag="poke"):
    to: UserId
    strength: int = 1


POKE = MessageType(PokeIn, route=to_user(), persisted=True)


def validator(document: dict[str, Any], side: str) -> jsonschema.Draft202012Validator:
    schema = {"$defs": document["$defs"], **document["properties"][side]}
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


async def test_every_frame_of_a_live_session_matches_the_schema() -> None:
    settings = Settings(rate_limit=0, api_key="k" * 32)
    async with running_server(settings, message_types=[POKE]) as server:
        alice, bob = await quick_user(server, "alice"), await quick_user(server, "bob")
        root = await quick_user(server, "root", admin=True)
        gid = await server.create_group("g", alice, [bob])
        async with server.http() as http:
            r = await http.get("/schema/frames.json")  # no credentials needed
            assert r.status_code == 200
            document = r.json()
        client, server_side = validator(document, "client"), validator(document, "server")
        sent = [
            {"type": "private", "to": bob.id, "content": "hi", "client_id": "1"},
            {"type": "group", "group_id": str(gid), "content": "all", "client_id": "2"},
            {"type": "typing", "to": bob.id},
            {"type": "poke", "to": bob.id, "strength": 3, "client_id": "3"},
            {"type": "ping", "client_id": "4"},
            {"type": "private", "to": 987654, "content": "x", "client_id": "5"},
        ]
        seen: list[dict[str, Any]] = []
        with trio.fail_after(20):
            async with server.connect(alice) as wa, server.connect(bob) as wb, \
                    server.connect(root) as wr:
                for frame in sent:
                    client.validate(frame)
                    await server.send_json(wa, frame)
                mid = None
                while len([f for f in seen if f["type"] in ("ack", "error", "pong")]) < 5:
                    frame = await server.receive_json(wa, ignore=())
                    seen.append(frame)
                    if frame.get("client_id") == "1":
                        mid = frame["id"]
                for frame in ({"type": "read", "to": bob.id, "up_to": mid, "client_id": "6"},
                              {"type": "edit", "id": mid, "content": "hi!", "client_id": "7"},
                              {"type": "delete", "id": mid, "client_id": "8"}):
                    client.validate(frame)
                    await server.send_json(wa, frame)
                    seen.append(await server.receive_json(wa, ignore=()))
                await server.send_json(wr, {"type": "broadcast", "content": "maintenance"})
                await server.services.manager.notify(bob.id, "like", "alice liked it", post=7)
                kinds = {"private", "group", "typing", "poke", "read", "edited", "deleted",
                         "broadcast", "notification"}
                while not kinds <= {f["type"] for f in seen}:
                    seen.append(await server.receive_json(wb, ignore=()))
            async with server.connect(bob, query="since=1") as resumed:
                while (frame := await server.receive_json(resumed, ignore=()))["type"] != "synced":
                    seen.append(frame)
                seen.append(frame)
        types = {f["type"] for f in seen}
        assert types >= {"ack", "error", "pong", "private", "group", "typing", "poke", "read",
                         "edited", "deleted", "broadcast", "notification", "presence", "synced"}
        for frame in seen:
            server_side.validate(frame)
        # the schema is not a rubber stamp
        for bad in ({"type": "private", "id": 1, "from": 1, "to": 2},  # no timestamp
                    {"type": "ack", "client_id": "1", "id": 1, "timestamp": "t",
                     "persisted": True, "extra": 1},
                    {"type": "nonsense"}):
            with pytest.raises(jsonschema.ValidationError):
                server_side.validate(bad)
        for bad in ({"type": "private", "to": 0, "content": "x"},
                    {"type": "poke", "strength": 1},
                    {"type": "edit", "id": 5}):
            with pytest.raises(jsonschema.ValidationError):
                client.validate(bad)
