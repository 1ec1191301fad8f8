"""Fixes applied to hypercorn's WebSocket pings when trionet is imported.

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
from hypercorn.protocol import ws_stream
from wsproto.events import Ping

__all__ = ["apply"]

_original_handle = ws_stream.WSStream.handle


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
    """Patch hypercorn's ``WSStream`` once."""
    if getattr(ws_stream.WSStream, "_trionet_patched", False):
        return
    setattr(ws_stream.WSStream, "_send_pings", _send_pings)  # noqa: B010
    setattr(ws_stream.WSStream, "handle", _handle)  # noqa: B010
    setattr(ws_stream.WSStream, "_trionet_patched", True)  # noqa: B010
