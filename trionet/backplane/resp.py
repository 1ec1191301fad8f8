"""A plain pipelined Redis connection for the backplane's hot path: its outbound queue and its
listener.

Measured under trio on this stack, coredis spends 200-250 us of CPU per command (a ``PING``
runs about 800 Python calls and 5 task switches: its writer task, anyio cancel scopes, the pool)
and about 400 us per routing script with a group's member keys; trionet's own work is about
11 us per delivered message. At a moderate load each committed batch is its own command, so
coredis alone more than doubled the CPU a cross-node group message costs. This link sends a
whole pipeline with one write and reads the replies with coredis's own (compiled) RESP parser.
The listener's subscription is one too: coredis's pub/sub took 36 us of CPU per message read,
this link about a fifth of that. coredis keeps the rest: URL parsing and TLS set-up, the
lease, the reaper and the login throttle.

A link serves one task: the backplane's sender (pipelines), or its listener (a subscription,
then its messages). A lost connection, a reply that takes longer than the timeout, or a
protocol error raises :class:`LinkError`; the caller drops the link and reconnects. A command
Redis refuses yields its :class:`~coredis.exceptions.RedisError` in the results (the other
commands' results are unaffected).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote, urlsplit

import trio
from coredis.parser import NotEnoughData, Parser

__all__ = ["RespLink", "LinkError", "encode"]

Arg = bytes | str | int

#: most bytes read per receive
_READ = 65536


class LinkError(ConnectionError):
    """The link cannot be used any more: reconnect."""


def encode(*args: Arg) -> bytes:
    """One command in RESP (an array of bulk strings)."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        raw = arg if isinstance(arg, bytes) else (
            b"%d" % arg if isinstance(arg, int) else arg.encode())
        parts.append(b"$%d\r\n" % len(raw))
        parts.append(raw)
        parts.append(b"\r\n")
    return b"".join(parts)


class RespLink:
    """One connection to Redis for pipelined commands. Open with :meth:`open`."""

    def __init__(self, stream: trio.abc.Stream, reply_within: float) -> None:
        self._stream = stream
        self._timeout = reply_within
        self._parser = Parser()

    @classmethod
    async def open(cls, url: str, client: Any, *, connect_within: float,
                   reply_within: float, name: str = "") -> RespLink:
        """Connect as ``client`` (a :class:`coredis.Redis` made from ``url``) does: the same
        server, TLS context, credentials and database; ``reply_within`` seconds bounds each
        pipeline's round trip; ``name``, if given, is the connection's name in Redis's
        ``CLIENT LIST``."""
        options = client.connection_pool.connection_kwargs
        parts = urlsplit(url)
        with trio.fail_after(connect_within):
            stream: trio.abc.Stream
            if parts.scheme.lower() == "unix":
                stream = await trio.open_unix_socket(unquote(parts.path))
            else:
                host = parts.hostname or "localhost"
                stream = await trio.open_tcp_stream(host, parts.port or 6379)
                context = options.get("ssl_context")
                if context is not None:
                    stream = trio.SSLStream(stream, context, server_hostname=host)
                    await stream.do_handshake()
            link = cls(stream, reply_within)
            try:
                setup: list[tuple[Arg, ...]] = []
                if options.get("password"):
                    user = options.get("username")
                    setup.append(("AUTH", user, options["password"]) if user
                                 else ("AUTH", options["password"]))
                if options.get("db"):
                    setup.append(("SELECT", int(options["db"])))
                name = "".join(c for c in name if "!" <= c <= "~")  # what Redis allows
                if name:
                    setup.append(("CLIENT", "SETNAME", name))
                for reply in await link.pipeline(setup):
                    if isinstance(reply, Exception):
                        raise LinkError(f"Redis refused the link's set-up: {reply}")
            except BaseException:
                await link.aclose()
                raise
        return link

    async def pipeline(self, commands: Sequence[Sequence[Arg]]) -> list[Any]:
        """Send ``commands`` in one write; their replies in order (an error reply as its
        exception object)."""
        if not commands:
            return []
        data = b"".join(encode(*command) for command in commands)
        with self._guarded(), trio.fail_after(self._timeout):
            await self._stream.send_all(data)
            return [await self._reply() for _ in commands]

    async def subscribe(self, channels: Sequence[str]) -> None:
        """Subscribe to ``channels``; from then on the link only reads :meth:`message`."""
        with self._guarded(), trio.fail_after(self._timeout):
            await self._stream.send_all(encode("SUBSCRIBE", *channels))
            for _ in channels:
                reply = await self._reply()
                if not (isinstance(reply, list) and reply[:1] == [b"subscribe"]):
                    raise LinkError(f"Redis refused the subscription: {reply!r}")

    async def message(self) -> tuple[bytes, bytes]:
        """The next message published to a subscribed channel: (channel, data). It waits as
        long as none comes (a silent channel is the caller's to notice)."""
        with self._guarded():
            while True:
                reply = await self._reply()
                if isinstance(reply, list) and len(reply) == 3 and reply[0] == b"message":
                    return reply[1], reply[2]
                if isinstance(reply, Exception):
                    raise LinkError(f"Redis ended the subscription: {reply}")

    async def _reply(self) -> Any:
        """The next reply, reading as much as needed (and no more than what is there)."""
        parser = self._parser
        while True:
            parsed = parser.parse(decode=False)
            if not isinstance(parsed, NotEnoughData):
                return parsed[1]
            chunk = await self._stream.receive_some(_READ)
            if not chunk:
                raise LinkError("Redis closed the connection")
            parser.feed(bytes(chunk))

    @contextmanager
    def _guarded(self) -> Iterator[None]:
        """Every failure of the connection as :class:`LinkError`."""
        try:
            yield
        except LinkError:
            raise
        except trio.TooSlowError:
            raise LinkError(f"no reply from Redis within {self._timeout:.0f} s") from None
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise LinkError(f"the connection to Redis broke: {exc}") from exc
        except Exception as exc:  # a reply the parser cannot read: the stream is unusable
            raise LinkError(f"unreadable reply from Redis: {exc}") from exc

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await self._stream.aclose()
