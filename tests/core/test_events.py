"""Backplane events are plain data with a JSON form."""

from __future__ import annotations

import json

import pytest

from trionet.core.events import (
    Delivery,
    DisconnectUser,
    MembershipChanged,
    PresenceChanged,
    SessionEnded,
    from_wire,
    to_wire,
)
from trionet.core.routing import ConnRef, ToGroup, ToUsers


@pytest.mark.parametrize("item", [
    Delivery(ToUsers(frozenset({1, 2})), '{"type":"x","é":"ü"}'.encode(), "x"),
    Delivery(ToGroup(3, frozenset({1}), ConnRef("n1", 5)), b"{}", "group"),
    SessionEnded("abc"),
    MembershipChanged(42),
    PresenceChanged(7, False, "n2"),
    DisconnectUser(7, 4001),
])
def test_every_event_survives_json(item: object) -> None:
    assert from_wire(json.loads(json.dumps(to_wire(item)))) == item  # type: ignore[arg-type]


@pytest.mark.parametrize("data", [{}, {"e": "nope"}, {"e": "presence", "user_id": 1},
                                  {"e": "deliver", "target": {"to": "all"}}])
def test_anything_else_is_refused(data: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="not a"):
        from_wire(data)
