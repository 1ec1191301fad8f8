"""The fan-out: deliveries and control events applied to this node's registry."""

from __future__ import annotations

from rt_helpers import Groups, connect, drain

from trionet.core.errors import CloseCode
from trionet.core.events import (
    Delivery,
    DisconnectUser,
    MembershipChanged,
    PresenceChanged,
    SessionEnded,
)
from trionet.core.routing import ConnRef, ToAll, ToGroup, ToUsers
from trionet.metrics import Metrics
from trionet.realtime.fanout import Fanout
from trionet.realtime.membership import MembershipCache
from trionet.realtime.registry import Registry


def make(groups: dict[int, frozenset[int]] | None = None, node: str = "n1"
         ) -> tuple[Registry, Fanout, list[tuple[int, bool]]]:
    metrics = Metrics()
    registry = Registry(metrics=metrics, node=node)
    seen: list[tuple[int, bool]] = []
    fanout = Fanout(registry, MembershipCache(Groups(groups or {})), metrics,
                    on_presence=lambda uid, online: seen.append((uid, online)))
    return registry, fanout, seen


def test_one_delivery_reaches_every_tab_with_the_same_bytes() -> None:
    registry, fanout, _ = make()
    _, r1 = connect(registry, 1)
    _, r2 = connect(registry, 1)
    _, r3 = connect(registry, 2)
    assert fanout.deliver([Delivery(ToUsers((1,)), b'{"n":1}', "x")]) == 2
    assert drain(r1) == drain(r2) == [b'{"n":1}'] and drain(r3) == []


def test_a_batch_keeps_its_order_per_connection() -> None:
    registry, fanout, _ = make()
    _, r1 = connect(registry, 1, queue=10)
    batch = [Delivery(ToUsers((1,)), f"m{i}".encode(), "x") for i in range(5)]
    assert fanout.deliver(batch) == 5
    assert drain(r1) == [f"m{i}".encode() for i in range(5)]


def test_the_excluded_connection_is_left_out_only_on_its_own_node() -> None:
    registry, fanout, _ = make(node="n1")
    a1, ra1 = connect(registry, 1)
    _, ra2 = connect(registry, 1)
    fanout.deliver([Delivery(ToUsers((1,), a1.ref), b"x", "x")])
    assert drain(ra1) == [] and drain(ra2) == [b"x"]
    # the same connection number on another node is another connection
    fanout.deliver([Delivery(ToUsers((1,), ConnRef("n2", a1.id)), b"y", "x")])
    assert drain(ra1) == [b"y"] and drain(ra2) == [b"y"]


def test_a_batch_to_one_group_leaves_out_each_messages_own_sender() -> None:
    """Messages of several members to one group in one batch (their member set looked up
    once): each reaches every member's connection but the one that sent it, in order; a
    sender on another node leaves out nobody here; another group's message stays apart."""
    members = frozenset({1, 2, 3})
    registry, fanout, _ = make(node="n1")
    a, ra = connect(registry, 1, queue=10)
    b, rb = connect(registry, 2, queue=10)
    _, rb2 = connect(registry, 2, queue=10)
    _, r4 = connect(registry, 4, queue=10)
    batch = [Delivery(ToGroup(5, members, a.ref), b"from a", "group"),
             Delivery(ToGroup(5, members, b.ref), b"from b", "group"),
             Delivery(ToGroup(5, members, ConnRef("n2", a.id)), b"from afar", "group"),
             Delivery(ToGroup(6, frozenset({4}), None), b"other", "group"),
             Delivery(ToGroup(5, members, None), b"server", "group")]
    assert fanout.deliver(batch) == 2 + 2 + 3 + 1 + 3
    assert drain(ra) == [b"from b", b"from afar", b"server"]
    assert drain(rb) == [b"from a", b"from afar", b"server"]
    assert drain(rb2) == [b"from a", b"from b", b"from afar", b"server"]
    assert drain(r4) == [b"other"]


def test_a_full_outbox_closes_only_the_slow_consumer_after_its_queued_frames() -> None:
    registry, fanout, _ = make()
    slow, r_slow = connect(registry, 1, queue=2)
    _, r_ok = connect(registry, 2, queue=100)
    fanout.deliver([Delivery(ToAll(), f"f{i}".encode(), "broadcast") for i in range(5)])
    assert drain(r_ok) == [f"f{i}".encode() for i in range(5)]
    assert drain(r_slow) == [b"f0", b"f1"]  # what was queued, then end of channel
    assert slow.close_code == CloseCode.SLOW_CONSUMER and not registry.is_online(1)
    assert fanout.metrics.slow_consumers._value.get() == 1


async def test_a_group_delivery_follows_the_freshest_member_list() -> None:
    """A member removed while the message was committed does not get it."""
    groups = Groups({7: frozenset({1, 2})})
    registry, fanout, _ = make()
    fanout.membership = MembershipCache(groups)
    _, r1 = connect(registry, 1)
    _, r2 = connect(registry, 2)
    accepted = await fanout.membership.members(7)
    assert accepted == frozenset({1, 2})
    groups.groups[7] = frozenset({1})
    fanout.control(MembershipChanged(7))
    await fanout.membership.members(7)  # fetched again: {1}
    fanout.deliver([Delivery(ToGroup(7, accepted), b"g", "group")])
    assert drain(r1) == [b"g"] and drain(r2) == []


async def test_membership_changed_makes_the_next_lookup_fetch_again() -> None:
    groups = Groups({7: frozenset({1})})
    _, fanout, _ = make()
    fanout.membership = MembershipCache(groups)
    assert await fanout.membership.members(7) == frozenset({1})
    groups.groups[7] = frozenset({1, 2})
    assert await fanout.membership.members(7) == frozenset({1})  # cached
    assert fanout.control(MembershipChanged(7)) == 0
    assert await fanout.membership.members(7) == frozenset({1, 2})


def test_session_ended_and_disconnect_close_connections() -> None:
    registry, fanout, _ = make()
    a, _ = connect(registry, 1, session="s1")
    b, _ = connect(registry, 1, session="s2")
    c, _ = connect(registry, 2)
    assert fanout.control(SessionEnded("s1")) == 1
    assert a.close_code == CloseCode.SESSION_ENDED and b.close_code is None
    assert fanout.control(DisconnectUser(2, 4003)) == 1
    assert c.close_code == 4003 and b.close_code is None


def test_presence_of_this_nodes_connections_is_passed_on_and_others_are_not() -> None:
    _, fanout, seen = make(node="n1")
    fanout.control(PresenceChanged(5, True, "n1"))
    fanout.control(PresenceChanged(6, True, "n2"))
    assert seen == [(5, True)]
