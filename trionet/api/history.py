"""Message history and conversations: private pairs, groups, and the caller's peers."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from quart import Blueprint, Response, request

from ..core.errors import ApiError, ErrorCode, FrameError
from ..core.frames import message_frame
from ..realtime.receipts import mark_read
from ..store import Conversation
from .common import current_identity, int_param, json_body, json_response, services
from .paging import MAX_ID, page_params

__all__ = ["bp"]

bp = Blueprint("history", __name__)


@bp.get("/api/messages/private")
async def private_history() -> Response:
    """Messages between the caller and ``user``, newest first, with ``has_more``.

    The caller is always one side of the pair, so no one reads another pair's history.
    """
    identity = await current_identity()
    svc = services()
    peer = int_param(request.args, "user", minimum=1, maximum=MAX_ID)
    page = page_params(request.args)
    if not await svc.user_exists(peer):
        raise ApiError(404, ErrorCode.NOT_FOUND, f"no user {peer}")
    records = await svc.persister.private_page(
        identity.user_id, peer, limit=page.fetch, offset=page.offset, before_id=page.before_id
    )
    rows, has_more = page.cut(records)
    return json_response({"messages": [message_frame(r) for r in rows], "has_more": has_more})


@bp.get("/api/messages/group")
async def group_history() -> Response:
    """Messages of ``group``, newest first, for its accepted members only (403; 404 unknown)."""
    identity = await current_identity()
    svc = services()
    group_id = int_param(request.args, "group", minimum=1, maximum=MAX_ID)
    page = page_params(request.args)
    members = await svc.membership.members(group_id)
    if members is None:
        raise ApiError(404, ErrorCode.NOT_FOUND, f"no group {group_id}")
    if identity.user_id not in members:
        raise ApiError(403, ErrorCode.NOT_MEMBER, f"you are not a member of group {group_id}")
    records = await svc.persister.group_page(
        group_id, limit=page.fetch, offset=page.offset, before_id=page.before_id
    )
    rows, has_more = page.cut(records)
    return json_response({"messages": [message_frame(r) for r in rows], "has_more": has_more})


@bp.get("/api/conversations")
async def conversation_list() -> Response:
    """The caller's private conversations (with ``include=groups``, their groups too), most
    recent first, each with its latest message and read state.

    Paged like history; ``before_id`` keeps conversations whose latest message is older.
    """
    identity = await current_identity()
    page = page_params(request.args)
    include = request.args.get("include", "")
    if include not in ("", "groups"):
        raise ApiError(400, ErrorCode.BAD_REQUEST, "query parameter 'include' may only be"
                       " 'groups'")
    store = services().store
    if not include:
        found = await store.conversation_page(
            identity.user_id, limit=page.fetch, offset=page.offset, before_id=page.before_id)
        rows, has_more = page.cut([_private_item(c) for c in found])
        return json_response({"conversations": rows, "has_more": has_more})
    # both kinds, merged by latest message: every candidate down to this page's end
    private = await store.conversation_page(identity.user_id, limit=page.offset + page.fetch,
                                            offset=0, before_id=page.before_id)
    items = [(c.last_message.id, _private_item(c)) for c in private]
    mine, _ = await store.groups_of(identity.user_id)
    newest = await store.latest_in_groups([int(g["id"]) for g in mine], page.before_id)
    latest = [(g, newest[int(g["id"])]) for g in mine if int(g["id"]) in newest]
    states = await store.group_read_states(identity.user_id, list(newest))
    for group, message in latest:
        last_read, unread = states.get(int(group["id"]), (None, 0))
        items.append((message.id, {"group": {"id": group["id"], "name": group["name"]},
                                   "last_message": message_frame(message),
                                   "unread_count": unread, "last_read_id": last_read}))
    items.sort(key=lambda pair: pair[0], reverse=True)
    rows, has_more = page.cut([item for _, item in items[page.offset:page.offset + page.fetch]])
    return json_response({"conversations": rows, "has_more": has_more})


def _private_item(c: Conversation) -> dict[str, Any]:
    return {"user": {"id": c.peer_id, "username": c.peer_username},
            "last_message": message_frame(c.last_message), "unread_count": c.unread_count,
            "last_read_id": c.last_read_id, "peer_read_id": c.peer_read_id}


Id = Annotated[int, msgspec.Meta(gt=0, le=MAX_ID)]

#: HTTP statuses of the refusals of a read (the WebSocket answers the same codes)
_READ_STATUS = {ErrorCode.INVALID_MESSAGE: 400, ErrorCode.UNKNOWN_USER: 404,
                ErrorCode.NOT_MEMBER: 403, ErrorCode.NOT_FOUND: 404}


class ReadBody(msgspec.Struct, forbid_unknown_fields=True):
    up_to: Id
    user: Id | None = None
    group: Id | None = None


@bp.post("/api/conversations/read")
async def conversation_read() -> Response:
    """Move the caller's read marker in a private conversation (``user``) or a group
    (``group``) forward to message ``up_to``; answers the marker and the unread count.

    The peer's connections get a ``read`` frame (the read receipt), and so do the caller's
    own connections (a group read: the caller's only). A smaller ``up_to`` changes nothing.
    """
    identity = await current_identity()
    body = await json_body(ReadBody)
    assert body is not None
    try:
        state, _ = await mark_read(services(), identity.user_id, to=body.user,
                                   group_id=body.group, up_to=body.up_to)
    except FrameError as exc:
        code = ErrorCode.BAD_REQUEST if exc.code is ErrorCode.INVALID_MESSAGE else exc.code
        raise ApiError(_READ_STATUS[exc.code], code, exc.message) from None
    return json_response({"last_read_id": state.last_read_id,
                          "unread_count": state.unread_count})
