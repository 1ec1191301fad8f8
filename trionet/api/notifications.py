"""The caller's notifications: list with read state and unread count, mark read."""

from __future__ import annotations

from typing import Annotated

import msgspec
from quart import Blueprint, Response, request

from .common import current_identity, json_body, json_response, services
from .paging import MAX_ID, page_params

__all__ = ["MAX_READ_IDS", "bp"]

bp = Blueprint("notifications", __name__)

MAX_READ_IDS = 1000
Id = Annotated[int, msgspec.Meta(gt=0, le=MAX_ID)]


class ReadBody(msgspec.Struct, forbid_unknown_fields=True):
    ids: Annotated[list[Id], msgspec.Meta(max_length=MAX_READ_IDS)]


@bp.get("/api/notifications")
async def list_notifications() -> Response:
    """The caller's notifications, newest first, each with ``read``; plus ``unread_count``."""
    identity = await current_identity()
    page = page_params(request.args)
    store = services().store
    found = await store.notification_page(identity.user_id, limit=page.fetch,
                                          offset=page.offset, before_id=page.before_id)
    unread = await store.unread_count(identity.user_id)
    items, has_more = page.cut(found)
    return json_response({"notifications": items, "unread_count": unread, "has_more": has_more})


@bp.post("/api/notifications/read")
async def mark_read() -> Response:
    """Mark all the caller's notifications read, or only ``{"ids": [...]}``.

    Ids that are not the caller's are ignored and left untouched.
    """
    identity = await current_identity()
    body = await json_body(ReadBody, required=False)
    store = services().store
    ids = None if body is None else body.ids
    marked = await store.mark_read(identity.user_id, ids)
    unread = await store.unread_count(identity.user_id)
    return json_response({"marked": marked, "unread_count": unread})
