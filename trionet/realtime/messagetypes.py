"""Message types: what a client may send, who receives it, and whether it is stored.

Every client frame type, the built-in ones included, is a :class:`MessageType`: a schema (a
:class:`Frame` subclass, validated in one pass by msgspec), a router (which checks the sender
may send it and says who receives it) and a ``persisted`` flag. An application adds its own::

    class Poke(Frame, tag="poke"):
        to: UserId
        strength: int = 1

    app = create_app(settings, message_types=[MessageType(Poke, route=to_user())])

A client then sends ``{"type":"poke","to":7,"strength":3}`` and user 7 receives
``{"type":"poke","from":1,"to":7,"strength":3,"timestamp":"..."}``. See ``docs/extending.md``.
"""

from __future__ import annotations

import typing
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from ..core.errors import ErrorCode, FrameError
from ..core.routing import ConnRef, Target, ToAll, ToUsers, group_target, private_target

__all__ = [
    "BroadcastIn",
    "BUILTIN_TYPES",
    "ClientId",
    "Content",
    "Frame",
    "GroupId",
    "GroupIn",
    "MessageType",
    "MessageTypes",
    "NotificationIn",
    "PingIn",
    "PrivateIn",
    "Route",
    "RouteContext",
    "Router",
    "UserId",
    "server_only",
    "to_everyone",
    "to_group",
    "to_user",
    "to_user_or_group",
    "to_users",
]

MAX_ID = 2**53 - 1
UserId = typing.Annotated[int, msgspec.Meta(gt=0, le=MAX_ID)]
GroupId = UserId | typing.Annotated[str, msgspec.Meta(pattern=r"^[1-9][0-9]{0,15}$")]
ClientId = typing.Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Content = typing.Annotated[str, msgspec.Meta(min_length=1)]
#: a client's own idea of when it sent a frame (ignored): Unix seconds, or an ISO 8601 string
ClientTimestamp = (typing.Annotated[float, msgspec.Meta(ge=0, le=2**53)]
                   | typing.Annotated[str, msgspec.Meta(max_length=64)])

#: fields that say where a frame goes; echoed in the delivered frame, not part of its payload
ROUTING_FIELDS = frozenset({"to", "group_id"})
#: fields every frame may carry that are never part of its payload
_NOT_PAYLOAD = frozenset({"client_id", "timestamp"})


class Frame(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, kw_only=True):
    """Base of every client frame schema: subclass it with ``tag="<type name>"``.

    Unknown fields are refused; ``client_id`` (1-64 characters) is optional on every frame, and
    so is ``timestamp`` (Unix seconds or an ISO 8601 string), which clients written against the
    source design send: it is accepted and ignored, since the server's clock is authoritative.
    """

    client_id: ClientId | None = None
    timestamp: ClientTimestamp | None = None


class PrivateIn(Frame, tag="private"):
    to: UserId
    content: Content


class GroupIn(Frame, tag="group"):
    group_id: GroupId
    content: Content


class BroadcastIn(Frame, tag="broadcast"):
    content: Content


class PingIn(Frame, tag="ping"):
    pass


class EditIn(Frame, tag="edit"):
    """The sender replaces a message's content (trionet.realtime.changes)."""

    id: UserId
    content: Content


class DeleteIn(Frame, tag="delete"):
    """A message is deleted (trionet.realtime.changes)."""

    id: UserId


class ReadIn(Frame, tag="read"):
    """A read marker moved (trionet.realtime.receipts): exactly one of ``to`` and
    ``group_id``."""

    up_to: UserId
    to: UserId | None = None
    group_id: GroupId | None = None


class NotificationIn(msgspec.Struct, tag_field="type", tag="notification"):
    """Decoded only to be refused with ``forbidden``: notifications come from the server."""

    client_id: Any = None


@dataclass(frozen=True, slots=True)
class Route:
    """Where an accepted frame goes. ``scope`` ({"to": id} or {"group_id": id}) joins the
    delivered frame; ``kind`` ("private"/"group") says how a persisted frame is stored."""

    target: Target
    scope: dict[str, int] = field(default_factory=dict)
    kind: str | None = None


class RouteContext(Protocol):
    """What a router may ask about the sender and the world (all cached, cheap)."""

    @property
    def sender_id(self) -> int: ...

    @property
    def origin(self) -> ConnRef: ...

    async def user_exists(self, user_id: int) -> bool: ...

    async def blocked(self, user_id: int) -> bool:
        """Does the sender block ``user_id``, or ``user_id`` the sender?"""
        ...

    async def group_members(self, group_id: int) -> frozenset[int] | None: ...

    async def is_admin(self, user_id: int) -> bool: ...


Router = Callable[[RouteContext, Any], Awaitable[Route]]


def _field(frame: Any, name: str) -> Any:
    return getattr(frame, name, None)


def to_user(field_name: str = "to") -> Router:
    """To every connection of the user in ``field_name`` (which must exist, and neither block
    the sender nor be blocked by them: else ``blocked``), and to the sender's other
    connections."""

    async def route(ctx: RouteContext, frame: Any) -> Route:
        to = int(_field(frame, field_name))
        if not await ctx.user_exists(to):
            raise FrameError(ErrorCode.UNKNOWN_USER, f"no user {to}", frame.client_id)
        if await ctx.blocked(to):
            raise FrameError(ErrorCode.BLOCKED, f"you and user {to} cannot write to each other"
                             " (a block)", frame.client_id)
        return Route(private_target(ctx.sender_id, to, ctx.origin), {"to": to}, "private")

    return route


