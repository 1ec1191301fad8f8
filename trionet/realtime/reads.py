"""Reading a WebSocket's frames in the connection's own reader task.

hypercorn reads each connection in a task of its own and passes every message through h11's
pass-through, wsproto's frame decoder, its own message buffer and a memory channel to the
application's task: about 40% of a private message's cost on one core, and a task switch per
message. Once a WebSocket on the direct path (:mod:`trionet.realtime.transport`) is accepted,
hypercorn's read loop instead parks (``trionet.realtime._hypercorn_fixes``) and the
connection's reader reads the socket itself: :class:`LeanReader` waits until the socket is
readable, reads what is there, and takes the messages out of it with
:func:`trionet.core.wsframes.parse`.

Everything else goes back to hypercorn: at the first frame that is not a plain, final text or
binary message or a ping (a close, a fragment, a protocol error, a message over the limit,
text that is not UTF-8), at the end of the stream, at the read timeout, and when the reader
stops for any reason, the bytes read and not used are handed back, with hypercorn's read loop.
wsproto never saw a byte of what was read here, so it resumes at a frame boundary and does
what it always did: answers the close, reassembles the fragments, closes with the right code.
From then on the connection reads through ASGI as before.
"""

from __future__ import annotations

import math
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from ..core.wsframes import HAND_BACK, MORE, Ping, parse, pong_frame

__all__ = ["HANDOFF_ATTRIBUTE", "READS_ENDED", "READ_SCOPE_ATTRIBUTE", "LeanReader", "ReadHandoff",
           "post_handoff"]

#: the ``TCPServer`` attribute a :class:`ReadHandoff` is posted on for its read loop
HANDOFF_ATTRIBUTE = "trionet_handoff"
#: what the read loop leaves in :data:`HANDOFF_ATTRIBUTE` once it has ended (a handoff posted
#: after that is refused)
READS_ENDED: Any = object()
#: the ``TCPServer`` attribute holding the cancel scope of the read its loop waits in
READ_SCOPE_ATTRIBUTE = "trionet_read_scope"
#: bytes asked of the kernel per read (hypercorn's own ``MAX_RECV``)
RECV_BYTES = 2**16
#: most messages parsed from the bytes read before the reader takes them (the rest of a read
#: waits, as frames, in its buffer: a read's worth of tiny frames is not a list of thousands)
MAX_ITEMS = 64
_NONE: list[str | bytes] = []  # shared, never appended to


_POSTED, _PARKED, _GIVEN_BACK = 0, 1, 2


class ReadHandoff:
    """hypercorn's read loop parked, and what it is given back.

    Posted on the ``TCPServer`` before the handshake is answered, it is taken by the read loop
    at the top of its next iteration: :meth:`park` waits until :meth:`give_back`, then returns
    the bytes to feed to hypercorn and whether the stream has ended. ``late`` is set when the
    loop read data after it was posted (the lean reader then never starts).

    One task waits on it at a time (the reader until the loop parks, then the loop until the
    reader gives back), parked with trio's low-level primitives: no events, no parking lots,
    a few bytes per connection.
    """

    __slots__ = ("_state", "_waiter", "_data", "_end", "late")

    def __init__(self) -> None:
        self._state = _POSTED
        self._waiter: trio.lowlevel.Task | None = None
        self._data = b""
        self._end = False
        self.late = False

    async def park(self) -> tuple[bytes, bool]:
        """The read loop's side: wait for the socket to be given back."""
        if self._state == _GIVEN_BACK:
            await trio.lowlevel.checkpoint()
        else:
            self._state = _PARKED
            self._wake()  # the reader, if it waits for this
            await self._wait()
        return self._data, self._end

    async def parked(self) -> None:
        """Wait until the read loop has parked (or the socket was given back)."""
        if self._state == _POSTED:
            await self._wait()

    def give_back(self, data: bytes, end: bool) -> None:
        """Hand the socket back to hypercorn (the first call counts): ``data`` was read and not
        used; ``end``: the stream ended (EOF, a failed socket, or the read timeout)."""
        if self._state != _GIVEN_BACK:
            self._data = data
            self._end = end
            self._state = _GIVEN_BACK
            self._wake()

    @property
    def given_back(self) -> bool:
        return self._state == _GIVEN_BACK

    async def _wait(self) -> None:
        self._waiter = trio.lowlevel.current_task()

        def abort(_: object) -> trio.lowlevel.Abort:
            self._waiter = None
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def _wake(self) -> None:
        task, self._waiter = self._waiter, None
        if task is not None:
            trio.lowlevel.reschedule(task)


