"""An async client for trionet (trio + trio-websocket) that reconnects and misses nothing.

::

    from trionet.client import open_client

    async with open_client("ws://127.0.0.1:8000/ws", token=session_token) as client:
        ack = await client.send_private(to=2, content="hi")
        async for frame in client:
            print(frame)

It reconnects with exponential backoff and jitter, resumes from the last message and
notification id it saw (``?since=...``), and resends every frame not yet acknowledged with its
original ``client_id``, so the server stores and delivers it once.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio
import trio_websocket

from .core.ids import id_at

__all__ = ["Ack", "Client", "ClientClosed", "SessionEnded", "open_client"]

log = logging.getLogger("trionet.client")

_RESUMABLE = frozenset({"private", "group", "notification"})


class ClientClosed(Exception):
    """The client was closed, or gave up: no more frames will arrive."""


class SessionEnded(ClientClosed):
    """The server ended the session (close 4001 or a 401 handshake): log in again."""


@dataclass
class Ack:
    """The server's answer to a frame sent with a ``client_id``."""

    client_id: str
    id: int | None
    timestamp: str
    persisted: bool


@dataclass
class _Outgoing:
    frame: dict[str, Any]
    text: str
    done: trio.Event = field(default_factory=trio.Event)
    ack: Ack | None = None
    error: dict[str, Any] | None = None


