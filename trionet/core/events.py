"""What passes the backplane: deliveries (a target and an encoded frame) and control events.

Plain, immutable data with a wire form (:func:`to_wire`, :func:`from_wire`: dicts of plain
values, frames kept as bytes; :func:`pack` and :func:`unpack`: one MessagePack message for a
list of them), so that a backplane between processes carries exactly what the in-process one
hands over.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from .routing import Target, target_from_wire, target_to_wire

__all__ = ["Delivery", "SessionEnded", "MembershipChanged", "PresenceChanged",
           "DisconnectUser", "Resync", "ControlEvent", "to_wire", "from_wire", "pack",
           "unpack"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One encoded frame for every connection ``target`` addresses; ``kind`` is its type
    (for the metrics)."""

    target: Target
    frame: bytes
    kind: str


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """Logout (or the backend) ended a session: its connections close with 4001."""

    session_key: str


@dataclass(frozen=True, slots=True)
class MembershipChanged:
    """A group's members changed: forget any cached member list of it."""

    group_id: int


@dataclass(frozen=True, slots=True)
class BlocksChanged:
    """A block between these users was made or lifted: forget their cached block relations."""

    user_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class UserDeleted:
    """An account was deleted: close its connections (4001) and forget what is cached of it."""

    user_id: int


@dataclass(frozen=True, slots=True)
class PresenceChanged:
    """A user's first connection on ``node`` opened (``online``) or its last one closed."""

    user_id: int
    online: bool
    node: str


@dataclass(frozen=True, slots=True)
class DisconnectUser:
    """Close every connection of a user with ``code``."""

    user_id: int
    code: int


@dataclass(frozen=True, slots=True)
class Resync:
    """``node`` could not pass on everything persisted meant for other nodes (its backplane
    was down too long): every node asks its connections to reconnect and resume."""

    node: str


ControlEvent = (SessionEnded | MembershipChanged | PresenceChanged | DisconnectUser | Resync
                | BlocksChanged | UserDeleted)


def to_wire(item: Delivery | ControlEvent,
            memo: dict[int, list[int]] | None = None) -> dict[str, Any]:
    """A delivery or a control event as plain data (a frame stays bytes); ``memo`` as
    :func:`~trionet.core.routing.target_to_wire`'s."""
    if isinstance(item, Delivery):
        return {"e": "deliver", "target": target_to_wire(item.target, memo),
                "frame": item.frame, "kind": item.kind}
    if isinstance(item, SessionEnded):
        return {"e": "session_ended", "session_key": item.session_key}
    if isinstance(item, MembershipChanged):
        return {"e": "membership_changed", "group_id": item.group_id}
    if isinstance(item, PresenceChanged):
        return {"e": "presence", "user_id": item.user_id, "online": item.online,
                "node": item.node}
    if isinstance(item, Resync):
        return {"e": "resync", "node": item.node}
    if isinstance(item, BlocksChanged):
        return {"e": "blocks_changed", "user_ids": list(item.user_ids)}
    if isinstance(item, UserDeleted):
        return {"e": "user_deleted", "user_id": item.user_id}
    return {"e": "disconnect", "user_id": item.user_id, "code": item.code}


def from_wire(data: Mapping[str, Any],
              memo: dict[tuple[Any, ...], frozenset[int]] | None = None
              ) -> Delivery | ControlEvent:
    """The inverse of :func:`to_wire`; ValueError for anything else; ``memo`` as
    :func:`~trionet.core.routing.target_from_wire`'s."""
    try:
        kind = data["e"]
        if kind == "deliver":
            frame = data["frame"]
            if not isinstance(frame, bytes):
                raise TypeError("a frame is bytes")
            return Delivery(target_from_wire(data["target"], memo), frame, str(data["kind"]))
        if kind == "session_ended":
            return SessionEnded(str(data["session_key"]))
        if kind == "membership_changed":
            return MembershipChanged(int(data["group_id"]))
        if kind == "presence":
            return PresenceChanged(int(data["user_id"]), bool(data["online"]), str(data["node"]))
        if kind == "disconnect":
            return DisconnectUser(int(data["user_id"]), int(data["code"]))
        if kind == "resync":
            return Resync(str(data["node"]))
        if kind == "blocks_changed":
            return BlocksChanged(tuple(int(u) for u in data["user_ids"]))
        if kind == "user_deleted":
            return UserDeleted(int(data["user_id"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a backplane event: {data!r}") from exc
    raise ValueError(f"not a backplane event: {data!r}")


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()


def pack(origin: str, items: Sequence[Delivery | ControlEvent], seq: int = 0) -> bytes:
    """One backplane message: what node ``origin`` publishes, in order, as its ``seq``-th
    message (increasing, so that a receiver can drop a copy that a retry sent again)."""
    memo: dict[int, list[int]] = {}  # (the items keep their user sets alive meanwhile)
    return _encoder.encode({"n": origin, "s": seq,
                            "i": [to_wire(item, memo) for item in items]})


def unpack(data: bytes) -> tuple[str, int, list[Delivery | ControlEvent]]:
    """The inverse of :func:`pack`: the origin node, its sequence number and its items;
    ValueError for anything else."""
    try:
        raw = _decoder.decode(data)
        memo: dict[tuple[Any, ...], frozenset[int]] = {}
        return str(raw["n"]), int(raw["s"]), [from_wire(item, memo) for item in raw["i"]]
    except (msgspec.DecodeError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise ValueError(f"not a backplane message ({exc})") from exc
