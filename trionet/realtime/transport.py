"""The socket side of a connection, on ASGI: :class:`AsgiTransport`, and direct writes.

Direct writes: outgoing WebSocket frames go straight to hypercorn's socket.

Sending one frame through ASGI costs about 60-120 microseconds on this stack (the ASGI event,
hypercorn's stream and protocol layers, wsproto's framing, trio's socket wrapper with its
cancel scopes) and per-frame cost is what limits fan-out. Server-to-client frames are not
masked, so framing them is a few bytes of header; this module builds them and writes every
frame queued for a connection with one ``send()`` system call, falling back to trio's
``send_all`` only when the kernel's buffer is full.

It works on hypercorn's HTTP/1.1 WebSocket streams over plain TCP, reached through the ASGI
``send`` callable (``WSStream.app_send`` -> ``H11Protocol.stream_send`` ->
``TCPServer.protocol_send``), and takes hypercorn's own per-connection send lock, so its frames
never interleave with hypercorn's (pings, close). Anything else (TLS, HTTP/2, another server)
gets ``None`` from :func:`direct_transport` and uses ASGI. The same writes serve the
write-through path (:meth:`DirectTransport.write_now`, see
:class:`~trionet.realtime.registry.Conn`): a frame for a connection whose writer is idle is
written by the task that routes it, with a non-blocking ``send()``. A hypercorn (or trio) that
lacks one of the names walked is refused when the app is built, rather than falling back
unnoticed (``trionet.realtime._hypercorn_fixes.check``);
``trionet_direct_transport_connections`` counts the connections on this path. Incoming messages
and the close handshake always go through ASGI.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

import trio
from wsproto.connection import ConnectionState

from .connection import ConnectionGone
from .reads import LeanReader, post_handoff
from .registry import Unfinished, WriteNow

__all__ = [
    "DIRECT_PATH_ATTRIBUTES",
    "DIRECT_PATH_METHODS",
    "AsgiTransport",
    "DirectTransport",
    "UnfinishedWrite",
    "direct_transport",
    "raw_socket_reachable",
    "reachable_socket",
    "refuse_extensions",
    "send_now",
    "text_frame",
]

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_OPEN = ConnectionState.OPEN
_SHORT = struct.Struct("!BBH")
_LONG = struct.Struct("!BBQ")


async def _receive(receive: Receive) -> str | bytes:
    event = await receive()
    if event["type"] == "websocket.receive":
        text = event.get("text")
        if text is not None:
            return str(text)
        data = event.get("bytes")
        return bytes(data) if data is not None else b""
    raise ConnectionGone(event.get("code", 1006))


class AsgiTransport:
    """A connection's socket side, straight on the ASGI ``receive`` and ``send``."""

    __slots__ = ("_receive", "_send")

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send

    async def receive(self) -> str | bytes:
        return await _receive(self._receive)

    async def send_frames(self, payloads: Sequence[bytes], joined: bool) -> None:
        if joined:
            await self._send({"type": "websocket.send", "text": b"\n".join(payloads).decode()})
            return
        for payload in payloads:
            await self._send({"type": "websocket.send", "text": payload.decode()})

    async def close(self, code: int, reason: str = "") -> None:
        await self._send({"type": "websocket.close", "code": code, "reason": reason})


