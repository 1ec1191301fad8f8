"""Fixes applied to hypercorn when an app is built (:func:`trionet.create_app`), and the
start-up check that the hypercorn installed still has what they and the direct write path
(:mod:`trionet.realtime.transport`) reach.

**Closing a connection from a cancelled task.** hypercorn's trio ``TCPServer`` closes a
connection it will not keep alive (a response sent before its request body arrived, a
``Connection: close``) from whichever task sent the last event: often the application's own
task, which Quart is cancelling at that moment. The close's first checkpoint then raises
``Cancelled``, the socket is never closed, and the client waits forever for an answer to its
next request. Here the close is shielded, so it always completes.

**WebSocket pings.**
hypercorn (0.17, 0.18) pings each WebSocket from a task of its own, sends its first ping the
moment it accepts a connection, and its ping loop sleeps a whole interval before it notices the
connection closed, which keeps every closed connection's handler (and a graceful shutdown)
waiting up to ``websocket_ping_interval``. Served by :func:`trionet.server.serve`, a stream on
the direct path is pinged instead by the server's one :class:`~trionet.realtime.pings.PingSweep`
(no task per connection); any other keeps a loop whose first ping comes after one interval (a
client closing right after connecting is not pinged while closing; trio-websocket 0.12 fails
answering that) and which stops as soon as the stream closes.

**A send lock any task may release.** hypercorn guards each connection's writes with a
``trio.Lock``, which only the task that took it may release. Here it is a semaphore of one
(a :class:`trio.Semaphore` with ``max_value=1``: the same mutual exclusion), so that a
write-through (:mod:`trionet.realtime.transport`) that filled the kernel's buffer part-way
can hand the rest of its frame, with the lock, to the connection's writer task.

**A plain read timeout scope.** hypercorn's read loop enters a new
``trio.fail_after(read_timeout)`` (a generator-based context manager around a cancel scope)
for every read, and keeps it while the connection idles. Here each read gets a plain
``trio.CancelScope`` with the same deadline, and the data read is handled outside it as
before: the same timeout for less work per read and less memory per idle connection.

**The check.** These fixes replace private hypercorn methods, and direct writes walk private
attributes of hypercorn and trio. A release that renamed one would silently drop the fix or
the direct path, so :func:`check` looks for every one of them and, if any is missing, raises
:class:`IncompatibleHypercorn` (a :class:`~trionet.settings.SettingsError`: one line at
start-up) naming them and :data:`TESTED_HYPERCORN`.
"""

from __future__ import annotations

import dis
import functools
import importlib
import inspect
import math
import types
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import trio
from hypercorn.events import Closed, RawData
from hypercorn.protocol import ws_stream
from hypercorn.trio import tcp_server
from wsproto.events import Ping

from ..settings import SettingsError
from .reads import HANDOFF_ATTRIBUTE, READ_SCOPE_ATTRIBUTE, READS_ENDED, ReadHandoff

__all__ = ["PING_SWEEP_ATTRIBUTE", "TESTED_HYPERCORN", "IncompatibleHypercorn", "apply", "check"]

#: the hypercorn releases these fixes and the direct write path are tested with (the range
#: pyproject.toml requires; keep the two in step)
TESTED_HYPERCORN = ">=0.18,<0.19"

