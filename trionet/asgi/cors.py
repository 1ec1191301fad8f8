"""ASGI middleware: CORS for the HTTP API (``TRIONET_CORS_ORIGINS``).

A web app on another origin (``https://app.example`` calling ``https://chat.example``) may call
the user-facing HTTP API with credentials: a preflight from a listed origin is answered here
(204, the methods and headers the API takes), and every answer to a listed origin carries
``Access-Control-Allow-Origin: <that origin>`` with ``Access-Control-Allow-Credentials: true``.
Never ``*``: a wildcard cannot go with credentials, and the setting refuses it. Origins not
listed get no CORS headers at all, so their browsers keep the answers from them. The server
API (``/api/server/...``, for the backend with its key) and ``/ws`` (which checks ``Origin``
against ``TRIONET_ALLOWED_ORIGINS``) get none either. The decisions are plain functions
(:func:`cors_headers`, :func:`preflight_headers`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

__all__ = ["ALLOWED_HEADERS", "ALLOWED_METHODS", "Cors", "applies", "cors_headers",
           "preflight_headers"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE"
ALLOWED_HEADERS = "Authorization, Content-Type"
#: seconds a browser may cache a preflight answer
MAX_AGE = 600


def applies(path: str) -> bool:
    """Is ``path`` part of the API CORS opens (the user-facing HTTP API)?"""
    return path.startswith("/api/") and not path.startswith("/api/server/")


def cors_headers(origin: str | None, allowed: frozenset[str]) -> list[tuple[bytes, bytes]]:
    """The headers an answer to ``origin`` carries (none for an origin not listed)."""
    if origin is None or origin.rstrip("/").lower() not in allowed:
        return []
    return [(b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-allow-credentials", b"true"),
            (b"access-control-expose-headers", b"Retry-After")]


def preflight_headers(origin: str | None, allowed: frozenset[str]) -> list[tuple[bytes, bytes]]:
    """The headers of a preflight answer (none for an origin not listed)."""
    found = cors_headers(origin, allowed)
    if not found:
        return []
    return [*found, (b"access-control-allow-methods", ALLOWED_METHODS.encode()),
            (b"access-control-allow-headers", ALLOWED_HEADERS.encode()),
            (b"access-control-max-age", str(MAX_AGE).encode()), (b"vary", b"Origin")]


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


class Cors:
    """CORS headers on the HTTP API for the origins in ``origins``."""

    def __init__(self, inner: ASGIApp, origins: Iterable[str]) -> None:
        self.inner = inner
        self.allowed = frozenset(o.rstrip("/").lower() for o in origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not applies(scope.get("path", "")):
            await self.inner(scope, receive, send)
            return
        origin = _header(scope, b"origin")
        if (scope.get("method") == "OPTIONS" and origin is not None
                and _header(scope, b"access-control-request-method") is not None):
            headers = preflight_headers(origin, self.allowed)
            await send({"type": "http.response.start", "status": 204 if headers else 403,
                        "headers": headers or [(b"vary", b"Origin")]})
            await send({"type": "http.response.body", "body": b""})
            return
        extra = [*cors_headers(origin, self.allowed), (b"vary", b"Origin")]

        async def send_with_cors(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self.inner(scope, receive, send_with_cors)
