"""A plain pipelined Redis connection for the backplane's hot path: its outbound queue and its
listener.

Measured under trio on this stack, coredis spends 213 us of CPU on a ``PING`` (about 800
Python calls and 5 task switches: its writer task, anyio cancel scopes, the pool) and 511 us
on the routing script for a 100-member group in a pipeline of one; trionet's own work is
about 11 us per delivered message. At a moderate load each committed batch is its own
command, so coredis alone more than doubled the CPU a cross-node group message costs. This
link sends a whole pipeline with one write and reads the replies with coredis's own
(compiled) RESP parser: 69 and 111 us for the same two. The listener's subscription is a link
too: coredis's pub/sub took 29-36 us of CPU per message read, the link 10-12 us. coredis
keeps the rest: the options parsed from the URL (TLS context, credentials, database), the
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
from io import BytesIO
from typing import Any
from urllib.parse import urlsplit

import trio
from coredis.parser import NotEnoughData, Parser

__all__ = ["RespLink", "LinkError", "encode"]

Arg = bytes | str | int

#: most bytes read per receive
_READ = 65536
#: read bytes the parser's buffer may keep before they are dropped
_COMPACT = 1 << 20


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
    """One connection to Redis for pipelined commands. Open with :meth:`open`; close with
    :meth:`aclose`, or use it as an async context manager."""

    def __init__(self, stream: trio.abc.Stream, reply_within: float) -> None:
        self._stream = stream
        self._timeout = reply_within
        self._parser = Parser()

    @classmethod
    async def open(cls, url: str, client: Any, *, connect_within: float,
                   reply_within: float, name: str = "") -> RespLink:
        """Connect as ``client`` (a :class:`coredis.Redis` made from ``url``) does: the same
        server, TLS context, credentials and database. ``reply_within`` seconds bounds each
        wait for the next reply (a pipeline of many slow scripts may take longer in all, as
        long as each reply comes within it). ``name``, if given and allowed, is the
        connection's name in Redis's ``CLIENT LIST``."""
        options = client.connection_pool.connection_kwargs
        parts = urlsplit(url)
        raw: trio.abc.Stream | None = None
        try:
            with _as_link_error(connect_within), trio.fail_after(connect_within):
                stream: trio.abc.Stream
                if parts.scheme.lower() == "unix":
                    raw = stream = await trio.open_unix_socket(parts.path)  # (as coredis)
                else:
                    host = parts.hostname or "localhost"
                    raw = stream = await trio.open_tcp_stream(host, parts.port or 6379)
                    context = options.get("ssl_context")
                    if context is not None:
                        # (https_compatible: closing never waits on a dead peer's close_notify)
                        tls = trio.SSLStream(raw, context, server_hostname=host,
                                             https_compatible=True)
                        await tls.do_handshake()
                        stream = tls
                link = cls(stream, reply_within)
                setup: list[tuple[Arg, ...]] = []
                if options.get("password"):
                    user = options.get("username")
                    setup.append(("AUTH", user, options["password"]) if user
                                 else ("AUTH", options["password"]))
                if options.get("db"):
                    setup.append(("SELECT", int(options["db"])))
                for reply in await link.pipeline(setup):
                    if isinstance(reply, Exception):
                        raise LinkError(f"Redis refused the link's set-up: {reply}")
                name = "".join(c for c in name if "!" <= c <= "~")  # what Redis allows
                if name:  # best effort: an ACL or a managed Redis may refuse CLIENT
                    await link.pipeline([("CLIENT", "SETNAME", name)])
        except BaseException:
            if raw is not None:
                await trio.aclose_forcefully(raw)
            raise
        return link

    async def pipeline(self, commands: Sequence[Sequence[Arg]]) -> list[Any]:
        """Send ``commands`` in one write; their replies in order (an error reply as its
        exception object)."""
        if not commands:
            return []
        data = b"".join(encode(*command) for command in commands)
        replies: list[Any] = []
        with _as_link_error(self._timeout), trio.fail_after(self._timeout) as scope:
            await self._stream.send_all(data)
            for _ in commands:
                replies.append(await self._reply())
                scope.deadline = trio.current_time() + self._timeout  # progress: wait on
        return replies

    async def subscribe(self, channels: Sequence[str]) -> None:
        """Subscribe to ``channels``; from then on the link only reads :meth:`message`."""
        with _as_link_error(self._timeout), trio.fail_after(self._timeout):
            await self._stream.send_all(encode("SUBSCRIBE", *channels))
            for _ in channels:
                reply = await self._reply()
                if not (isinstance(reply, list) and reply[:1] == [b"subscribe"]):
                    raise LinkError(f"Redis refused the subscription: {reply!r}")

    async def message(self) -> tuple[bytes, bytes]:
        """The next message published to a subscribed channel: (channel, data). It waits as
        long as none comes (a silent channel is the caller's to notice)."""
        with _as_link_error(self._timeout):
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
                if parser.bytes_read > _COMPACT:
                    _compact(parser)
                return parsed[1]
            chunk = await self._stream.receive_some(_READ)
            if not chunk:
                raise LinkError("Redis closed the connection")
            parser.feed(bytes(chunk))

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self._stream)

    async def __aenter__(self) -> RespLink:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _compact(parser: Parser) -> None:
    """Drop what the parser has read from its buffer. It empties the buffer only when a reply
    ends exactly where the data fed so far ends; on a busy subscription, where reads often end
    inside a message, the buffer would otherwise keep every byte ever received. (Its state
    for a reply half read does not depend on the buffer's offsets.)"""
    rest = parser.localbuffer.getbuffer()[parser.bytes_read:parser.bytes_written].tobytes()
    parser.localbuffer = BytesIO(rest)
    parser.bytes_read, parser.bytes_written = 0, len(rest)


@contextmanager
def _as_link_error(seconds: float) -> Iterator[None]:
    """Every failure of the connection as :class:`LinkError`."""
    try:
        yield
    except LinkError:
        raise
    except trio.TooSlowError:
        raise LinkError(f"no reply from Redis within {seconds:.0f} s") from None
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
        raise LinkError(f"the connection to Redis broke: {exc}") from exc
    except Exception as exc:  # a reply the parser cannot read: the stream is unusable
        raise LinkError(f"unreadable reply from Redis: {exc}") from exc
