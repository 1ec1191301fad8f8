#!/usr/bin/env python3
"""A reference peer for trionet's load tests: the same JSON protocol on `websockets` + uvloop.

It speaks what ``scripts/loadtest.py`` uses of trionet, so one load script measures both:

- ``GET /ws`` with ``Authorization: Bearer <HS256 JWT>`` (``sub`` = user id, ``exp``), the
  secret from ``TRIONET_JWT_SECRET``; any user id in a valid token is a user.
- client frames ``{"type": "private", "to", "content", "client_id"}`` and
  ``{"type": "group", "group_id", "content", "client_id"}`` (and ``ping``); server frames
  ``{"type": "private"|"group", "id", "from", "to"|"group_id", "content", "timestamp"}``,
  acks ``{"type": "ack", "client_id", "id", "timestamp", "persisted": false}`` and errors
  ``{"type": "error", "code", "message", "client_id"}``. A message reaches every connection of
  its recipients except the one it came from; group fan-out uses ``websockets.broadcast()``.
- the server API calls the load script makes, with ``Authorization: Bearer <TRIONET_API_KEY>``:
  ``PUT /api/server/users/{id}`` ``{"username"}`` and ``PUT /api/server/groups/{id}``
  ``{"name", "members": [{"user_id", "status"}]}`` (accepted members receive).
- ``GET /healthz``.

It persists nothing and does no coalescing (``?coalesce=1`` is accepted and ignored).
``websockets`` reads no request bodies, so the connection class answers the few ``PUT``
requests itself before the WebSocket machinery sees them.

    TRIONET_JWT_SECRET=... TRIONET_API_KEY=... python scripts/peers/reference_peer.py --port 8001
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import jwt
import uvloop
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

try:  # msgspec ships with trionet; plain json does the same, a little slower
    import msgspec

    _encoder = msgspec.json.Encoder()
    _decoder = msgspec.json.Decoder()

    def encode(obj: Any) -> str:
        return _encoder.encode(obj).decode()

    def decode(raw: str | bytes) -> Any:
        return _decoder.decode(raw)

    DecodeError: type[Exception] = msgspec.DecodeError
except ImportError:  # pragma: no cover
    import json

    def encode(obj: Any) -> str:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)

    decode = json.loads
    DecodeError = ValueError

log = logging.getLogger("reference_peer")

EPOCH_MS = 1_735_689_600_000  # trionet's id epoch: 2025-01-01T00:00:00Z
MAX_ID = 2**53 - 1
MAX_CONTENT = 16_000


class Ids:
    """Increasing ids in trionet's layout: milliseconds << 12 | sequence; ISO timestamps."""

    def __init__(self) -> None:
        self._ms = 0
        self._seq = 0
        self._iso_ms = -1
        self._iso = ""

    def next(self) -> tuple[int, str]:
        now = int(time.time() * 1000) - EPOCH_MS
        if now > self._ms:
            self._ms, self._seq = now, 0
        elif self._seq < 4095:
            self._seq += 1
        else:
            self._ms, self._seq = self._ms + 1, 0
        ms = self._ms
        if ms != self._iso_ms:
            stamp = datetime.fromtimestamp((ms + EPOCH_MS) / 1000, UTC)
            self._iso = stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{(ms + EPOCH_MS) % 1000:03d}Z"
            self._iso_ms = ms
        return (ms << 12) | self._seq, self._iso


class State:
    """Connections per user, accepted members per group, and a cached connection list per
    group (rebuilt when a member connects or leaves, or the membership changes)."""

    def __init__(self, jwt_secret: str, api_key: str | None) -> None:
        self.jwt_secret = jwt_secret
        self.api_key = api_key
        self.conns: dict[int, set[ServerConnection]] = {}
        self.groups: dict[int, frozenset[int]] = {}
        self.user_groups: dict[int, set[int]] = {}
        self.group_conns: dict[int, list[ServerConnection]] = {}
        self.usernames: dict[int, str] = {}
        self.ids = Ids()

    def add(self, user_id: int, ws: ServerConnection) -> None:
        self.conns.setdefault(user_id, set()).add(ws)
        for gid in self.user_groups.get(user_id, ()):
            self.group_conns.pop(gid, None)

    def remove(self, user_id: int, ws: ServerConnection) -> None:
        conns = self.conns.get(user_id)
        if conns is not None:
            conns.discard(ws)
            if not conns:
                del self.conns[user_id]
        for gid in self.user_groups.get(user_id, ()):
            self.group_conns.pop(gid, None)

    def set_group(self, group_id: int, members: frozenset[int]) -> None:
        for uid in self.groups.get(group_id, frozenset()):
            self.user_groups.get(uid, set()).discard(group_id)
        self.groups[group_id] = members
        for uid in members:
            self.user_groups.setdefault(uid, set()).add(group_id)
        self.group_conns.pop(group_id, None)

    def connections_of_group(self, group_id: int) -> list[ServerConnection]:
        found = self.group_conns.get(group_id)
        if found is None:
            found = [c for uid in self.groups.get(group_id, ()) for c in self.conns.get(uid, ())]
            self.group_conns[group_id] = found
        return found

    def user_of(self, authorization: str | None) -> int | None:
        if not authorization or authorization[:7].lower() != "bearer ":
            return None
        try:
            claims = jwt.decode(authorization[7:].strip(), self.jwt_secret, algorithms=["HS256"],
                                options={"require": ["sub", "exp"]})
        except jwt.PyJWTError:
            return None
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub.isdigit() or not 0 < int(sub) <= MAX_ID:
            return None
        return int(sub)


