"""Groups and invites: create, list, invite, accept, decline, leave, rename, remove, delete.

Every membership change is committed first, then ``Manager.membership_changed`` makes live
routing follow it before the response is sent.

Invites and group creations are limited per user (``TRIONET_INVITE_RATE`` a minute each,
past it 429 with ``Retry-After``). An invite change of a group holds that group's lock until
the invite's notification is committed, so a withdraw or re-invite always finds the earlier
notification to delete (see ``store.sqlite.groups``).
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Awaitable
from typing import Annotated, TypeVar

import msgspec
from quart import Blueprint, Response

from ..core.errors import ApiError, ErrorCode
from ..core.frames import INVITE_SUBTYPE
from ..core.ratelimit import KeyedLimiter
from ..store import GroupRefused, Refusal
from .common import current_identity, json_body, json_response, services
from .paging import MAX_ID, path_id

__all__ = ["GROUP_NAME_MAX", "bp", "clean_group_name", "refusal_error"]

bp = Blueprint("groups", __name__)

T = TypeVar("T")

GROUP_NAME_MAX = 100
Id = Annotated[int, msgspec.Meta(gt=0, le=MAX_ID)]
IdOrDigits = Id | Annotated[str, msgspec.Meta(pattern=r"^[1-9][0-9]{0,15}$")]
GroupName = Annotated[str, msgspec.Meta(min_length=1, max_length=GROUP_NAME_MAX)]

_STATUS: dict[Refusal, tuple[int, str]] = {
    Refusal.NO_GROUP: (404, ErrorCode.NOT_FOUND),
    Refusal.NO_USER: (404, ErrorCode.NOT_FOUND),
    Refusal.NO_INVITE: (404, ErrorCode.NOT_FOUND),
    Refusal.NO_MEMBERSHIP: (404, ErrorCode.NOT_FOUND),
    Refusal.NOT_MEMBER: (403, ErrorCode.NOT_MEMBER),
    Refusal.NOT_OWNER: (403, ErrorCode.FORBIDDEN),
    Refusal.ALREADY_MEMBER: (409, ErrorCode.CONFLICT),
    Refusal.ALREADY_INVITED: (409, ErrorCode.CONFLICT),
    Refusal.OWNER_CANNOT: (400, ErrorCode.BAD_REQUEST),
}


def refusal_error(exc: GroupRefused) -> ApiError:
    """The HTTP error for a refused group operation."""
    status, code = _STATUS[exc.reason]
    return ApiError(status, code, exc.message)


def clean_group_name(name: str) -> str:
    """``name`` without surrounding blanks; 400 when empty or holding control characters."""
    cleaned = name.strip()
    if not cleaned:
        raise ApiError(400, ErrorCode.BAD_REQUEST, "invalid body: `name` must not be blank")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in cleaned):
        raise ApiError(400, ErrorCode.BAD_REQUEST,
                       "invalid body: `name` must not contain control characters")
    return cleaned


class NameBody(msgspec.Struct, forbid_unknown_fields=True):
    name: GroupName


class InviteBody(msgspec.Struct, forbid_unknown_fields=True):
    group_id: IdOrDigits
    user_id: Id
    #: accepted for compatibility; the stored group name is what the invitee is shown
    group_name: Annotated[str, msgspec.Meta(max_length=GROUP_NAME_MAX * 4)] | None = None


async def _write(call: Awaitable[T]) -> T:
    """Await a store call, with a refusal turned into its HTTP error."""
    try:
        return await call
    except GroupRefused as exc:
        raise refusal_error(exc) from None


def _changed(group_id: int) -> None:
    services().manager.membership_changed(group_id)


def _limit(limiter: KeyedLimiter, user_id: int, what: str) -> None:
    """Spend one of the user's ``what`` (per minute); 429 with ``Retry-After`` past the rate."""
    wait = limiter.take(user_id, time.monotonic())
    if wait is not None:
        raise ApiError(429, ErrorCode.TOO_MANY_REQUESTS,
                       f"too many {what} (at most {limiter.per_minute:g} a minute);"
                       f" retry in {wait} s", headers={"Retry-After": str(wait)})


@bp.post("/api/groups")
async def create() -> Response:
    """Create a group; the caller is its owner and first accepted member (201).

    429 past ``TRIONET_INVITE_RATE`` creations a minute by the caller.
    """
    identity = await current_identity()
    body = await json_body(NameBody)
    assert body is not None
    name = clean_group_name(body.name)
    _limit(services().group_limit, identity.user_id, "group creations")
    group = await services().store.create_group(identity.user_id, name)
    _changed(group["id"])
    return json_response({**group, "member_count": 1}, 201)


