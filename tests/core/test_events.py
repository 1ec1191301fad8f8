"""Backplane events are plain data with a wire form (MessagePack between nodes)."""

from __future__ import annotations

import msgspec
import pytest

from trionet.core.events import (
    Delivery,
    DisconnectUser,
    MembershipChanged,
    PresenceChanged,
    Resync,
    SessionEnded,
    from_wire,
    pack,
    to_wire,
    unpack,
)
from trionet.core.routing import ConnRef, ToGroup, ToUsers


@pytest.mark.parametrize("item", [
    Delivery(ToUsers(frozenset({1, 2})), '{"type":"x","é":"ü"}'.encode(), "x"),
    Delivery(ToGroup(3, frozenset({1}), ConnRef("n1", 5)), b"{}", "group"),
    SessionEnded("abc"),
    MembershipChanged(42),
    PresenceChanged(7, False, "n2"),
    DisconnectUser(7, 4001),
    Resync("n3"),
    Delivery(ToUsers(frozenset({9})), b"\x00\xff binary", "custom"),
])
def test_every_event_survives_the_wire(item: object) -> None:
    wire = msgspec.msgpack.decode(msgspec.msgpack.encode(to_wire(item)))  # type: ignore[arg-type]
    assert from_wire(wire) == item


def test_a_packed_message_keeps_its_origin_and_order() -> None:
    items = [Delivery(ToUsers(frozenset({1})), b"a", "private"), MembershipChanged(2),
             Delivery(ToGroup(3, frozenset({1, 2}), ConnRef("n1", 4)), b"b", "group")]
    assert unpack(pack("n1", items, 7)) == ("n1", 7, items)


@pytest.mark.parametrize("data", [b"", b"\x93junk", msgspec.msgpack.encode({"n": "x"}),
                                  msgspec.msgpack.encode({"n": "x", "i": [{"e": "nope"}]})])
def test_a_broken_message_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError, match="not a"):
        unpack(data)


@pytest.mark.parametrize("data", [{}, {"e": "nope"}, {"e": "presence", "user_id": 1},
                                  {"e": "deliver", "target": {"to": "all"}},
                                  {"e": "deliver", "target": {"to": "all"}, "frame": "text",
                                   "kind": "x"}])
def test_anything_else_is_refused(data: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="not a"):
        from_wire(data)
