"""ASGI middleware: a response never overtakes the request body it answers.

An early answer (a 401 before the body was read, a 404, a 415) used to leave a kept-alive
connection with the rest of the body still in flight. hypercorn then decided to close the
connection, but did so from the application's task as that task was being cancelled, so the
socket was never closed and the next request on it was never answered: the client hung until
it gave up (see ``_hypercorn_fixes`` for that half of the fix).

Here the response start waits until the request body has arrived (Quart reads it in the
background anyway), at most ``timeout`` seconds; a body that is declared larger than
``max_bytes`` or is still arriving after that gets ``Connection: close`` on the response
instead, so the client knows not to reuse the connection.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import trio

__all__ = ["BodyBeforeResponse"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def declared_length(scope: Scope) -> int | None:
    """The request's ``Content-Length``; None when it has none (or a chunked body)."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def has_body(scope: Scope) -> bool:
    """Whether the request carries a body that may still be arriving."""
    for name, value in scope.get("headers", ()):
        lowered = name.lower()
        if lowered == b"content-length":
            return value.strip() not in (b"0", b"")
        if lowered == b"transfer-encoding":
            return True
    return False


class BodyBeforeResponse:
    """Holds each HTTP response start until its request body is in (bounded in time)."""

    def __init__(self, inner: ASGIApp, *, timeout: float, max_bytes: int) -> None:
        self.inner = inner
        self.timeout = timeout
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not has_body(scope):
            await self.inner(scope, receive, send)
            return
        received = trio.Event()
        length = declared_length(scope)
        too_big = length is not None and length > self.max_bytes

        async def watched_receive() -> Message:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                received.set()
            return message

        async def held_send(message: Message) -> None:
            if message["type"] == "http.response.start" and not received.is_set():
                if not too_big:
                    with trio.move_on_after(self.timeout):
                        await received.wait()
                if not received.is_set():
                    message = {**message, "headers": [*message.get("headers", ()),
                                                      (b"connection", b"close")]}
            await send(message)

        await self.inner(scope, watched_receive, held_send)