#: methods and class attributes the fixes replace or call
PATCHED_METHODS = (
    "hypercorn.trio.tcp_server.TCPServer.protocol_send",  # replaced: the shielded close
    "hypercorn.trio.tcp_server.TCPServer._close",
    "hypercorn.trio.tcp_server.TCPServer.__init__",  # wrapped: the send lock
    "hypercorn.trio.tcp_server.TCPServer._read_data",  # replaced: one timeout scope
    "hypercorn.protocol.ProtocolWrapper.handle",
    "hypercorn.protocol.ws_stream.WSStream.handle",  # wrapped: stops the ping loop
    "hypercorn.protocol.ws_stream.WSStream._send_pings",  # replaced: the ping loop
    "hypercorn.protocol.ws_stream.WSStream._send_wsproto_event",
    "hypercorn.trio.worker_context.WorkerContext.sleep",
    "hypercorn.config.Config.websocket_ping_interval",
)
#: attributes the fixes read on instances (set by ``__init__`` or another method)
PATCHED_ATTRIBUTES = (
    "hypercorn.trio.tcp_server.TCPServer.protocol",
    "hypercorn.protocol.ws_stream.WSStream.closed",
    "hypercorn.protocol.ws_stream.WSStream.config",
    "hypercorn.protocol.ws_stream.WSStream.context",
    "hypercorn.protocol.ws_stream.WSStream.connection",  # the ping sweep frames with it
)

# hypercorn's own methods, kept by apply()
_original_handle: Any = None
_original_protocol_send: Any = None
_original_tcp_init: Any = None


class IncompatibleHypercorn(SettingsError):
    """The installed hypercorn (or trio) lacks names trionet patches or reads."""

    def __init__(self, missing: Sequence[str]) -> None:
        super().__init__(
            "hypercorn",
            f"version {_version('hypercorn')} (trio {_version('trio')}) lacks"
            f" {', '.join(missing)}, which trionet patches or reads; trionet is tested with"
            f" hypercorn{TESTED_HYPERCORN} (pip install 'hypercorn{TESTED_HYPERCORN}')",
        )
        self.missing = tuple(missing)


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"


def _class_of(dotted: str) -> tuple[type | None, str]:
    """``("a.b.Class.name")`` -> (the class, or None when it is gone, ``"name"``)."""
    module_name, class_name, name = dotted.rsplit(".", 2)
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None, name
    cls = getattr(module, class_name, None)
    return (cls if isinstance(cls, type) else None), name


def _has_method(dotted: str) -> bool:
    cls, name = _class_of(dotted)
    return cls is not None and hasattr(cls, name)


def _sets_attribute(dotted: str) -> bool:
    """Whether the class has the attribute, or one of its methods assigns ``self.<name>``."""
    cls, name = _class_of(dotted)
    if cls is None:
        return False
    if hasattr(cls, name):
        return True
    for klass in cls.__mro__:
        for value in vars(klass).values():
            func = inspect.unwrap(getattr(value, "__func__", value))
            code = getattr(func, "__code__", None)
            if isinstance(code, types.CodeType) and any(
                op.opname == "STORE_ATTR" and op.argval == name
                for op in dis.get_instructions(code)
            ):
                return True
    return False


def check() -> None:
    """Raise :class:`IncompatibleHypercorn` naming each method the fixes replace or call, and
    each attribute they or :func:`~trionet.realtime.transport.direct_transport` reach, that the
    installed hypercorn (or trio) lacks. Run before :func:`apply` (which puts its own methods
    in place of the ones it replaces)."""
    from . import transport

    missing = [name for name in (*PATCHED_METHODS, *transport.DIRECT_PATH_METHODS)
               if not _has_method(name)]
    missing += [name for name in (*PATCHED_ATTRIBUTES, *transport.DIRECT_PATH_ATTRIBUTES)
                if not _sets_attribute(name)]
    if not transport.raw_socket_reachable():
        missing.append("trio.SocketStream.socket._sock")
    if missing:
        raise IncompatibleHypercorn(list(dict.fromkeys(missing)))


async def _protocol_send(self: Any, event: Any) -> None:
    if isinstance(event, Closed):
        with trio.CancelScope(shield=True):  # a close that is started always completes
            await self._close()
            await self.protocol.handle(Closed())
    else:
        await _original_protocol_send(self, event)


_MAX_RECV = getattr(tcp_server, "MAX_RECV", 2**16)


