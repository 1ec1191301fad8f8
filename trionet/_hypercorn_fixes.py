"""Fixes applied to hypercorn when trionet is imported.

**Closing a connection from a cancelled task.** hypercorn's trio ``TCPServer`` closes a
connection it will not keep alive (a response sent before its request body arrived, a
``Connection: close``) from whichever task sent the last event: often the application's own
task, which Quart is cancelling at that moment. The close's first checkpoint then raises
``Cancelled``, the socket is never closed, and the client waits forever for an answer to its
next request. Here the close is shielded, so it always completes.

**WebSocket pings.**
hypercorn (0.17, 0.18) sends its first ping the moment it accepts a connection, and its
ping loop sleeps a whole interval before it notices the connection closed, which keeps every
closed connection's handler (and a graceful shutdown) waiting up to ``websocket_ping_interval``.
Here the first ping comes after one interval (a client closing right after connecting is not
pinged while closing; trio-websocket 0.12 fails answering that), and the loop stops as soon as
the stream closes.
"""

from __future__ import annotations

from typing import Any

import trio
from hypercorn.events import Closed
from hypercorn.protocol import ws_stream
from hypercorn.trio import tcp_server
from wsproto.events import Ping

__all__ = ["apply"]

_original_handle = ws_stream.WSStream.handle
_original_protocol_send = tcp_server.TCPServer.protocol_send


async def _protocol_send(self: Any, event: Any) -> None:
    if isinstance(event, Closed):
        with trio.CancelScope(shield=True):  # a close that is started always completes
            await self._close()
            await self.protocol.handle(Closed())
    else:
        await _original_protocol_send(self, event)


async def _send_pings(self: Any) -> None:
    scope = self._trionet_ping_scope = trio.CancelScope()
    with scope:
        while not self.closed:
            await self.context.sleep(self.config.websocket_ping_interval)
            if self.closed:
                break
            await self._send_wsproto_event(Ping())


async def _handle(self: Any, event: Any) -> None:
    try:
        await _original_handle(self, event)
    finally:
        if self.closed:
            scope = getattr(self, "_trionet_ping_scope", None)
            if scope is not None:
                scope.cancel()


def apply() -> None:
    """Patch hypercorn's ``WSStream`` and ``TCPServer`` once."""
    if getattr(ws_stream.WSStream, "_trionet_patched", False):
        return
    setattr(tcp_server.TCPServer, "protocol_send", _protocol_send)  # noqa: B010
    setattr(ws_stream.WSStream, "_send_pings", _send_pings)  # noqa: B010
    setattr(ws_stream.WSStream, "handle", _handle)  # noqa: B010
    setattr(ws_stream.WSStream, "_trionet_patched", True)  # noqa: B010
