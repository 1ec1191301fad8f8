"""The server API for the social network's backend: notify, broadcast, mirror users and groups.

Enabled only when an API key is configured (``TRIONET_API_KEY``); without one every
``/api/server/...`` endpoint answers 404, as if it did not exist. Each call must carry
``Authorization: Bearer <key>`` (compared in constant time); a wrong or missing key is a 401.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from quart import Blueprint, Response, request

from ..auth import bearer, same_secret
from ..core.clock import now_iso
from ..core.errors import ApiError, ErrorCode
from ..interfaces import Handshake
from ..realtime.erasure import delete_account
from ..store import GroupRefused, PasswordAccount, UsernameTaken
from .accounts import Username
from .common import json_body, json_response, services
from .groups import GROUP_NAME_MAX, clean_group_name, refusal_error
from .paging import MAX_ID

__all__ = ["MAX_DATA_BYTES", "MAX_GROUP_MEMBERS", "MAX_NOTIFY_USERS", "RESERVED_KEYS", "bp"]

bp = Blueprint("server_api", __name__)

MAX_NOTIFY_USERS = 1000
MAX_GROUP_MEMBERS = 10_000
MAX_DATA_BYTES = 16 * 1024
#: keys of ``data`` that never reach a notification (the frame's own fields, and ``read``,
#: which ``GET /api/notifications`` adds)
RESERVED_KEYS = frozenset({"type", "id", "subtype", "message", "timestamp", "read"})

Id = Annotated[int, msgspec.Meta(gt=0, le=MAX_ID)]
_encoder = msgspec.json.Encoder()


class NotifyBody(msgspec.Struct, forbid_unknown_fields=True):
    user_ids: Annotated[list[Id], msgspec.Meta(min_length=1, max_length=MAX_NOTIFY_USERS)]
    subtype: Annotated[str, msgspec.Meta(min_length=1, max_length=64,
                                         pattern=r"^[A-Za-z0-9_.:-]+$")]
    message: Annotated[str, msgspec.Meta(min_length=1, max_length=4000)]
    data: dict[Annotated[str, msgspec.Meta(min_length=1, max_length=64)], Any] = {}


class BroadcastBody(msgspec.Struct, forbid_unknown_fields=True):
    content: Annotated[str, msgspec.Meta(min_length=1)]


class UserBody(msgspec.Struct, forbid_unknown_fields=True):
    username: Username


class MemberBody(msgspec.Struct, forbid_unknown_fields=True):
    user_id: Id
    status: Literal["accepted", "invited"]


class GroupBody(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=GROUP_NAME_MAX)]
    members: Annotated[list[MemberBody], msgspec.Meta(max_length=MAX_GROUP_MEMBERS)] = []
    owner_id: Id | None = None


@bp.before_request
async def _require_key() -> None:
    key = services().settings.api_key
    if key is None:
        raise ApiError(404, ErrorCode.NOT_FOUND,
                       "the server API is disabled (no TRIONET_API_KEY configured)")
    given = bearer(Handshake(headers=dict(request.headers), cookies={}))
    if given is None or not same_secret(given, key):
        raise ApiError(401, ErrorCode.UNAUTHORIZED, "the server API key is required",
                       headers={"WWW-Authenticate": 'Bearer realm="trionet-server-api"'})


def _id_in_path(value: int, what: str) -> int:
    if not 0 < value <= MAX_ID:
        raise ApiError(400, ErrorCode.BAD_REQUEST, f"{what} id must be between 1 and {MAX_ID}")
    return value


@bp.post("/api/server/notify")
async def notify() -> Response:
    """Persist a notification for each user and push it live (201).

    ``data`` keys join the frame beside ``subtype`` and ``message``; reserved keys are dropped.
    All users must exist (else 404 and nothing is sent).
    """
    body = await json_body(NotifyBody)
    assert body is not None
    svc = services()
    if len(_encoder.encode(body.data)) > MAX_DATA_BYTES:
        raise ApiError(400, ErrorCode.BAD_REQUEST,
                       f"invalid body: `data` is larger than {MAX_DATA_BYTES} bytes")
    user_ids = list(dict.fromkeys(body.user_ids))
    found = await svc.store.users_by_ids(user_ids)
    missing = sorted(set(user_ids) - {u.id for u in found})
    if missing:
        raise ApiError(404, ErrorCode.NOT_FOUND, f"no users {missing}")
    payload = {k: v for k, v in body.data.items() if k not in RESERVED_KEYS}
    frames = await svc.manager.notify_many(user_ids, body.subtype, body.message, payload)
    return json_response({
        "notifications": [{"user_id": uid, "id": f["id"]} for uid, f in zip(user_ids, frames,
                                                                            strict=True)],
        "timestamp": frames[0]["timestamp"] if frames else now_iso(),
    }, 201)


@bp.post("/api/server/broadcast")
async def broadcast() -> Response:
    """Push ``content`` live to every open connection (not persisted)."""
    body = await json_body(BroadcastBody)
    assert body is not None
    svc = services()
    limit = svc.settings.max_content_chars
    if len(body.content) > limit:
        raise ApiError(400, ErrorCode.BAD_REQUEST,
                       f"invalid body: `content` is longer than {limit} characters")
    frame = {"type": "broadcast", "from": None, "content": body.content, "timestamp": now_iso()}
    delivered = await svc.manager.broadcast_to_all(frame)
    return json_response({"delivered": delivered, "timestamp": frame["timestamp"]})


@bp.put("/api/server/users/<int:user_id>")
async def upsert_user(user_id: int) -> Response:
    """Create user ``user_id`` (201) or rename it (200); 409 when the name is taken or the id
    is an account with a password (registered or made by the CLI: never renamed from here)."""
    _id_in_path(user_id, "user")
    body = await json_body(UserBody)
    assert body is not None
    try:
        created = await services().store.set_backend_username(user_id, body.username)
    except UsernameTaken:
        raise ApiError(409, ErrorCode.CONFLICT, f"username {body.username!r} is taken") from None
    except PasswordAccount:
        raise ApiError(409, ErrorCode.CONFLICT,
                       f"user {user_id} is an account with a password, managed by trionet;"
                       " the server API never renames or adopts it") from None
    return json_response({"id": user_id, "username": body.username, "created": created},
                         201 if created else 200)


@bp.delete("/api/server/users/<int:user_id>")
async def delete_user(user_id: int) -> Response:
    """Delete a user, for an erasure request: their connections close (4001) on every node,
    they leave their groups, their messages' content is erased (the messages stay, deleted),
    and the account goes with its sessions, blocks, read markers and notifications."""
    _id_in_path(user_id, "user")
    counts = await delete_account(services(), user_id)
    if counts is None:
        raise ApiError(404, ErrorCode.NOT_FOUND, f"no user {user_id}")
    return json_response({"user_id": user_id, "deleted": True, **counts})


@bp.put("/api/server/groups/<int:group_id>")
async def upsert_group(group_id: int) -> Response:
    """Create (201) or replace (200) group ``group_id`` and its whole membership.

    Users not known yet are created as ``user<id>``; live routing follows at once.
    """
    _id_in_path(group_id, "group")
    body = await json_body(GroupBody)
    assert body is not None
    name = clean_group_name(body.name)
    members = [(m.user_id, m.status) for m in body.members]
    if len({uid for uid, _ in members}) != len(members):
        raise ApiError(400, ErrorCode.BAD_REQUEST, "invalid body: a user is listed twice")
    if body.owner_id is not None and (body.owner_id, "accepted") not in members:
        raise ApiError(400, ErrorCode.BAD_REQUEST,
                       "invalid body: `owner_id` must be an accepted member")
    svc = services()
    try:
        created = await svc.store.upsert_group(group_id, name, members, body.owner_id)
    except GroupRefused as exc:
        raise refusal_error(exc) from None
    svc.manager.membership_changed(group_id)
    result: dict[str, Any] = {
        "id": group_id, "name": name, "owner_id": body.owner_id,
        "members": [{"user_id": uid, "status": status} for uid, status in members],
        "created": created,
    }
    return json_response(result, 201 if created else 200)
