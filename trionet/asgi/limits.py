"""ASGI middleware: at most ``limit`` HTTP requests and WebSockets in progress per client
address (``TRIONET_MAX_CONNECTIONS_PER_ADDRESS``).

A slow or idle client holds its socket, and a file descriptor, for as long as its request or
WebSocket lasts; this cap keeps one address from taking them all. It is off by default: load
tests, NAT gateways and reverse proxies send many legitimate clients from one address (behind
trusted proxies, ``TRIONET_PROXY_HOPS`` makes the forwarded address the one counted).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ..core import protocol
from ..core.errors import ErrorCode
from ..metrics import Metrics

__all__ = ["AddressLimit"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class AddressLimit:
    """Counts HTTP requests and WebSockets in progress per ``scope["client"]`` address."""

    def __init__(self, inner: ASGIApp, limit: int, metrics: Metrics) -> None:
        self.inner = inner
        self.limit = limit
        self.metrics = metrics
        self._active: dict[str, int] = {}

    def active(self, address: str) -> int:
        return self._active.get(address, 0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] not in ("http", "websocket") or not client:
            await self.inner(scope, receive, send)
            return
        address = str(client[0])
        held = self._active.get(address, 0)
        if held >= self.limit:
            self.metrics.limited.labels("connections_per_address").inc()
            await _refuse(scope, receive, send, self.limit)
            return
        self._active[address] = held + 1
        try:
            await self.inner(scope, receive, send)
        finally:
            left = self._active[address] - 1
            if left:
                self._active[address] = left
            else:
                del self._active[address]


async def _refuse(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    body = protocol.encode({"error": {
        "code": ErrorCode.TOO_MANY_REQUESTS,
        "message": f"too many requests in progress from this address (the limit is {limit})",
    }})
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode()), (b"retry-after", b"1")]
    if scope["type"] == "websocket":
        event = await receive()
        if event["type"] != "websocket.connect":
            return
        await send({"type": "websocket.http.response.start", "status": 429, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
        return
    # the body is not read: the connection is closed after the response
    headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": 429, "headers": headers})
    await send({"type": "http.response.body", "body": body})
