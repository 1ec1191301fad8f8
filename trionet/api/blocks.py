"""Blocking: ``POST``/``DELETE /api/users/{id}/block`` and ``GET /api/blocks``.

While a user blocks another, neither can send the other private messages, typing or invites
(``blocked``), neither hears of the other's presence, and each sees the other offline; groups
they share work as before, and nothing either sent before is removed. A block takes effect on
every node before the answer (``Manager.blocks_changed``), and each side is told the other is
offline (or, once lifted, online again if they are).
"""

from __future__ import annotations

from quart import Blueprint, Response

from ..core import protocol
from ..core.clock import now_iso
from ..core.errors import ApiError, ErrorCode
from ..core.events import Delivery
from ..core.routing import ToUsers
from ..services import Services
from .common import current_identity, json_response, services
from .paging import path_id

__all__ = ["bp"]

bp = Blueprint("blocks", __name__)


async def _target(blocker_id: int, user_id: int) -> int:
    path_id(user_id, "user")
    if user_id == blocker_id:
        raise ApiError(400, ErrorCode.BAD_REQUEST, "you cannot block yourself")
    if not await services().user_exists(user_id):
        raise ApiError(404, ErrorCode.NOT_FOUND, f"no user {user_id}")
    return user_id


async def _tell_presence(svc: Services, a: int, b: int, *, blocked: bool) -> None:
    """Each side hears the other's presence as it now stands for them."""
    at = now_iso()
    deliveries = []
    for viewer, shown in ((a, b), (b, a)):
        online = not blocked and svc.manager.is_online(shown)
        frame = {"type": "presence", "user_id": shown, "online": online, "timestamp": at}
        deliveries.append(Delivery(ToUsers((viewer,)), protocol.encode(frame), "presence"))
    await svc.routes.send(deliveries)


@bp.post("/api/users/<int:user_id>/block")
async def block(user_id: int) -> Response:
    """Block a user (201; 200 when blocked already)."""
    identity = await current_identity()
    target = await _target(identity.user_id, user_id)
    svc = services()
    created = await svc.store.block(identity.user_id, target, at=now_iso())
    svc.manager.blocks_changed(identity.user_id, target)
    if created:
        await _tell_presence(svc, identity.user_id, target, blocked=True)
    return json_response({"user_id": target, "blocked": True}, 201 if created else 200)


@bp.delete("/api/users/<int:user_id>/block")
async def unblock(user_id: int) -> Response:
    """Lift a block the caller made (204, also when there was none)."""
    identity = await current_identity()
    target = await _target(identity.user_id, user_id)
    svc = services()
    if await svc.store.unblock(identity.user_id, target):
        svc.manager.blocks_changed(identity.user_id, target)
        if not await svc.blocks.between(identity.user_id, target):  # no block the other way
            await _tell_presence(svc, identity.user_id, target, blocked=False)
    return Response(b"", status=204)


@bp.get("/api/blocks")
async def blocked_list() -> Response:
    """Whom the caller blocks, by id."""
    identity = await current_identity()
    return json_response({"blocked": await services().store.blocked_by(identity.user_id)})