def post_handoff(tcp: Any) -> ReadHandoff | None:
    """Post a handoff on hypercorn's ``TCPServer`` ``tcp`` and stop the read it waits in
    (None when the read loop is not trionet's, one is posted already, or the loop has ended:
    the peer left during the handshake)."""
    if not hasattr(type(tcp), HANDOFF_ATTRIBUTE) or getattr(tcp, HANDOFF_ATTRIBUTE) is not None:
        return None
    handoff = ReadHandoff()
    setattr(tcp, HANDOFF_ATTRIBUTE, handoff)
    scope = getattr(tcp, READ_SCOPE_ATTRIBUTE, None)
    if isinstance(scope, trio.CancelScope):
        # a read cancelled while it waits has taken nothing from the socket (trio's recv
        # checkpoints before it reads, and a read that completed returns its data)
        scope.cancel()
    return handoff


Write = Callable[[bytes], Awaitable[None]]


class LeanReader:
    """A connection's messages, read from its socket by the task that calls :meth:`next`."""

    __slots__ = ("_handoff", "_raw", "_write", "_ws_stream", "_limit", "_timeout", "_buffer",
                 "_items", "_next", "_more", "_hot", "_ready", "_waited")

    def __init__(
        self,
        handoff: ReadHandoff,
        raw: socket.socket,
        write: Write,
        ws_stream: Any,
        limit: int,
        timeout: float | None,
    ) -> None:
        self._handoff = handoff
        self._raw = raw
        self._write = write  # writes a pong under the send lock, unless the close was sent
        self._ws_stream = ws_stream  # hypercorn's WSStream (``closed`` once it saw the close)
        self._limit = limit
        self._timeout = timeout or math.inf
        self._buffer = b""
        self._items: list[str | bytes] = _NONE  # parsed, taken by next() from _next on
        self._next = 0
        self._more = False  # the buffer holds whole frames not parsed yet
        self._hot = 0
        self._ready = False
        self._waited = False

    async def next(self) -> str | bytes | None:
        """The next message, or None once the socket is handed back (read through ASGI
        from then on)."""
        handoff = self._handoff
        try:
            while self._next == len(self._items):
                if handoff.given_back:
                    return None
                await self._fill()
            item = self._items[self._next]
            self._next += 1
            return item
        except BaseException:
            self.give_back(end=False)  # cancelled, or a failure: hypercorn reads on
            raise

    def give_back(self, end: bool) -> None:
        """Hand the socket, with whatever was read and not used, back to hypercorn (and drop
        messages parsed and not yet taken: only when the connection is ending)."""
        data, self._buffer = self._buffer, b""
        self._items, self._next = _NONE, 0
        self._handoff.give_back(data, end)

    async def _fill(self) -> None:
        handoff = self._handoff
        if not self._ready:
            await handoff.parked()
            self._ready = True
            if handoff.late or handoff.given_back:
                # hypercorn read the first frames (it reads on), or its loop ended first
                self.give_back(end=False)
                return
        if self._more:  # frames left from the last read: no read until they are taken
            self._more = False
            buffer = self._buffer
            waited = False
        else:
            self._waited = False
            data = await self._recv()
            if data is None:
                return  # given back: the end of the stream
            buffer = self._buffer + data if self._buffer else data
            waited = self._waited
        if not waited:
            # what was read did not have to be waited for (a client sending as fast as it
            # can): let every other task run before handing out its messages
            await trio.lowlevel.checkpoint()
        items, offset, why = parse(buffer, self._limit, MAX_ITEMS)
        self._buffer = buffer[offset:] if offset < len(buffer) else b""
        self._more = why is MORE
        taken: list[str | bytes] = []
        for item in items:
            if type(item) is Ping:
                await self._write(pong_frame(item))  # unless the close was sent
            else:
                taken.append(item)
        self._items, self._next = taken, 0
        if why is HAND_BACK:
            # the rest is wsproto's; what was parsed before it is still returned first
            data, self._buffer = self._buffer, b""
            handoff.give_back(data, False)

    async def _recv(self) -> bytes | None:
        """Bytes from the socket; None when it ended (given back with the end).

        The socket is read before waiting only when the last read suggests more is waiting (it
        filled its buffer, or data was waiting the time before): a read that finds nothing
        costs a system call and an exception, and a client that waits for an answer before
        it sends again (most of them) has nothing waiting.
        """
        raw = self._raw
        data: bytes | None = None
        if self._hot:
            try:
                data = raw.recv(RECV_BYTES)
            except BlockingIOError:
                pass
            except OSError:
                self.give_back(end=True)
                return None
        if data is None:
            self._waited = True
            with trio.CancelScope(deadline=trio.current_time() + self._timeout) as scope:
                try:
                    await trio.lowlevel.wait_readable(raw)
                except (trio.ClosedResourceError, OSError):
                    self.give_back(end=True)
                    return None
            if scope.cancelled_caught:
                self.give_back(end=True)  # silent for the read timeout
                return None
            try:
                data = raw.recv(RECV_BYTES)
            except BlockingIOError:
                return b""  # woken without data: wait again
            except OSError:
                self.give_back(end=True)
                return None
            self._hot = 1 if len(data) == RECV_BYTES else 0
        else:
            self._hot += 1
        if not data:
            self.give_back(end=True)  # EOF
            return None
        return data
