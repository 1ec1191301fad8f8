"""``GET /ws``: check the Origin, authenticate, accept, run the connection."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, websocket

from ..app import error_response
from ..connection import serve_connection
from ..errors import ErrorCode
from .common import handshake_of, origin_allowed, services

__all__ = ["bp"]

bp = Blueprint("ws", __name__)


@bp.websocket("/ws")
async def ws_endpoint() -> Response | None:
    svc = services()
    origin = websocket.headers.get("Origin")
    if origin is not None and not origin_allowed(
        origin, svc.settings.allowed_origins, websocket.scheme, websocket.headers.get("Host")
    ):
        return error_response(403, ErrorCode.FORBIDDEN, f"origin {origin!r} is not allowed")
    if svc.draining:
        return error_response(503, ErrorCode.UNAVAILABLE, "server is shutting down")
    identity = await svc.resolver.resolve(handshake_of(websocket))
    if identity is None:
        return error_response(401, ErrorCode.UNAUTHORIZED, "authentication required")
    coalesce = websocket.args.get("coalesce") == "1"
    ws: Any = websocket._get_current_object()  # type: ignore[attr-defined]
    await ws.accept()
    await serve_connection(svc, ws, identity, coalesce=coalesce)
    return None