def text_frame(payload: bytes) -> bytes:
    """An unmasked, final WebSocket text frame carrying ``payload`` (RFC 6455, 5.2)."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return _SHORT.pack(0x81, 126, n) + payload
    return _LONG.pack(0x81, 127, n) + payload


#: The hypercorn methods :func:`direct_transport` walks through (each a bound method whose
#: ``__self__`` it takes), checked when an app is built
#: (``trionet.realtime._hypercorn_fixes.check``):
DIRECT_PATH_METHODS = (
    "hypercorn.protocol.ws_stream.WSStream.app_send",  # the ASGI ``send`` -> the WSStream
    "hypercorn.protocol.h11.H11Protocol.stream_send",  # WSStream.send -> the H11Protocol
    "hypercorn.trio.tcp_server.TCPServer.protocol_send",  # H11Protocol.send -> the TCPServer
)
#: ... and the attributes it reads on their instances (trio's ``SocketStream.socket._sock``
#: is checked by :func:`raw_socket_reachable`)
DIRECT_PATH_ATTRIBUTES = (
    "hypercorn.protocol.ws_stream.WSStream.send",
    "hypercorn.protocol.ws_stream.WSStream.handshake",  # refuse_extensions
    "hypercorn.protocol.ws_stream.Handshake.extensions",
    "hypercorn.trio.tcp_server.TCPServer.config",  # the read timeout, for direct reads
    "hypercorn.protocol.ws_stream.WSStream.closed",
    "hypercorn.protocol.h11.H11Protocol.send",
    "hypercorn.trio.tcp_server.TCPServer.stream",
    "hypercorn.trio.tcp_server.TCPServer.send_lock",
)


def _raw_socket(stream: trio.SocketStream) -> socket.socket | None:
    """The stdlib socket under a trio stream (trio's private ``_sock``), or None."""
    raw = getattr(getattr(stream, "socket", None), "_sock", None)
    return raw if isinstance(raw, socket.socket) else None


def raw_socket_reachable() -> bool:
    """Whether this trio keeps a stream's stdlib socket where :func:`direct_transport` looks
    (tried on a throwaway, unconnected socket)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return _raw_socket(trio.SocketStream(trio.socket.from_stdlib_socket(sock))) is sock


def reachable_socket(
    ws_stream: Any,
) -> tuple[trio.Semaphore, socket.socket, trio.SocketStream] | None:
    """A hypercorn ``WSStream``'s send lock, stdlib socket and trio stream, or None when it
    is not an HTTP/1.1 stream over plain TCP (with the send lock trionet puts in place).

    Every name walked here is listed in :data:`DIRECT_PATH_METHODS` and
    :data:`DIRECT_PATH_ATTRIBUTES`, which start-up checks: keep them in step.
    """
    protocol: Any = getattr(getattr(ws_stream, "send", None), "__self__", None)
    tcp: Any = getattr(getattr(protocol, "send", None), "__self__", None)
    stream = getattr(tcp, "stream", None)
    lock = getattr(tcp, "send_lock", None)
    if (
        type(ws_stream).__name__ != "WSStream"
        or type(protocol).__name__ != "H11Protocol"
        or not isinstance(stream, trio.SocketStream)
        or not isinstance(lock, trio.Semaphore)
        or not hasattr(ws_stream, "closed")
    ):
        return None
    raw = _raw_socket(stream)
    if raw is None:
        return None
    return lock, raw, stream


def direct_transport(receive: Receive, send: Send) -> DirectTransport | None:
    """A :class:`DirectTransport` for this connection (``send`` is hypercorn's
    ``WSStream.app_send``), or None when it cannot have one."""
    ws_stream: Any = getattr(send, "__self__", None)
    found = reachable_socket(ws_stream)
    if found is None:
        return None
    lock, raw, stream = found
    return DirectTransport(receive, send, ws_stream, stream, lock, raw)


def refuse_extensions(send: Send) -> bool:
    """Before the handshake is answered: accept none of the extensions the client offers
    (``send`` is hypercorn's ``WSStream.app_send``). hypercorn would accept
    permessage-deflate, whose inflating has no size limit in wsproto (a small frame can
    inflate to a thousand times its size before the message limit is checked), and which the
    direct path neither writes nor reads. False when the stream is not hypercorn's."""
    handshake = getattr(getattr(send, "__self__", None), "handshake", None)
    if handshake is None or not hasattr(handshake, "extensions"):
        return False
    handshake.extensions = None
    return True


def _frames(payloads: Sequence[bytes], joined: bool) -> bytes:
    """The bytes that carry ``payloads``: one frame each, or one frame of them all joined by
    newlines."""
    if len(payloads) == 1:
        return text_frame(payloads[0])
    if joined:
        return text_frame(b"\n".join(payloads))
    return b"".join([text_frame(p) for p in payloads])


class UnfinishedWrite:
    """The rest of a write begun without blocking and stopped part-way by a full kernel
    buffer, with the connection's send lock held until it is written (an
    :class:`~trionet.realtime.registry.Unfinished`)."""

    __slots__ = ("_data", "_stream", "_lock")

    def __init__(self, data: memoryview, stream: trio.SocketStream,
                 lock: trio.Semaphore) -> None:
        self._data = data
        self._stream = stream
        self._lock: trio.Semaphore | None = lock

    async def finish(self) -> None:
        try:
            with trio.CancelScope(shield=True):  # a frame that is begun is always completed
                await self._stream.send_all(self._data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            lock, self._lock = self._lock, None
            if lock is not None:
                lock.release()

    def abandon(self) -> None:
        """Release the lock without writing the rest: the connection is ending. Its socket is
        shut down first, so that nothing (hypercorn's close frame) follows half a frame."""
        lock, self._lock = self._lock, None
        if lock is not None:
            try:
                self._stream.socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            lock.release()


def send_now(data: bytes, raw: socket.socket, stream: trio.SocketStream,
             lock: trio.Semaphore) -> bool | UnfinishedWrite | None:
    """Write ``data`` with one non-blocking ``send()`` unless another write holds the
    connection's send ``lock``: True when it is written, False when the lock is held (nothing
    written), None when the socket failed, or the :class:`UnfinishedWrite` rest (the lock is
    then held until the rest is written).

    Nothing can run between the check and the send (no checkpoint), so a write that completes
    needs no lock; only a partial one takes it.
    """
    if not lock.value:
        return False
    try:
        sent = raw.send(data)
    except BlockingIOError:
        sent = 0
    except OSError:
        return None
    if sent == len(data):
        return True
    lock.acquire_nowait()
    return UnfinishedWrite(memoryview(data)[sent:], stream, lock)


class DirectTransport:
    """A connection's socket side: ASGI for receiving and closing, direct writes for frames.

    ``lock`` is hypercorn's per-connection send lock, which trionet makes a semaphore of one
    (``trionet.realtime._hypercorn_fixes``): unlike a :class:`trio.Lock` it may be released
    by another task than the one that took it, which is how a write-through that filled the
    kernel's buffer hands the rest of its frame, and the lock, to the connection's writer.
    """

    __slots__ = ("_receive", "_send", "_ws_stream", "_stream", "_lock", "_raw", "_joined",
                 "_reader")

    def __init__(
        self,
        receive: Receive,
        send: Send,
        ws_stream: Any,
        stream: trio.SocketStream,
        lock: trio.Semaphore,
        raw: socket.socket,
    ) -> None:
        self._receive = receive
        self._send = send
        self._ws_stream = ws_stream
        self._stream = stream
        self._lock = lock
        self._raw = raw
        self._joined = False
        self._reader: LeanReader | None = None

    def take_reads(self, limit: int) -> bool:
        """Before the handshake is answered: have this connection's reader read its socket
        (:mod:`trionet.realtime.reads`) instead of hypercorn, for messages of at most
        ``limit`` bytes. False when hypercorn's read loop cannot hand it over."""
        protocol: Any = self._ws_stream.send.__self__
        tcp: Any = protocol.send.__self__
        handoff = post_handoff(tcp)
        if handoff is None:
            return False
        self._reader = LeanReader(handoff, self._raw, self._pong, self._ws_stream, limit,
                                  tcp.config.read_timeout)
        return True

    def give_back_reads(self) -> None:
        """Hand the socket back to hypercorn, if this connection's reader still holds it (the
        connection's handler is ending)."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.give_back(end=False)

    @property
    def reads_directly(self) -> bool:
        """Whether the connection's reader reads its socket (rather than through ASGI)."""
        return self._reader is not None

    async def receive(self) -> str | bytes:
        reader = self._reader
        if reader is not None:
            item = await reader.next()
            if item is not None:
                return item
            self._reader = None  # handed back: hypercorn reads from here on
        return await _receive(self._receive)

    async def close(self, code: int, reason: str = "") -> None:
        await self._send({"type": "websocket.close", "code": code, "reason": reason})

    def write_through(self, joined: bool) -> WriteNow:
        """This connection's write-through (:data:`~trionet.realtime.registry.WriteNow`),
        framing several payloads the way :meth:`send_frames` does with ``joined``."""
        self._joined = joined
        return self.write_now

    def write_now(self, payloads: Sequence[bytes]) -> bool | Unfinished:
        """Write ``payloads`` without blocking, if the socket is free: True when written (or
        the connection is closing: the reader ends it), False when another write holds the
        socket (nothing written), or the :class:`Unfinished` rest when the kernel's buffer
        filled part-way (the send lock stays held until the rest is written)."""
        if self._ws_stream.closed:
            return True
        if not self._lock.value:  # busy: not even worth framing
            return False
        data = _framed(payloads[0]) if len(payloads) == 1 else _frames(payloads, self._joined)
        result = send_now(data, self._raw, self._stream, self._lock)
        return True if result is None else result  # a failed socket: the reader ends it

    async def send_frames(self, payloads: Sequence[bytes], joined: bool) -> None:
        if self._ws_stream.closed:
            return  # hypercorn saw the close; the reader ends the connection
        await self._write(_frames(payloads, joined))

    async def _pong(self, frame: bytes) -> None:
        """Write a pong, unless the close was sent (wsproto's state is then no longer OPEN;
        checked again once the send lock is held, as hypercorn's close takes it too)."""
        if self._open():
            await self._write(frame, self._open)

    def _open(self) -> bool:
        connection = getattr(self._ws_stream, "connection", None)
        return not self._ws_stream.closed and getattr(connection, "state", None) is _OPEN

    async def _write(self, data: bytes, still: Callable[[], bool] | None = None) -> None:
        """Write ``data`` under the send lock: one ``send()``, and trio's ``send_all`` for the
        rest when the kernel's buffer is full."""
        lock = self._lock
        try:
            lock.acquire_nowait()
        except trio.WouldBlock:
            await lock.acquire()
        try:
            if still is not None and not still():
                return
            try:
                sent = self._raw.send(data)
            except BlockingIOError:
                sent = 0
            except OSError:
                return  # the peer is gone; the reader ends the connection
            if sent < len(data):  # the kernel's buffer is full: wait for room, like hypercorn
                with trio.CancelScope(shield=True):
                    try:
                        await self._stream.send_all(memoryview(data)[sent:])
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        return
        finally:
            lock.release()


# The frame last built by the write-through path: a group message goes to many connections
# one after another, and is framed once for all of them.
_last_payload: bytes = b""
_last_frame: bytes = text_frame(b"")


def _framed(payload: bytes) -> bytes:
    global _last_payload, _last_frame
    if payload is not _last_payload:
        _last_frame = text_frame(payload)
        _last_payload = payload
    return _last_frame
