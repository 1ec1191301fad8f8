"""``GET /ws``: check the Origin, authenticate, accept, run the connection.

Served as a plain ASGI endpoint in front of the Quart app (:class:`WebSocketEndpoint`): every
WebSocket message would otherwise pass through Quart's request context, signals and an extra
channel, and per-frame cost is what limits a real-time server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, cast
from urllib.parse import parse_qsl

from werkzeug.datastructures import Headers
from werkzeug.http import parse_cookie

from ..core import protocol
from ..core.errors import ErrorCode, StoreUnavailable
from ..interfaces import Handshake, Identity
from ..realtime.connection import Transport, serve_connection
from ..realtime.transport import AsgiTransport, direct_transport, refuse_extensions
from ..services import Services
from .common import origin_allowed

__all__ = ["DIRECT_READS", "DIRECT_WRITES", "WebSocketEndpoint"]

#: write outgoing frames straight to hypercorn's socket when the connection allows it
#: (see trionet/realtime/transport.py, ``direct_transport``; such connections are counted in
#: ``trionet_direct_transport_connections``); False sends every frame through ASGI
DIRECT_WRITES = True
#: on the direct path, the connection's reader reads its socket itself once the handshake is
#: answered (see trionet/realtime/reads.py); False reads every message through ASGI
DIRECT_READS = True

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class WebSocketEndpoint:
    """ASGI middleware: serves ``path`` (``/ws``) itself and passes everything else on."""

    def __init__(self, inner: ASGIApp, services: Services, path: str = "/ws") -> None:
        self.inner = inner
        self.services = services
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == self.path:
            await self.serve(scope, receive, send)
        else:
            await self.inner(scope, receive, send)

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        event = await receive()
        if event["type"] != "websocket.connect":
            return
        svc = self.services
        headers = Headers([(k.decode("latin-1"), v.decode("latin-1"))
                           for k, v in scope.get("headers", ())])
        origin = headers.get("Origin")
        scheme = str(scope.get("scheme", "ws"))
        if origin is not None and not origin_allowed(
            origin, svc.settings.allowed_origins, scheme, headers.get("Host")
        ):
            await _reject(send, 403, ErrorCode.FORBIDDEN, f"origin {origin!r} is not allowed")
            return
        if svc.draining:
            await _reject(send, 503, ErrorCode.UNAVAILABLE, "server is shutting down")
            return
        client = scope.get("client")
        handshake = Handshake(
            headers=cast(Mapping[str, str], headers),
            cookies=parse_cookie(headers.get("Cookie", "")),
            remote_addr=client[0] if client else None,
        )
        try:
            identity: Identity | None = await svc.resolver.resolve(handshake)
        except StoreUnavailable:
            await _reject(send, 503, ErrorCode.UNAVAILABLE,
                          "the database is busy or unavailable; try again shortly")
            return
        if identity is None:
            await _reject(send, 401, ErrorCode.UNAUTHORIZED, "authentication required")
            return
        params = _query(scope.get("query_string", b""))
        try:
            since = _id_param(params, "since")
            since_notification = _id_param(params, "since_notification")
        except ValueError as exc:
            await _reject(send, 400, ErrorCode.BAD_REQUEST, str(exc))
            return
        coalesce = params.get("coalesce") == "1"
        # nothing of the handshake is kept for the connection's lifetime
        del headers, handshake, params, scope, event
        limit = svc.settings.max_connections_per_user
        if not svc.registry.reserve(identity.user_id, limit):
            svc.metrics.limited.labels("connections_per_user").inc()
            await _reject(send, 429, ErrorCode.TOO_MANY_REQUESTS,
                          f"this user has {limit} connections open already (the limit);"
                          " close one first")
            return
        direct = direct_transport(receive, send) if DIRECT_WRITES else None
        try:
            refuse_extensions(send)
            if direct is not None and DIRECT_READS:
                direct.take_reads(svc.settings.max_message_bytes)
            transport: Transport = direct or AsgiTransport(receive, send)
            if direct is not None:
                svc.metrics.direct_connections.inc()

            async def accept() -> None:
                await send({"type": "websocket.accept"})

            try:
                # the handshake is answered once the connection can be reached from every
                # node (see serve_connection)
                await serve_connection(svc, transport, identity,
                                       coalesce=coalesce, since=since,
                                       since_notification=since_notification
                                       if since is not None else None, accept=accept)
            finally:
                if direct is not None:
                    svc.metrics.direct_connections.dec()
        finally:
            if direct is not None:
                direct.give_back_reads()
            svc.registry.release(identity.user_id)


def _id_param(params: dict[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 16 or int(raw) >= 2**53:
        raise ValueError(f"query parameter {name!r} must be a message id (0 or more)")
    return int(raw)


def _query(raw: bytes) -> dict[str, str]:
    return dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))


async def _reject(send: Send, status: int, code: str, message: str) -> None:
    body = protocol.encode({"error": {"code": code, "message": message}})
    await send({
        "type": "websocket.http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "websocket.http.response.body", "body": body})
