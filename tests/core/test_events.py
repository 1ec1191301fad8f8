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


def test_a_batch_to_one_group_builds_its_member_set_once_on_each_side() -> None:
    """A batch's messages to one group share its member set: sorted once when packed (the
    same list object in every target), built once when unpacked (the same frozenset), and
    each message keeps its own sender to leave out. Different sets stay apart."""
    members = frozenset(range(100, 200))
    others = frozenset({1, 2, 3})
    items = [Delivery(ToGroup(5, members, ConnRef("n1", i)), b"%d" % i, "group")
             for i in range(30)]
    items.append(Delivery(ToUsers(others), b"p", "private"))
    items.append(Delivery(ToUsers(frozenset({1, 2, 3})), b"q", "private"))  # equal, not same
    origin, seq, back = unpack(pack("n1", items, 3))
    assert (origin, seq, back) == ("n1", 3, items)
    targets = [item.target for item in back if isinstance(item, Delivery)]
    sets = [t.members if isinstance(t, ToGroup) else t.user_ids for t in targets]
    assert all(s is sets[0] for s in sets[:30])
    assert sets[30] is not sets[0] and sets[30] is sets[31]  # (equal sets: one object)
    assert [t.exclude.conn for t in targets[:30] if t.exclude] == list(range(30))


def test_a_user_list_with_anything_but_ids_is_refused_memo_or_not() -> None:
    for users in (["x"], [[1]], [None], "12"):
        data = {"e": "deliver", "target": {"to": "users", "users": users}, "frame": b"",
                "kind": "x"}
        for memo in (None, {}):
            with pytest.raises(ValueError, match="not a"):
                from_wire(data, memo)