def to_group(field_name: str = "group_id") -> Router:
    """To every connection of the group's accepted members but the sending one. Only an
    accepted member may send (else ``not_member``, also for a group that does not exist)."""

    async def route(ctx: RouteContext, frame: Any) -> Route:
        gid = int(_field(frame, field_name))
        if not 0 < gid <= MAX_ID:  # a string of digits can say more than an id can be
            raise FrameError(ErrorCode.INVALID_MESSAGE,
                             f"`{field_name}` must be an id below 2**53", frame.client_id)
        members = await ctx.group_members(gid)
        if members is None or ctx.sender_id not in members:
            raise FrameError(ErrorCode.NOT_MEMBER, f"you are not a member of group {gid}",
                             frame.client_id)
        return Route(group_target(gid, members, ctx.origin), {"group_id": gid}, "group")

    return route


def to_user_or_group() -> Router:
    """:func:`to_user` when the frame has ``to``, :func:`to_group` when it has ``group_id``
    (exactly one of them)."""
    user, group = to_user(), to_group()

    async def route(ctx: RouteContext, frame: Any) -> Route:
        has_to = _field(frame, "to") is not None
        has_group = _field(frame, "group_id") is not None
        if has_to == has_group:
            raise FrameError(ErrorCode.INVALID_MESSAGE,
                             "give exactly one of `to` and `group_id`", frame.client_id)
        return await (user if has_to else group)(ctx, frame)

    return route


def to_everyone(*, admin_only: bool = True) -> Router:
    """To every open connection; by default only admins may send (else ``forbidden``)."""

    async def route(ctx: RouteContext, frame: Any) -> Route:
        if admin_only and not await ctx.is_admin(ctx.sender_id):
            raise FrameError(ErrorCode.FORBIDDEN, f"only admins may send {_tag(type(frame))}",
                             frame.client_id)
        return Route(ToAll())

    return route


def to_users(user_ids: Iterable[int], origin: ConnRef | None = None) -> Route:
    """A route to these users' connections (for routers an application writes itself)."""
    return Route(ToUsers(frozenset(user_ids), origin))


def server_only(reason: str) -> Router:
    """Refuses every client frame of the type with ``forbidden``."""

    async def route(ctx: RouteContext, frame: Any) -> Route:
        cid = getattr(frame, "client_id", None)
        raise FrameError(ErrorCode.FORBIDDEN, reason, cid if isinstance(cid, str) else None)

    return route


def _tag(schema: type) -> str:
    tag = schema.__struct_config__.tag  # type: ignore[attr-defined]
    if not isinstance(tag, str):
        raise TypeError(f"{schema.__name__} needs a tag: class {schema.__name__}(Frame, tag=...)")
    return tag


@dataclass(frozen=True)
class MessageType:
    """One kind of client frame.

    ``schema`` validates it; ``route`` authorizes the sender and picks the recipients;
    ``persisted`` frames get an id, are committed before delivery, show in history and resume
    (they need a route to a user or a group); ``rate`` adds a per-connection limit for this
    type (frames per second, bursts of twice that) on top of the connection's own.
    """

    schema: type[Any]
    route: Router
    persisted: bool = False
    rate: float | None = None
    name: str = field(init=False)
    payload_fields: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        name = _tag(self.schema)
        fields = tuple(
            f for f in getattr(self.schema, "__struct_fields__", ())
            if f not in _NOT_PAYLOAD and f not in ROUTING_FIELDS
        )
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "payload_fields", fields)
        if self.rate is not None and self.rate <= 0:
            raise ValueError("rate must be positive (or None)")

    def payload(self, frame: Any) -> dict[str, Any]:
        """The frame's own fields, without ``client_id``, ``timestamp`` and the routing fields."""
        return {f: getattr(frame, f) for f in self.payload_fields}


PRIVATE = MessageType(PrivateIn, route=to_user(), persisted=True)
GROUP = MessageType(GroupIn, route=to_group(), persisted=True)
BROADCAST = MessageType(BroadcastIn, route=to_everyone(admin_only=True))
NOTIFICATION = MessageType(NotificationIn,
                           route=server_only("notifications are sent by the server only"))

#: the four types of the protocol, declared like any other
BUILTIN_TYPES: tuple[MessageType, ...] = (PRIVATE, GROUP, BROADCAST, NOTIFICATION)
_RESERVED_NAMES = frozenset({"ping", "pong", "ack", "error", "synced", "sync_gap", "presence",
                             "read", "edit", "edited", "delete", "deleted"})


class MessageTypes:
    """The registry of an app's message types, and the decoder for all of them."""

    def __init__(self, types: Sequence[MessageType]) -> None:
        self.by_name: dict[str, MessageType] = {}
        for mtype in types:
            if mtype.name in self.by_name or mtype.name in _RESERVED_NAMES:
                raise ValueError(f"message type {mtype.name!r} is already taken")
            if mtype.persisted and mtype.schema not in (PrivateIn, GroupIn):
                fields = getattr(mtype.schema, "__struct_fields__", ())
                if "to" not in fields and "group_id" not in fields:
                    raise ValueError(f"persisted type {mtype.name!r} needs a `to` or `group_id`")
            self.by_name[mtype.name] = mtype
        schemas = tuple(m.schema for m in types) + (PingIn, ReadIn, EditIn, DeleteIn)
        self.decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(
            typing.Union[schemas]  # noqa: UP007
        )

    def __contains__(self, name: str) -> bool:
        return name in self.by_name