async def _read_data(self: Any) -> None:
    timeout = self.config.read_timeout or math.inf
    stream = self.stream
    while True:
        handoff = self.trionet_handoff
        if handoff is not None:
            # the WebSocket's own reader reads the socket until it gives it back
            self.trionet_handoff = None
            self.trionet_read_scope = None
            data, end = await handoff.park()
            if data:
                await self.protocol.handle(RawData(bytes(data)))
            if end:
                break
            continue
        # a plain cancel scope per read (not trio.fail_after's generator and its frames);
        # what was read is handled outside it, so a deadline passing just as data arrives
        # never cancels its handling
        with trio.CancelScope(deadline=trio.current_time() + timeout) as scope:
            self.trionet_read_scope = scope  # a handoff cancels it (nothing read is lost)
            try:
                data = await stream.receive_some(_MAX_RECV)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                break
        if scope.cancelled_caught:
            if self.trionet_handoff is not None:
                continue  # cancelled for a handoff
            break  # the peer was silent for the read timeout
        if self.trionet_handoff is not None:
            self.trionet_handoff.late = True  # posted while this read waited: read here
        await self.protocol.handle(RawData(bytes(data)))
        if data == b"":
            break
    handoff = self.trionet_handoff
    # before any checkpoint: a handoff posted from now on is refused (the handler then reads
    # the queued disconnect through ASGI), so no reader waits for a loop that has ended
    self.trionet_handoff = READS_ENDED
    if isinstance(handoff, ReadHandoff):  # posted, and the stream ended before it was taken
        handoff.late = True
        handoff.give_back(b"", True)  # wakes a reader waiting for the loop to park
    await self.protocol.handle(Closed())


def _tcp_init(self: Any, *args: Any, **kwargs: Any) -> None:
    _original_tcp_init(self, *args, **kwargs)
    if isinstance(getattr(self, "send_lock", None), trio.Lock):
        setattr(self, "send_lock", trio.Semaphore(1, max_value=1))  # noqa: B010


#: the attribute of a hypercorn ``Config`` naming the server's
#: :class:`~trionet.realtime.pings.PingSweep` (set by :func:`trionet.server.serve`)
PING_SWEEP_ATTRIBUTE = "trionet_ping_sweep"


async def _send_pings(self: Any) -> None:
    sweep = getattr(self.config, PING_SWEEP_ATTRIBUTE, None)
    if sweep is not None and sweep.add(self):
        return  # the server's one ping task pings this stream: no task of its own
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
            sweep = getattr(self.config, PING_SWEEP_ATTRIBUTE, None)
            if sweep is not None:
                sweep.discard(self)


def apply() -> None:
    """Patch hypercorn's ``WSStream`` and ``TCPServer`` once (a second call does nothing)."""
    global _original_handle, _original_protocol_send, _original_tcp_init
    if getattr(ws_stream.WSStream, "_trionet_patched", False):
        return
    _original_tcp_init = tcp_server.TCPServer.__init__
    # the check reads the original through __wrapped__ (it sets the attributes)
    wrapped_init = functools.wraps(_original_tcp_init)(_tcp_init)
    setattr(tcp_server.TCPServer, "__init__", wrapped_init)  # noqa: B010
    _original_handle = ws_stream.WSStream.handle
    _original_protocol_send = tcp_server.TCPServer.protocol_send
    setattr(tcp_server.TCPServer, "protocol_send", _protocol_send)  # noqa: B010
    setattr(tcp_server.TCPServer, "_read_data", _read_data)  # noqa: B010
    setattr(tcp_server.TCPServer, HANDOFF_ATTRIBUTE, None)  # see trionet.realtime.reads
    setattr(tcp_server.TCPServer, READ_SCOPE_ATTRIBUTE, None)
    setattr(ws_stream.WSStream, "_send_pings", _send_pings)  # noqa: B010
    # wrapped, so that the check still finds what the original assigns (``handshake``)
    setattr(ws_stream.WSStream, "handle", functools.wraps(_original_handle)(_handle))  # noqa: B010
    setattr(ws_stream.WSStream, "_trionet_patched", True)  # noqa: B010