class Client:
    """A reconnecting connection to ``/ws``. Use :func:`open_client`."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        jwt: str | None = None,
        headers: dict[str, str] | None = None,
        cookie_name: str = "trionet_session",
        coalesce: bool = True,
        backoff_base: float = 0.1,
        backoff_max: float = 10.0,
        queue: int = 1024,
        since: int | None = None,
        since_notification: int | None = None,
    ) -> None:
        self.url = url
        extra = dict(headers or {})
        if token is not None:
            extra["Cookie"] = f"{cookie_name}={token}"
        if jwt is not None:
            extra["Authorization"] = f"Bearer {jwt}"
        self._headers = [(k.encode(), v.encode()) for k, v in extra.items()]
        self.coalesce = coalesce
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        #: the newest message / notification id seen (resume points)
        self.last_id = since
        self.last_notification_id = since_notification
        self._pending: dict[str, _Outgoing] = {}
        self._seen: set[int] = set()
        self._seen_order: deque[int] = deque()
        self._send_in, self._frames = trio.open_memory_channel[dict[str, Any]](queue)
        self._ws: trio_websocket.WebSocketConnection | None = None
        self._connected = trio.Event()
        self._closed: BaseException | None = None
        self.connects = 0
        #: the close code of the last connection the server closed (1001: restarting)
        self.last_close_code: int | None = None

    # -- sending ----------------------------------------------------------------------------

    async def send(self, frame: dict[str, Any], *, wait: bool = True) -> Ack | None:
        """Send ``frame`` (a ``client_id`` is added); with ``wait``, return its ack.

        Unacknowledged frames are resent after a reconnect. Raises :class:`ClientClosed` if
        the client closes first, and ``ValueError`` carrying the error frame if refused.
        """
        frame = dict(frame)
        client_id = frame.setdefault("client_id", uuid.uuid4().hex)
        out = _Outgoing(frame, json.dumps(frame, separators=(",", ":")))
        self._pending[client_id] = out
        await self._write(out.text)
        if not wait:
            return None
        await out.done.wait()
        if out.error is not None:
            raise ValueError(out.error)
        if out.ack is None:
            raise ClientClosed("closed before the ack arrived")
        return out.ack

    async def send_private(self, to: int, content: str, **kw: Any) -> Ack | None:
        return await self.send({"type": "private", "to": to, "content": content}, **kw)

    async def send_group(self, group_id: int | str, content: str, **kw: Any) -> Ack | None:
        return await self.send({"type": "group", "group_id": group_id, "content": content},
                               **kw)

    async def send_broadcast(self, content: str, **kw: Any) -> Ack | None:
        return await self.send({"type": "broadcast", "content": content}, **kw)

    async def send_frame(self, frame: dict[str, Any]) -> None:
        """Send an ephemeral frame (``typing``, ``ping``...) with no ack and no resend."""
        await self._write(json.dumps(frame, separators=(",", ":")))

    async def _write(self, text: str) -> None:
        ws = self._ws
        if ws is None:
            return  # sent (again) on reconnect
        try:
            await ws.send_message(text)
        except trio_websocket.ConnectionClosed:
            pass  # the connection task reconnects and resends

    # -- receiving --------------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            try:
                yield await self._frames.receive()
            except trio.EndOfChannel:
                if isinstance(self._closed, ClientClosed):
                    raise self._closed from None
                return

    async def receive(self) -> dict[str, Any]:
        """The next frame (acks are consumed by :meth:`send`)."""
        try:
            return await self._frames.receive()
        except trio.EndOfChannel:
            raise self._closed or ClientClosed("closed") from None

    def _handle(self, frame: dict[str, Any]) -> bool:
        """Book-keeping for one incoming frame; True when it goes to the application."""
        kind = frame.get("type")
        if kind == "ack" or (kind == "error" and frame.get("client_id") in self._pending):
            out = self._pending.pop(str(frame.get("client_id")), None)
            if out is not None:
                if kind == "ack":
                    out.ack = Ack(frame["client_id"], frame.get("id"), frame.get("timestamp", ""),
                                  bool(frame.get("persisted")))
                else:
                    out.error = frame
                out.done.set()
            return kind == "error" and out is None
        fid = frame.get("id")
        if kind in _RESUMABLE and isinstance(fid, int):
            if fid in self._seen:
                return False  # a replay overlapping what arrived live
            self._seen.add(fid)
            self._seen_order.append(fid)
            if len(self._seen_order) > 10_000:
                self._seen.discard(self._seen_order.popleft())
            if frame.get("persisted") is False:
                pass  # may not be stored yet: not a resume point
            elif kind == "notification":
                if self.last_notification_id is None or frame["id"] > self.last_notification_id:
                    self.last_notification_id = frame["id"]
            elif self.last_id is None or frame["id"] > self.last_id:
                self.last_id = frame["id"]
        elif kind == "synced":
            last = frame.get("last_id")
            if isinstance(last, int) and (self.last_id is None or last > self.last_id):
                self.last_id = last
        return True

    # -- the connection loop ----------------------------------------------------------------

    def _connect_url(self) -> str:
        params = []
        if self.coalesce:
            params.append("coalesce=1")
        if self.last_id is not None:
            params.append(f"since={self.last_id}")
            if self.last_notification_id is not None:
                params.append(f"since_notification={self.last_notification_id}")
        sep = "&" if "?" in self.url else "?"
        return self.url + (sep + "&".join(params) if params else "")

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, read, and reconnect until cancelled or the session ends."""
        attempt = 0
        started = False
        try:
            while True:
                try:
                    async with trio_websocket.open_websocket_url(
                        self._connect_url(), extra_headers=self._headers,
                        message_queue_size=64,
                    ) as ws:
                        self._ws = ws
                        self.connects += 1
                        if self.last_id is None:  # from now on, resume from this moment
                            floor = id_at(time.time() - 2)
                            self.last_id = floor
                            if self.last_notification_id is None:
                                self.last_notification_id = floor
                        attempt = 0
                        for out in list(self._pending.values()):  # resend what was not acked
                            await ws.send_message(out.text)
                        if not started:
                            started = True
                            task_status.started()
                        await self._read(ws)
                except trio_websocket.ConnectionRejected as exc:
                    if exc.status_code in (401, 403):
                        raise SessionEnded(f"handshake refused: {exc.status_code}") from None
                    log.info("handshake refused (%s); retrying", exc.status_code)
                except trio_websocket.ConnectionClosed as exc:
                    code = exc.reason.code if exc.reason else None
                    self.last_close_code = code
                    if code == 4001:
                        raise SessionEnded("the session ended (4001)") from None
                    log.info("connection closed (%s); reconnecting", code)
                except (OSError, trio_websocket.HandshakeError) as exc:
                    log.info("cannot connect (%s); retrying", exc)
                finally:
                    self._ws = None
                attempt += 1
                delay = min(self.backoff_max, self.backoff_base * 2 ** min(attempt, 20))
                await trio.sleep(delay * random.uniform(0.5, 1.0))
        except ClientClosed as exc:  # the iterator raises it to the application
            self._closed = exc
            if not started:
                raise
        except BaseException:
            self._closed = ClientClosed("closed")
            raise
        finally:
            for out in self._pending.values():
                out.done.set()
            self._send_in.close()

    async def _read(self, ws: trio_websocket.WebSocketConnection) -> None:
        while True:
            message = await ws.get_message()
            if isinstance(message, bytes):
                continue
            for line in message.split("\n") if self.coalesce else (message,):
                frame = json.loads(line)
                if self._handle(frame):
                    await self._send_in.send(frame)


@asynccontextmanager
async def open_client(url: str, **kwargs: Any) -> AsyncIterator[Client]:
    """A connected :class:`Client`; it keeps reconnecting until the block ends.

    Raises :class:`SessionEnded` out of the block if the server ends the session.
    """
    client = Client(url, **kwargs)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(client.run)
            try:
                yield client
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:  # one error from the block: raise it as it is
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
