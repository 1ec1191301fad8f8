"""Routing decisions as pure functions: no sockets, no trio."""

from __future__ import annotations

from trionet.core.routing import ToAll, ToUsers, group_target, private_target, recipients


class C:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


a1, a2, b1, c1 = C("a1"), C("a2"), C("b1"), C("c1")
REGISTRY = {1: [a1, a2], 2: [b1], 3: [c1]}


def names(target: ToUsers | ToAll) -> set[str]:
    return {c.name for c in recipients(target, REGISTRY)}


def test_private_reaches_recipient_and_senders_other_tabs_only() -> None:
    assert names(private_target(1, 2, a1)) == {"b1", "a2"}


def test_private_to_self_reaches_own_other_tabs() -> None:
    assert names(private_target(1, 1, a1)) == {"a2"}


def test_private_to_offline_user_reaches_only_other_tabs() -> None:
    assert names(private_target(1, 99, a1)) == {"a2"}


def test_group_reaches_every_member_connection_but_the_sending_one() -> None:
    assert names(group_target(frozenset({1, 2}), a1)) == {"a2", "b1"}


def test_group_skips_non_members() -> None:
    assert "c1" not in names(group_target(frozenset({1, 2}), None))


def test_big_group_with_few_online_walks_registry() -> None:
    members = frozenset(range(1, 1000))
    assert names(group_target(members, b1)) == {"a1", "a2", "c1"}


def test_broadcast_reaches_everyone_once() -> None:
    got = list(recipients(ToAll(), REGISTRY))
    assert sorted(c.name for c in got) == ["a1", "a2", "b1", "c1"]


def test_each_connection_addressed_once_even_with_duplicate_ids() -> None:
    got = list(recipients(ToUsers([2, 2, 3]), REGISTRY))
    assert sorted(c.name for c in got) == ["b1", "c1"]
