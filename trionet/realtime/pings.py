"""WebSocket pings for every connection of a server from one task, instead of one per
connection.

hypercorn pings each WebSocket from a task of its own (``WSStream._send_pings``), which is
about 5 KB per connection while it sleeps. The pings matter: a client answers each with a pong,
and a connection that sends nothing for the read timeout (twice ``TRIONET_PING_INTERVAL`` plus
5 s) is dropped as dead. Here one :class:`PingSweep` per server pings every registered stream
each ``interval``, in slices that yield to the event loop between them, with a non-blocking
write under the connection's send lock (the same one the direct write path takes,
:mod:`.transport`):

- a stream is first pinged once at least half an interval has passed since it connected (a
  client closing right after connecting is not pinged while closing);
- a connection whose send lock is held, or whose kernel buffer is full, is not written to by
  the sweep: a task of the sweep's own nursery waits for the lock and writes that ping the way
  hypercorn's loop did (at most one such task per stream), so a client that reads a heavy
  stream still gets every round's ping;
- the rare ping written part-way is finished by a task of the sweep's nursery, holding the
  lock, so nothing else is written in the middle of it.

Streams the direct path cannot reach (TLS, HTTP/2) keep hypercorn's own ping loop
(``trionet.realtime._hypercorn_fixes`` decides, when hypercorn starts a stream's pings).
"""

from __future__ import annotations

import socket
from typing import Any

import trio
import trio.lowlevel
from wsproto.events import Ping
from wsproto.utilities import LocalProtocolError

from .transport import reachable_socket, send_now

__all__ = ["SLICE", "PingSweep"]

#: streams pinged between two yields to the event loop
SLICE = 256


class PingSweep:
    """Pings the WebSocket streams :meth:`add` was given, every ``interval`` seconds, while
    :meth:`run` runs."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        #: stream -> (its send lock, its socket, its trio stream, when it was added)
        self._streams: dict[Any, tuple[trio.Semaphore, socket.socket, trio.SocketStream,
                                       float]] = {}
        #: streams whose ping waits for their send lock
        self._waiting: set[Any] = set()
        self._nursery: trio.Nursery | None = None

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
        self._streams[stream] = (*found, trio.current_time())
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
        newest = trio.current_time() - self.interval / 2
        streams = list(self._streams.items())
        for start in range(0, len(streams), SLICE):
            for stream, (lock, raw, trio_stream, added) in streams[start:start + SLICE]:
                if stream.closed:
                    self._streams.pop(stream, None)
                elif added <= newest:
                    self._ping(stream, lock, raw, trio_stream)
            await trio.lowlevel.checkpoint()

    def _ping(self, stream: Any, lock: trio.Semaphore, raw: socket.socket,
              trio_stream: trio.SocketStream) -> None:
        if not lock.value:
            self._ping_later(stream, lock, trio_stream)
            return
        try:
            data = stream.connection.send(Ping())
        except LocalProtocolError:  # closing: no more pings
            self._streams.pop(stream, None)
            return
        result = send_now(data, raw, trio_stream, lock)
        if result is None:
            self._streams.pop(stream, None)
        elif not isinstance(result, bool):  # the rest, or all of it, once the kernel takes it
            assert self._nursery is not None
            self._nursery.start_soon(result.finish)

    def _ping_later(self, stream: Any, lock: trio.Semaphore,
                    trio_stream: trio.SocketStream) -> None:
        if stream in self._waiting or self._nursery is None:
            return
        self._waiting.add(stream)
        self._nursery.start_soon(self._ping_when_free, stream, lock, trio_stream)

    async def _ping_when_free(self, stream: Any, lock: trio.Semaphore,
                              trio_stream: trio.SocketStream) -> None:
        try:
            async with lock:
                if stream.closed:
                    return
                try:
                    data = stream.connection.send(Ping())
                except LocalProtocolError:
                    return
                with trio.CancelScope(shield=True):  # a frame that is begun is completed
                    await trio_stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            self._waiting.discard(stream)
