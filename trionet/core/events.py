"""What passes the backplane: deliveries (a target and an encoded frame) and control events.

Plain, immutable data with a JSON-ready form (:func:`to_wire`, :func:`from_wire`), so that a
backplane between processes can carry exactly what the in-process one hands over.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .routing import Target, target_from_wire, target_to_wire

__all__ = ["Delivery", "SessionEnded", "MembershipChanged", "PresenceChanged",
           "DisconnectUser", "ControlEvent", "to_wire", "from_wire"]


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


ControlEvent = SessionEnded | MembershipChanged | PresenceChanged | DisconnectUser


def to_wire(item: Delivery | ControlEvent) -> dict[str, Any]:
    """A delivery or a control event as JSON-ready data."""
    if isinstance(item, Delivery):
        return {"e": "deliver", "target": target_to_wire(item.target),
                "frame": item.frame.decode(), "kind": item.kind}
    if isinstance(item, SessionEnded):
        return {"e": "session_ended", "session_key": item.session_key}
    if isinstance(item, MembershipChanged):
        return {"e": "membership_changed", "group_id": item.group_id}
    if isinstance(item, PresenceChanged):
        return {"e": "presence", "user_id": item.user_id, "online": item.online,
                "node": item.node}
    return {"e": "disconnect", "user_id": item.user_id, "code": item.code}


def from_wire(data: Mapping[str, Any]) -> Delivery | ControlEvent:
    """The inverse of :func:`to_wire`; ValueError for anything else."""
    try:
        kind = data["e"]
        if kind == "deliver":
            return Delivery(target_from_wire(data["target"]), str(data["frame"]).encode(),
                            str(data["kind"]))
        if kind == "session_ended":
            return SessionEnded(str(data["session_key"]))
        if kind == "membership_changed":
            return MembershipChanged(int(data["group_id"]))
        if kind == "presence":
            return PresenceChanged(int(data["user_id"]), bool(data["online"]), str(data["node"]))
        if kind == "disconnect":
            return DisconnectUser(int(data["user_id"]), int(data["code"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a backplane event: {data!r}") from exc
    raise ValueError(f"not a backplane event: {data!r}")
