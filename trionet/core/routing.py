"""Who receives what: targets as plain data, and pure functions over a registry, no I/O.

A target names users, a group (with the members it had when the frame was accepted) or
everyone, and optionally one connection to leave out, by ids (:class:`ConnRef`: the node and
the connection's number on it), never by object: a target can be serialised
(:func:`target_to_wire`) and resolved on any node against that node's own connections.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

__all__ = ["ConnRef", "ToAll", "ToGroup", "ToUsers", "Target", "private_target",
           "group_target", "recipients", "skipped_conn", "target_to_wire", "target_from_wire"]


@dataclass(frozen=True, slots=True)
class ConnRef:
    """One connection, by ids: the node that holds it and its number there."""

    node: str
    conn: int


@dataclass(frozen=True, slots=True)
class ToUsers:
    """Every connection of these users, except ``exclude``."""

    user_ids: Collection[int]
    exclude: ConnRef | None = None


@dataclass(frozen=True, slots=True)
class ToGroup:
    """Every connection of the group's accepted members, except ``exclude``.

    ``members`` are the members when the frame was accepted; whoever delivers it may use a
    fresher list of the same group (membership can change while a message is committed).
    """

    group_id: int
    members: Collection[int]
    exclude: ConnRef | None = None


@dataclass(frozen=True, slots=True)
class ToAll:
    """Every connection, except ``exclude``."""

    exclude: ConnRef | None = None


Target = ToUsers | ToGroup | ToAll


def private_target(sender_id: int, to: int, origin: ConnRef | None) -> ToUsers:
    """A private message reaches the recipient's connections and the sender's other ones."""
    return ToUsers((to,) if to == sender_id else (to, sender_id), origin)


def group_target(group_id: int, members: Collection[int], origin: ConnRef | None) -> ToGroup:
    """A group message reaches every connection of every accepted member but the sending one."""
    return ToGroup(group_id, members, origin)


class _Numbered(Protocol):
    @property
    def id(self) -> int: ...


C = TypeVar("C", bound=_Numbered)


def skipped_conn(target: Target, node: str) -> int | None:
    """The number of the connection ``target`` leaves out on ``node``, if one is there."""
    exclude = target.exclude
    return exclude.conn if exclude is not None and exclude.node == node else None


def recipients(target: Target, registry: Mapping[int, Iterable[C]], node: str = "") -> Iterator[C]:
    """The connections of this ``node`` (its ``registry``: user id -> connections) that
    ``target`` addresses, each once."""
    skip = skipped_conn(target, node)
    if isinstance(target, ToAll):
        for conns in registry.values():
            for conn in conns:
                if conn.id != skip:
                    yield conn
        return
    users = target.user_ids if isinstance(target, ToUsers) else target.members
    if len(users) > len(registry):  # a big group with few online: walk the registry
        wanted = users if isinstance(users, (set, frozenset)) else set(users)
        for uid, conns in registry.items():
            if uid in wanted:
                for conn in conns:
                    if conn.id != skip:
                        yield conn
        return
    if not isinstance(users, (set, frozenset)) and len(users) > 1:
        users = dict.fromkeys(users)  # each user once
    for uid in users:
        found = registry.get(uid)
        if found:
            for conn in found:
                if conn.id != skip:
                    yield conn


def target_to_wire(target: Target, memo: dict[int, list[int]] | None = None) -> dict[str, Any]:
    """A target as JSON-ready data (for a backplane between processes). ``memo``, shared by
    the targets of one message, sorts each user set once (a batch's messages to one group
    share the group's member set); the caller keeps the sets alive while it is used."""
    out: dict[str, Any]
    if isinstance(target, ToUsers):
        out = {"to": "users", "users": _users_out(target.user_ids, memo)}
    elif isinstance(target, ToGroup):
        out = {"to": "group", "group": target.group_id,
               "users": _users_out(target.members, memo)}
    else:
        out = {"to": "all"}
    if target.exclude is not None:
        out["except"] = [target.exclude.node, target.exclude.conn]
    return out


def _users_out(users: Collection[int], memo: dict[int, list[int]] | None) -> list[int]:
    if memo is None:
        return sorted(set(users))
    found = memo.get(id(users))
    if found is None:
        found = memo[id(users)] = sorted(set(users))
    return found


def target_from_wire(data: Mapping[str, Any],
                     memo: dict[tuple[Any, ...], frozenset[int]] | None = None) -> Target:
    """The inverse of :func:`target_to_wire`; ValueError for anything else. ``memo``, shared
    by the targets of one message, builds each distinct user set once."""
    try:
        raw = data.get("except")
        exclude = None if raw is None else ConnRef(str(raw[0]), int(raw[1]))
        kind = data["to"]
        if kind == "users":
            return ToUsers(_users_in(data["users"], memo), exclude)
        if kind == "group":
            return ToGroup(int(data["group"]), _users_in(data["users"], memo), exclude)
        if kind == "all":
            return ToAll(exclude)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"not a target: {data!r}") from exc
    raise ValueError(f"not a target: {data!r}")


def _users_in(raw: Any, memo: dict[tuple[Any, ...], frozenset[int]] | None) -> frozenset[int]:
    if not isinstance(raw, list | tuple):
        raise TypeError("user ids come as an array")
    if memo is None:
        return frozenset(int(u) for u in raw)
    key = tuple(raw)  # (equal keys convert to equal sets: int(True) == int(1.0) == 1)
    found = memo.get(key)
    if found is None:
        found = memo[key] = frozenset(int(u) for u in key)
    return found
