"""Moved to :mod:`trionet.realtime.messagetypes`; this import path stays for integrators."""

from .realtime.messagetypes import (
    BUILTIN_TYPES,
    BroadcastIn,
    ClientId,
    Content,
    Frame,
    GroupId,
    GroupIn,
    MessageType,
    MessageTypes,
    NotificationIn,
    PingIn,
    PrivateIn,
    Route,
    RouteContext,
    Router,
    UserId,
    server_only,
    to_everyone,
    to_group,
    to_user,
    to_user_or_group,
    to_users,
)

__all__ = [
    "BroadcastIn", "BUILTIN_TYPES", "ClientId", "Content", "Frame", "GroupId", "GroupIn",
    "MessageType", "MessageTypes", "NotificationIn", "PingIn", "PrivateIn", "Route",
    "RouteContext", "Router", "UserId", "server_only", "to_everyone", "to_group", "to_user",
    "to_user_or_group", "to_users",
]
