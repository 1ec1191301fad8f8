"""Routing decisions as pure functions: no sockets, no trio."""

from __future__ import annotations

import json

import pytest

from trionet.core.routing import (
    ConnRef,
    ToAll,
    ToGroup,
    ToUsers,
    group_target,
    private_target,
    recipients,
    target_from_wire,
    target_to_wire,
)


class C:
    _next = 0

    def __init__(self, name: str) -> None:
        C._next += 1
        self.id = C._next
        self.name = name

    @property
    def ref(self) -> ConnRef:
        return ConnRef("n1", self.id)

    def __repr__(self) -> str:
        return self.name


a1, a2, b1, c1 = C("a1"), C("a2"), C("b1"), C("c1")
REGISTRY = {1: [a1, a2], 2: [b1], 3: [c1]}


def names(target: ToUsers | ToGroup | ToAll, node: str = "n1") -> set[str]:
    return {c.name for c in recipients(target, REGISTRY, node)}


def test_private_reaches_recipient_and_senders_other_tabs_only() -> None:
    assert names(private_target(1, 2, a1.ref)) == {"b1", "a2"}


def test_private_to_self_reaches_own_other_tabs() -> None:
    assert names(private_target(1, 1, a1.ref)) == {"a2"}


def test_private_to_offline_user_reaches_only_other_tabs() -> None:
    assert names(private_target(1, 99, a1.ref)) == {"a2"}


def test_group_reaches_every_member_connection_but_the_sending_one() -> None:
    assert names(group_target(7, frozenset({1, 2}), a1.ref)) == {"a2", "b1"}


def test_group_skips_non_members() -> None:
    assert "c1" not in names(group_target(7, frozenset({1, 2}), None))


def test_big_group_with_few_online_walks_registry() -> None:
    members = frozenset(range(1, 1000))
    assert names(group_target(7, members, b1.ref)) == {"a1", "a2", "c1"}


def test_broadcast_reaches_everyone_once() -> None:
    got = list(recipients(ToAll(), REGISTRY))
    assert sorted(c.name for c in got) == ["a1", "a2", "b1", "c1"]
    assert names(ToAll(c1.ref)) == {"a1", "a2", "b1"}


def test_each_connection_addressed_once_even_with_duplicate_ids() -> None:
    got = list(recipients(ToUsers([2, 2, 3]), REGISTRY))
    assert sorted(c.name for c in got) == ["b1", "c1"]


def test_the_excluded_connection_is_named_with_its_node() -> None:
    """Connection numbers are per node: the same number on another node is not this one."""
    assert names(private_target(1, 2, a1.ref), node="n2") == {"a1", "a2", "b1"}
    assert names(ToAll(ConnRef("n2", b1.id))) == {"a1", "a2", "b1", "c1"}


@pytest.mark.parametrize("target", [
    ToUsers((2, 1, 2)),
    ToUsers(frozenset({5}), ConnRef("n9", 12)),
    ToGroup(7, frozenset({1, 2, 3}), ConnRef("n1", 4)),
    ToGroup(8, ()),
    ToAll(),
    ToAll(ConnRef("7-ab12cd", 99)),
])
def test_targets_survive_json(target: ToUsers | ToGroup | ToAll) -> None:
    back = target_from_wire(json.loads(json.dumps(target_to_wire(target))))
    assert type(back) is type(target) and back.exclude == target.exclude
    assert names(back) == names(target)
    if isinstance(target, ToGroup):
        assert isinstance(back, ToGroup) and back.group_id == target.group_id


@pytest.mark.parametrize("data", [
    {}, {"to": "nobody"}, {"to": "users"}, {"to": "group", "users": [1]},
    {"to": "all", "except": ["n1"]}, {"to": "users", "users": ["x"]},
])
def test_anything_else_is_not_a_target(data: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="not a target"):
        target_from_wire(data)