@bp.get("/api/groups")
async def list_groups() -> Response:
    """The caller's groups, each with the caller's read marker and unread count, and their
    pending invites."""
    identity = await current_identity()
    store = services().store
    mine, invites = await store.groups_of(identity.user_id)
    states = await store.group_read_states(identity.user_id, [int(g["id"]) for g in mine])
    for group in mine:
        group["last_read_id"], group["unread_count"] = states.get(int(group["id"]), (None, 0))
    return json_response({"groups": mine, "invites": invites})


@bp.get("/api/groups/<int:group_id>")
async def details(group_id: int) -> Response:
    """One group with its members and pending invitees (accepted members only)."""
    identity = await current_identity()
    path_id(group_id, "group")
    try:
        found = await services().store.group_details(group_id, identity.user_id)
    except GroupRefused as exc:
        raise refusal_error(exc) from None
    return json_response(found)


@bp.post("/api/groups/invite")
async def invite() -> Response:
    """Invite a user (the caller must be an accepted member); the invitee is notified live.

    The invitee's earlier invite notification of this group, if any, is deleted. 429 past
    ``TRIONET_INVITE_RATE`` invites a minute by the caller (refused invites count too).
    """
    identity = await current_identity()
    body = await json_body(InviteBody)
    assert body is not None
    svc = services()
    group_id = int(body.group_id)
    if group_id > MAX_ID:  # digits in a string can say more than an id can be
        raise ApiError(400, ErrorCode.BAD_REQUEST, "invalid body: `group_id` must be below 2**53")
    _limit(svc.invite_limit, identity.user_id, "invites")
    if await svc.blocks.between(identity.user_id, body.user_id):
        raise ApiError(403, ErrorCode.BLOCKED,
                       f"you and user {body.user_id} cannot invite each other (a block)")
    async with svc.invite_locks.hold(group_id):
        name = await _write(services().store.invite(group_id, identity.user_id, body.user_id))
        _changed(group_id)
        frame = await svc.manager.notify(
            body.user_id, INVITE_SUBTYPE, f"You were invited to join group '{name}'",
            group_id=group_id, group_name=name, invited_by=identity.user_id,
        )
    return json_response({"group_id": group_id, "user_id": body.user_id, "status": "invited",
                          "notification_id": frame["id"]}, 201)


@bp.post("/api/groups/<int:group_id>/accept")
async def accept(group_id: int) -> Response:
    """Accept the caller's pending invite; group messages reach them from now on."""
    identity = await current_identity()
    path_id(group_id, "group")
    await _write(services().store.accept_invite(group_id, identity.user_id))
    _changed(group_id)
    return json_response({"group_id": group_id, "status": "accepted"})


@bp.post("/api/groups/<int:group_id>/decline")
async def decline(group_id: int) -> Response:
    """Decline (delete) the caller's pending invite, and its notification."""
    identity = await current_identity()
    path_id(group_id, "group")
    async with services().invite_locks.hold(group_id):
        await _write(services().store.decline_invite(group_id, identity.user_id))
    _changed(group_id)
    return json_response({"group_id": group_id, "status": "declined"})


@bp.post("/api/groups/<int:group_id>/leave")
async def leave(group_id: int) -> Response:
    """Leave a group; ownership passes on, and a group left empty is deleted."""
    identity = await current_identity()
    path_id(group_id, "group")
    async with services().invite_locks.hold(group_id):  # may delete the group's invites
        outcome = await _write(services().store.leave(group_id, identity.user_id))
    _changed(group_id)
    return json_response({"group_id": group_id, "status": "left",
                          "new_owner_id": outcome.new_owner,
                          "group_deleted": outcome.deleted})


@bp.patch("/api/groups/<int:group_id>")
async def rename(group_id: int) -> Response:
    """Rename a group (owner only)."""
    identity = await current_identity()
    path_id(group_id, "group")
    body = await json_body(NameBody)
    assert body is not None
    name = clean_group_name(body.name)
    group = await _write(services().store.rename(group_id, identity.user_id, name))
    return json_response(group)


@bp.delete("/api/groups/<int:group_id>/members/<int:user_id>")
async def remove_member(group_id: int, user_id: int) -> Response:
    """Remove a member or withdraw an invite (owner only); a withdrawn invite's
    notification is deleted."""
    identity = await current_identity()
    path_id(group_id, "group")
    path_id(user_id, "user")
    async with services().invite_locks.hold(group_id):
        removed = await _write(
            services().store.remove_member(group_id, identity.user_id, user_id))
    _changed(group_id)
    return json_response({"group_id": group_id, "user_id": user_id, "removed": removed})


@bp.delete("/api/groups/<int:group_id>")
async def delete(group_id: int) -> Response:
    """Delete a group with its memberships and invites (owner only)."""
    identity = await current_identity()
    path_id(group_id, "group")
    async with services().invite_locks.hold(group_id):
        await _write(services().store.delete_group(group_id, identity.user_id))
    _changed(group_id)
    return json_response({"group_id": group_id, "deleted": True})