STATE: State  # set in main()


# -- the server API (PUT with a JSON body), answered before websockets parses the request --

_USERS = re.compile(r"^/api/server/users/([1-9][0-9]{0,15})$")
_GROUPS = re.compile(r"^/api/server/groups/([1-9][0-9]{0,15})$")


def _http_response(status: int, body: Any) -> bytes:
    reasons = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
               405: "Method Not Allowed", 413: "Payload Too Large"}
    data = encode(body).encode()
    head = (f"HTTP/1.1 {status} {reasons.get(status, 'Error')}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
            "Connection: close\r\n\r\n")
    return head.encode() + data


def _error(status: int, code: str, message: str) -> bytes:
    return _http_response(status, {"error": {"code": code, "message": message}})


def handle_api(method: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
    """One server-API request; returns the whole HTTP response."""
    state = STATE
    auth = headers.get("authorization", "")
    if state.api_key is None or auth[:7].lower() != "bearer " or auth[7:].strip() != state.api_key:
        return _error(401, "unauthorized", "the server API key is required")
    path = path.split("?", 1)[0]
    if method != "PUT":
        return _error(405, "method_not_allowed", f"{method} is not served here")
    try:
        payload = decode(body) if body.strip() else {}
    except DecodeError as exc:
        return _error(400, "bad_request", f"body is not valid JSON: {exc}")
    if not isinstance(payload, dict):
        return _error(400, "bad_request", "the body must be a JSON object")
    if m := _USERS.match(path):
        uid = int(m.group(1))
        username = payload.get("username")
        if not isinstance(username, str) or not 1 <= len(username) <= 32:
            return _error(400, "bad_request", "username must be 1 to 32 characters")
        state.usernames[uid] = username
        return _http_response(200, {"id": uid, "username": username})
    if m := _GROUPS.match(path):
        gid = int(m.group(1))
        members = payload.get("members", [])
        if not isinstance(members, list):
            return _error(400, "bad_request", "members must be a list")
        accepted: set[int] = set()
        for entry in members:
            if not isinstance(entry, dict) or not isinstance(entry.get("user_id"), int):
                return _error(400, "bad_request", "each member needs an integer user_id")
            if entry.get("status", "accepted") == "accepted":
                accepted.add(entry["user_id"])
        state.set_group(gid, frozenset(accepted))
        return _http_response(200, {"id": gid, "name": payload.get("name"),
                                    "members": members})
    return _error(404, "not_found", f"no route {path}")


class PeerConnection(ServerConnection):
    """A websockets server connection that answers non-GET requests (the server API) itself."""

    _sniff: bytes | None = b""

    def data_received(self, data: bytes) -> None:
        if self._sniff is None:
            super().data_received(data)
            return
        buf = self._sniff + data
        if len(buf) < 4:
            self._sniff = buf
            return
        if buf.startswith(b"GET "):
            self._sniff = None
            super().data_received(buf)
            return
        self._sniff = buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > 65536:
                self._reply(_error(413, "payload_too_large", "headers too large"))
            return
        lines = buf[:end].decode("latin-1").split("\r\n")
        try:
            method, path, _version = lines[0].split(" ", 2)
        except ValueError:
            self._reply(_error(400, "bad_request", "bad request line"))
            return
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            length = -1
        if length < 0 or length > 1 << 20:
            self._reply(_error(400, "bad_request", "bad Content-Length"))
            return
        body = buf[end + 4:]
        if len(body) < length:
            return  # wait for the rest of the body
        self._reply(handle_api(method, path, headers, body[:length]))

    def _reply(self, response: bytes) -> None:
        self._sniff = b"\x00"  # ignore anything else on this connection
        self.transport.write(response)
        self.transport.close()  # the pending WebSocket handshake then fails quietly


# -- WebSocket -----------------------------------------------------------------------------


def process_request(connection: ServerConnection, request: Request) -> Response | None:
    path = request.path.split("?", 1)[0]
    if path in ("/healthz", "/readyz"):
        return connection.respond(200, '{"status":"ok"}\n')
    if path != "/ws":
        return connection.respond(404, "not found\n")
    user_id = STATE.user_of(request.headers.get("Authorization"))
    if user_id is None:
        return connection.respond(401, '{"error":{"code":"unauthorized"}}\n')
    connection.user_id = user_id  # type: ignore[attr-defined]
    return None


def _error_frame(code: str, message: str, client_id: Any = None) -> str:
    cid = client_id if isinstance(client_id, str) else None
    return encode({"type": "error", "code": code, "message": message, "client_id": cid})


async def handler(ws: ServerConnection) -> None:
    state = STATE
    user_id: int = ws.user_id  # type: ignore[attr-defined]
    state.add(user_id, ws)
    conns = state.conns
    groups = state.groups
    try:
        async for raw in ws:
            if not isinstance(raw, str):
                await ws.send(_error_frame("binary_frame", "send JSON text"))
                continue
            try:
                frame = decode(raw)
            except DecodeError as exc:
                await ws.send(_error_frame("invalid_json", f"not valid JSON: {exc}"))
                continue
            if not isinstance(frame, dict):
                await ws.send(_error_frame("invalid_message", "a frame is a JSON object"))
                continue
            kind = frame.get("type")
            client_id = frame.get("client_id")
            if kind == "ping":
                await ws.send(encode({"type": "pong", "client_id": client_id}))
                continue
            content = frame.get("content")
            if kind not in ("private", "group"):
                await ws.send(_error_frame("unknown_type", f"unknown type {kind!r}", client_id))
                continue
            if not isinstance(content, str) or not 0 < len(content) <= MAX_CONTENT:
                await ws.send(_error_frame("invalid_message", "bad content", client_id))
                continue
            if kind == "private":
                to = frame.get("to")
                if not isinstance(to, int) or not 0 < to <= MAX_ID:
                    await ws.send(_error_frame("invalid_message", "bad to", client_id))
                    continue
                mid, ts = state.ids.next()
                text = encode({"type": "private", "id": mid, "from": user_id, "to": to,
                               "content": content, "timestamp": ts})
                targets = [c for c in conns.get(to, ()) if c is not ws]
                if to != user_id:
                    targets.extend(c for c in conns.get(user_id, ()) if c is not ws)
                broadcast(targets, text)
            else:
                gid = frame.get("group_id")
                if isinstance(gid, str) and gid.isdigit():
                    gid = int(gid)
                members = groups.get(gid) if isinstance(gid, int) else None
                if members is None or user_id not in members:
                    await ws.send(_error_frame("not_member", f"not a member of {gid}", client_id))
                    continue
                mid, ts = state.ids.next()
                text = encode({"type": "group", "id": mid, "from": user_id, "group_id": gid,
                               "content": content, "timestamp": ts})
                broadcast([c for c in state.connections_of_group(gid) if c is not ws], text)
            if isinstance(client_id, str):
                await ws.send(encode({"type": "ack", "client_id": client_id, "id": mid,
                                      "timestamp": ts, "persisted": False}))
    except ConnectionClosed:
        pass
    finally:
        state.remove(user_id, ws)


async def run(host: str, port: int, ready: Callable[[str], None]) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    async with serve(
        handler,
        host,
        port,
        process_request=process_request,
        create_connection=PeerConnection,
        compression=None,
        max_size=64 * 1024,
        ping_interval=20,
        ping_timeout=20,
        backlog=1024,
        server_header=None,
    ) as server:
        bound = [s.getsockname() for s in server.sockets]
        ready(", ".join(f"http://{a[0]}:{a[1]}" for a in bound))
        await stop
        server.close(close_connections=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default=os.environ.get("TRIONET_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("TRIONET_PORT", "8001")))
    args = parser.parse_args()
    secret = os.environ.get("TRIONET_JWT_SECRET")
    if not secret or len(secret) < 16:
        sys.exit("reference_peer: set TRIONET_JWT_SECRET (at least 16 characters)")
    api_key = os.environ.get("TRIONET_API_KEY") or None
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    global STATE
    STATE = State(secret, api_key)

    def ready(urls: str) -> None:
        print(f"reference peer (websockets + uvloop) listening on {urls}", file=sys.stderr,
              flush=True)

    uvloop.run(run(args.host, args.port, ready))


if __name__ == "__main__":
    main()
