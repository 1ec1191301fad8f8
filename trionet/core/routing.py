"""Who receives what: pure functions over the registry, no I/O."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["ToAll", "ToUsers", "Target", "private_target", "group_target", "recipients"]

C = TypeVar("C")


@dataclass(frozen=True, slots=True)
class ToUsers:
    """Every connection of these users, except ``exclude`` (a connection)."""

    user_ids: Collection[int]
    exclude: object | None = None


@dataclass(frozen=True, slots=True)
class ToAll:
    """Every connection, except ``exclude``."""

    exclude: object | None = None


Target = ToUsers | ToAll


def private_target(sender_id: int, to: int, origin: object | None) -> ToUsers:
    """A private message reaches the recipient's connections and the sender's other ones."""
    return ToUsers((to,) if to == sender_id else (to, sender_id), origin)


def group_target(members: Collection[int], origin: object | None) -> ToUsers:
    """A group message reaches every connection of every accepted member but the sending one."""
    return ToUsers(members, origin)


def recipients(target: Target, registry: Mapping[int, Iterable[C]]) -> Iterator[C]:
    """The connections ``target`` addresses, each once."""
    exclude = target.exclude
    if isinstance(target, ToAll):
        for conns in registry.values():
            for conn in conns:
                if conn is not exclude:
                    yield conn
        return
    users = target.user_ids
    if len(users) > len(registry):  # a big group with few online: walk the registry
        wanted = users if isinstance(users, (set, frozenset)) else set(users)
        for uid, conns in registry.items():
            if uid in wanted:
                for conn in conns:
                    if conn is not exclude:
                        yield conn
        return
    if not isinstance(users, (set, frozenset)) and len(users) > 1:
        users = dict.fromkeys(users)  # each user once
    for uid in users:
        found = registry.get(uid)
        if found:
            for conn in found:
                if conn is not exclude:
                    yield conn
