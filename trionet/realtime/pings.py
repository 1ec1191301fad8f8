"""WebSocket pings for every connection of a server from one task, instead of one per
connection.

hypercorn pings each WebSocket from a task of its own (``WSStream._send_pings``), which is
about 5 KB per connection while it sleeps. The pings matter: a client answers each with a pong,
and a connection that sends nothing for the read timeout (twice ``TRIONET_PING_INTERVAL`` plus
5 s) is dropped as dead. Here one :class:`PingSweep` per server pings every registered stream
each ``interval``, in slices that yield to the event loop between them, with a non-blocking
write under the connection's send lock (the same one the direct write path takes,
:mod:`.transport`):

- a connection whose send lock is held is skipped for that round: a write is under way, so
  the connection is not idle, and its client still answers the next ping well within the
  read timeout;
- a connection whose kernel buffer is full is skipped too (its client is not reading; the
  slow-consumer close and ``TCP_USER_TIMEOUT`` deal with it);
- the rare ping written part-way is finished by a task of the sweep's own nursery, holding the
  lock, so nothing else is written in the middle of it.

Streams the direct path cannot reach (TLS, HTTP/2) keep hypercorn's own ping loop
(``trionet.realtime._hypercorn_fixes`` decides, when hypercorn starts a stream's pings).
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import trio
import trio.lowlevel
from wsproto.events import Ping
from wsproto.utilities import LocalProtocolError

from .transport import UnfinishedWrite, reachable_socket

__all__ = ["SLICE", "PingSweep"]

log = logging.getLogger("trionet.pings")

#: streams pinged between two yields to the event loop
SLICE = 256


class PingSweep:
    """Pings the WebSocket streams :meth:`add` was given, every ``interval`` seconds, while
    :meth:`run` runs."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        #: stream -> (its send lock, its socket)
        self._streams: dict[Any, tuple[trio.Semaphore, socket.socket, trio.SocketStream]] = {}
        self._nursery: trio.Nursery | None = None
        #: pings written, and skipped because the connection was busy or not reading
        self.sent = 0
        self.skipped = 0

    def __len__(self) -> int:
        return len(self._streams)

    def add(self, stream: Any) -> bool:
        """Take over the pings of a hypercorn ``WSStream``; False when this sweep is not
        running or cannot reach the stream's socket (it then pings itself, as hypercorn does).
        """
        if self._nursery is None:
            return False
        found = reachable_socket(stream)
        if found is None:
            return False
        self._streams[stream] = found
        return True

    def discard(self, stream: Any) -> None:
        """Forget a stream (it closed)."""
        self._streams.pop(stream, None)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            try:
                while True:
                    await trio.sleep(self.interval)
                    await self.sweep()
            finally:
                self._nursery = None

    async def sweep(self) -> None:
        """Ping every open stream once, :data:`SLICE` at a time."""
        streams = list(self._streams.items())
        for start in range(0, len(streams), SLICE):
            for stream, (lock, raw, trio_stream) in streams[start:start + SLICE]:
                if stream.closed:
                    self._streams.pop(stream, None)
                    continue
                self._ping(stream, lock, raw, trio_stream)
            await trio.lowlevel.checkpoint()

    def _ping(self, stream: Any, lock: trio.Semaphore, raw: socket.socket,
              trio_stream: trio.SocketStream) -> None:
        if not lock.value:
            self.skipped += 1
            return
        try:
            data = stream.connection.send(Ping())
        except LocalProtocolError:  # closing: no more pings
            self._streams.pop(stream, None)
            return
        try:
            sent = raw.send(data)
        except BlockingIOError:
            self.skipped += 1
            return
        except OSError:
            self._streams.pop(stream, None)
            return
        self.sent += 1
        if sent < len(data):
            lock.acquire_nowait()
            assert self._nursery is not None
            self._nursery.start_soon(UnfinishedWrite(memoryview(data)[sent:], trio_stream,
                                                     lock).finish)

