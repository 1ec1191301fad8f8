"""Online status in bulk: ``GET /api/users/online?ids=1,2,3``."""

from __future__ import annotations

from quart import Blueprint, Response, request

from .common import current_identity, id_list_param, json_response, services

__all__ = ["MAX_ONLINE_IDS", "bp"]

bp = Blueprint("presence", __name__)

MAX_ONLINE_IDS = 500


@bp.get("/api/users/online")
async def online() -> Response:
    """Whether each of up to 500 users has at least one open connection (a user the caller
    blocks, or who blocks the caller, is shown offline)."""
    identity = await current_identity()
    ids = id_list_param(request.args, "ids", most=MAX_ONLINE_IDS)
    svc = services()
    is_online = svc.manager.is_online
    hidden = await svc.blocks.relations(identity.user_id)
    return json_response({"online": {str(i): i not in hidden and is_online(i) for i in ids}})
