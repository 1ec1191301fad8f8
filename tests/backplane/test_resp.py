"""The backplane's pipelined Redis link, against the machine's Redis and against sockets that
misbehave on purpose."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import coredis
import pytest
import trio
from coredis.exceptions import WrongTypeError
from redis_helpers import open_link, own_redis

from trionet.backplane.resp import LinkError, RespLink, encode
from trionet.testing import fresh_redis_prefix


def test_commands_are_encoded_as_arrays_of_bulk_strings() -> None:
    assert encode("PUBLISH", b"ch", 12) == b"*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$2\r\n12\r\n"
    assert encode("SET", "k", b"") == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"
    # bytes go as they are, binary and CRLF included
    assert encode(b"\r\n\x00") == b"*1\r\n$3\r\n\r\n\x00\r\n"


async def test_a_pipeline_returns_every_reply_in_order_and_a_refusal_as_its_error() -> None:
    async with fresh_redis_prefix() as (url, prefix):
        with trio.fail_after(10):
            link = await open_link(url)
            try:
                big = bytes(range(256)) * 1000  # arrives in several reads
                replies = await link.pipeline([
                    ("SET", f"{prefix}:s", big), ("GET", f"{prefix}:s"),
                    ("LPUSH", f"{prefix}:s", "x"),  # a string, not a list: refused
                    ("RPUSH", f"{prefix}:l", "a", "b"), ("LRANGE", f"{prefix}:l", 0, -1),
                    ("GET", f"{prefix}:missing"), ("PING",)])
                assert replies[:2] == [b"OK", big]
                assert isinstance(replies[2], WrongTypeError)
                assert replies[3:] == [2, [b"a", b"b"], None, b"PONG"]
                # the link goes on after a refusal, and an empty pipeline costs nothing
                assert await link.pipeline([("INCR", f"{prefix}:n")]) == [1]
                assert await link.pipeline([]) == []
            finally:
                await link.aclose()


async def test_the_link_uses_the_urls_database() -> None:
    async with fresh_redis_prefix() as (url, prefix):
        parts = urlsplit(url)
        other = urlunsplit(parts._replace(path="/3"))
        with trio.fail_after(10):
            link = await open_link(other)
            try:
                assert await link.pipeline([("SET", f"{prefix}:db", "three")]) == [b"OK"]
            finally:
                await link.aclose()
            async with coredis.Redis.from_url(other, decode_responses=False) as three, \
                    coredis.Redis.from_url(url, decode_responses=False) as zero:
                assert await three.get(f"{prefix}:db") == b"three"
                assert await zero.get(f"{prefix}:db") is None
                await three.delete([f"{prefix}:db"])


async def test_a_password_redis_refuses_fails_the_opening() -> None:
    async with fresh_redis_prefix() as (url, _):
        parts = urlsplit(url)
        wrong = urlunsplit(parts._replace(netloc=f"nobody:wrong@{parts.netloc}"))
        with trio.fail_after(10), pytest.raises(LinkError, match="refused the link's set-up"):
            await open_link(wrong)


async def test_a_server_that_stops_answering_or_hangs_up_raises_link_error() -> None:
    """A stalled Redis is noticed within the reply bound, a closed one at once; either way
    the caller gets :class:`LinkError` (and reconnects), never a hang."""
    accepted: list[trio.SocketStream] = []

    async def silent(stream: trio.SocketStream) -> None:
        accepted.append(stream)
        await trio.sleep_forever()

    async def hangs_up(stream: trio.SocketStream) -> None:
        await stream.receive_some(100)
        await stream.aclose()

    async def garbage(stream: trio.SocketStream) -> None:
        await stream.receive_some(100)
        await stream.send_all(b"?what\r\n")
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        for handler, expected in ((silent, "no reply from Redis within 1 s"),
                                  (hangs_up, "closed the connection"),
                                  (garbage, "unreadable reply")):
            listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
            port = listeners[0].socket.getsockname()[1]
            url = f"redis://127.0.0.1:{port}/0"
            client = coredis.Redis.from_url(url, decode_responses=False)
            with trio.fail_after(5):
                link = await RespLink.open(url, client, connect_within=1, reply_within=1)
                with pytest.raises(LinkError, match=expected):
                    await link.pipeline([("PING",)])
                await link.aclose()
        nursery.cancel_scope.cancel()
    assert accepted  # (the silent server did get the connection)



async def test_a_subscription_reads_every_message_in_order_until_redis_drops_it() -> None:
    """Messages on either channel arrive in order, large ones whole; the link carries its
    name in ``CLIENT LIST``; when Redis kills the connection the reader gets
    :class:`LinkError` (the backplane then reconnects), not a hang."""
    async with fresh_redis_prefix() as (url, prefix):
        channels = [f"{prefix}:a", f"{prefix}:b"]
        big = bytes(range(256)) * 800
        sent = [(channels[i % 2], b"%d" % i if i != 7 else big) for i in range(200)]
        with trio.fail_after(10):
            client = coredis.Redis.from_url(url, decode_responses=False)
            link = await RespLink.open(url, client, connect_within=2, reply_within=2,
                                       name=f"{prefix}:listen\n\u00e9")
            try:
                await link.subscribe(channels)
                async with coredis.Redis.from_url(url, decode_responses=False) as other:
                    async with other.pipeline(transaction=False) as pipe:
                        for channel, data in sent:
                            pipe.publish(channel, data)
                    got = [await link.message() for _ in sent]
                    assert [(c.decode(), d) for c, d in got] == sent
                    listed = (await other.client_list()) or []
                    mine = [c for c in listed if c.get("name") == f"{prefix}:listen"]
                    assert len(mine) == 1, listed  # (the newline and the e-acute left out)
                    await other.client_kill(identifier=int(mine[0]["id"]))
                with pytest.raises(LinkError, match="closed the connection|broke"):
                    await link.message()
            finally:
                await link.aclose()


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[Path]:
    """A Redis on a Unix socket, with a password (``secret``) and without the ``CLIENT``
    command (as some managed ones)."""
    path = tmp_path / "redis.sock"
    async with own_redis(path.exists, "--unixsocket", str(path), "--requirepass", "secret",
                         "--rename-command", "CLIENT", ""):
        yield path


async def test_a_unix_socket_and_a_password_from_the_url(private_redis: Path) -> None:
    """A name is best effort: this Redis has no ``CLIENT`` command, and the link opens."""
    with trio.fail_after(10):
        url = f"unix://:secret@{private_redis}?db=2"
        client = coredis.Redis.from_url(url, decode_responses=False)
        link = await RespLink.open(url, client, connect_within=2, reply_within=2, name="n")
        try:
            assert (await link.pipeline([("SET", "k", "v")])) == [b"OK"]
        finally:
            await link.aclose()
        async with coredis.Redis.from_url(url, decode_responses=False) as same:
            assert await same.get("k") == b"v"  # the same database, 2
        async with coredis.Redis.from_url(f"unix://:secret@{private_redis}?db=0",
                                          decode_responses=False) as zero:
            assert await zero.get("k") is None
        with pytest.raises(LinkError, match="refused the link's set-up"):
            await open_link(f"unix://:wrong@{private_redis}")


async def test_a_busy_subscription_keeps_its_read_buffer_bounded() -> None:
    """Messages that arrive faster than they are read, so that reads end inside messages: the
    parser's buffer is compacted and stays near its bound, not the bytes ever received."""
    async with fresh_redis_prefix() as (url, prefix):
        channel, data = f"{prefix}:busy", b"m" * 997  # (odd sizes: reads end mid-message)
        count = 6000  # about 6 MB
        with trio.fail_after(20):
            client = coredis.Redis.from_url(url, decode_responses=False)
            link = await RespLink.open(url, client, connect_within=2, reply_within=2)
            try:
                await link.subscribe([channel])
                async with coredis.Redis.from_url(url, decode_responses=False) as other:
                    for _ in range(count // 500):
                        async with other.pipeline(transaction=False) as pipe:
                            for _i in range(500):
                                pipe.publish(channel, data)
                largest = 0
                for _ in range(count):
                    assert await link.message() == (channel.encode(), data)
                    largest = max(largest, len(link._parser.localbuffer.getbuffer()))
            finally:
                await link.aclose()
        assert largest < 2 * (1 << 20) + 65536, largest


async def test_a_pipeline_may_take_longer_than_the_bound_while_replies_keep_coming() -> None:
    """The bound is on the wait for each reply: three replies 0.6 s apart pass a 1 s bound
    (a backlog of routes to very large groups), silence past it fails."""

    async def slow(stream: trio.SocketStream) -> None:
        await stream.receive_some(1000)
        for _ in range(3):
            await trio.sleep(0.6)
            await stream.send_all(b"+PONG\r\n")
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, slow, 0, host="127.0.0.1"))
        url = f"redis://127.0.0.1:{listeners[0].socket.getsockname()[1]}/0"
        client = coredis.Redis.from_url(url, decode_responses=False)
        with trio.fail_after(10):
            link = await RespLink.open(url, client, connect_within=1, reply_within=1)
            started = trio.current_time()
            assert await link.pipeline([("PING",)] * 3) == [b"PONG"] * 3
            assert trio.current_time() - started > 1.5
            with pytest.raises(LinkError, match="no reply"):
                await link.pipeline([("PING",)])
            await link.aclose()
        nursery.cancel_scope.cancel()
